"""The hold before an answer (issue #17, step 4 of the fifth round): the credits are held in a
transaction of their own — the conditional UPDATE of the wallet and the reservation rows,
committed before the provider is called and before the prompt and answer rows are written, so
the wallet row is locked for two statements only. What that shape opens is closed here: rows
that fail to be written give the hold back at once, and a process that died between the hold
and its rows leaves a reservation without a generation, which the crash sweep releases.

Since the tenth round the prompt and answer rows of a prompt sent through the API are written
while the model already streams (the hold alone stands between the request and the provider
call): the first event is sent and the answer settled only once they exist, and when they
cannot be written the request fails as before, the model is stopped and the hold given back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from multinotes.chat import pipeline
from multinotes.chat.models import Generation, Message
from multinotes.chat.pipeline import ORPHANED_AFTER_SECONDS, RUNNING, settle_stale_generations
from multinotes.db import new_id, utcnow
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from multinotes.wallet.models import LedgerEntry, Reservation, Wallet
from tests.support.scripted_provider import Script, ScriptedModel, scripted_plugins
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

MODEL = "script/alpha"


@pytest.fixture
def script():
    return Script(chunks=["a", "b", "c"])


@pytest.fixture
def plugins(script):
    return scripted_plugins({MODEL: script}, context_window=1000, max_output=100)


async def member(api: ApiClient) -> str:
    await api.register_and_login("holder@example.com")
    await api.mark_verified()
    await wallet.ensure_wallet(api.app[DB], api.user["id"])
    return str(api.user["id"])


async def wallet_row(api: ApiClient, user_id: str) -> tuple[int, int]:
    async with api.app[DB].read() as session:
        row = await session.get(Wallet, user_id)
    assert row is not None
    return row.balance, row.reserved


async def held_without_rows(api: ApiClient, user_id: str, amount: int, age: float) -> str:
    """A hold as a process that died right after committing it leaves it: no generation row."""
    reference = f"gen:{new_id()}"
    await wallet.reserve(api.app[DB], user_id, amount, reference, MODEL)
    async with api.app[DB].transaction() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.reference == reference)
            .values(created_at=utcnow() - timedelta(seconds=age))
        )
    return reference


async def test_a_hold_whose_rows_were_never_written_is_released_once_by_the_sweep(
    api: ApiClient,
):
    user_id = await member(api)
    balance, _ = await wallet_row(api, user_id)
    orphan = await held_without_rows(api, user_id, 300, ORPHANED_AFTER_SECONDS + 5)
    # Held a moment ago: its request may still be writing its rows.
    recent = await held_without_rows(api, user_id, 40, 1)
    assert await wallet_row(api, user_id) == (balance, 340)

    # The embedded scheduler may run the same sweep meanwhile: one of them releases it.
    swept = await asyncio.gather(
        settle_stale_generations(api.app, wait=0), settle_stale_generations(api.app, wait=0)
    )
    assert sum(swept) <= 1
    assert await settle_stale_generations(api.app, wait=0) == 0  # idempotent

    assert await wallet_row(api, user_id) == (balance, 40)  # released, nothing charged
    async with api.app[DB].read() as session:
        holds = {
            r.reference: r
            for r in await session.scalars(
                select(Reservation).where(Reservation.reference.in_([orphan, recent]))
            )
        }
        charges = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.reference == orphan)
        )
    assert holds[orphan].settled_at is not None and holds[orphan].cost == 0
    assert holds[recent].settled_at is None
    assert charges == 0  # a release moves no credits: the ledger still sums to the balance
    assert await wallet.ledger_sum(api.app[DB], user_id) == balance


async def test_rows_that_fail_after_the_hold_give_it_back_and_stop_the_model(
    api: ApiClient, script: Script, monkeypatch
):
    user_id = await member(api)
    before = await wallet_row(api, user_id)
    script.delay = 0.2  # still streaming when the rows fail

    def broken(*_args, **_kwargs):
        raise RuntimeError("the rows could not be written")

    monkeypatch.setattr(pipeline, "_pricing_json", broken)
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [MODEL]}
    )
    assert response.status == 500
    await eventually(lambda: not api.app[RUNNING].tasks)  # the model was stopped
    assert await wallet_row(api, user_id) == before
    assert await wallet.ledger_sum(api.app[DB], user_id) == before[0]
    async with api.app[DB].read() as session:
        open_holds = await session.scalar(
            select(func.count())
            .select_from(Reservation)
            .where(Reservation.user_id == user_id, Reservation.settled_at.is_(None))
        )
        messages = await session.scalar(
            select(func.count()).select_from(Message).where(Message.conversation_id == conversation)
        )
    assert open_holds == 0 and messages == 0


async def test_the_hold_is_committed_before_the_provider_is_called(api: ApiClient, monkeypatch):
    user_id = await member(api)
    seen: dict[str, object] = {}

    async def look() -> None:
        async with api.app[DB].read() as session:
            seen["reserved"] = (await session.get(Wallet, user_id)).reserved
            seen["generations"] = await session.scalar(
                select(func.count()).select_from(Generation).where(Generation.user_id == user_id)
            )

    called = ScriptedModel.stream

    async def stream(self, request):
        await look()  # what another connection sees when the provider is called
        async for chunk in called(self, request):
            yield chunk

    monkeypatch.setattr(ScriptedModel, "stream", stream)
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [MODEL]}
    )
    assert response.status == 200
    assert [d["status"] for name, d in parse_sse(await response.text()) if name == "done"] == [
        "complete"
    ]
    assert seen["reserved"] > 0  # the hold: its rows may still be on their way
    assert (await wallet_row(api, user_id))[1] == 0
    async with api.app[DB].read() as session:
        generations = await session.scalar(
            select(func.count()).select_from(Generation).where(Generation.user_id == user_id)
        )
    assert generations == 1


async def test_an_answer_that_ends_before_its_rows_are_written_is_stored_and_settled(
    api: ApiClient, monkeypatch
):
    """The settlement waits for the rows: an answer faster than its rows' transaction is
    still stored whole and charged exactly once."""
    user_id = await member(api)
    balance, _ = await wallet_row(api, user_id)
    store = pipeline._store_plan

    async def slow_store(*args, **kwargs):
        await asyncio.sleep(0.3)
        return await store(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_store_plan", slow_store)
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [MODEL]}
    )
    events = parse_sse(await response.text())
    done = [d for name, d in events if name == "done"]
    assert [d["status"] for d in done] == ["complete"] and done[0]["cost"] > 0
    async with api.app[DB].read() as session:
        answer = await session.get(Message, done[0]["message_id"])
    assert answer is not None and answer.content == "abc" and answer.status == "complete"
    assert await wallet_row(api, user_id) == (balance - done[0]["cost"], 0)
    assert await wallet.ledger_sum(api.app[DB], user_id) == balance - done[0]["cost"]


async def test_the_holds_live_balance_does_not_delay_the_provider_call(api: ApiClient, monkeypatch):
    """The hold changes the wallet, so open tabs get its new balance (``wallet.changed``); that
    read and send follow the hold's commit in the background instead of standing between the
    hold and the provider call."""
    await member(api)
    order: list[str] = []
    summary = wallet.summary

    async def slow_summary(db, user_id):
        order.append("balance asked")
        await asyncio.sleep(0.3)
        order.append("balance read")
        return await summary(db, user_id)

    monkeypatch.setattr(wallet, "summary", slow_summary)
    called = ScriptedModel.stream

    async def stream(self, request):
        order.append("provider called")
        async for chunk in called(self, request):
            yield chunk

    monkeypatch.setattr(ScriptedModel, "stream", stream)
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [MODEL]}
    )
    assert response.status == 200
    await response.text()
    await eventually(lambda: order.count("balance read") >= 2)  # the hold's and the settle's
    assert order.index("provider called") < order.index("balance read")


async def test_the_first_event_waits_for_the_rows(api: ApiClient, monkeypatch):
    """The first event names the prompt and its conversation, which exist from then on in every
    process (a client may read them at once, through another web process). So while the rows
    are on their way nothing is sent, and the stream begins once they are written. (#17's
    thirteenth round measured sending first: the uninstrumented first token did not move.)"""
    await member(api)
    store = pipeline._store_plan
    release = asyncio.Event()

    async def held_store(*args, **kwargs):
        await release.wait()
        await store(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_store_plan", held_store)
    sending = asyncio.ensure_future(
        api.post("/api/messages", {"content": "Hello there", "models": [MODEL]})
    )
    try:
        await asyncio.sleep(0.3)
        assert not sending.done()  # no headers, no event while the rows are held
    finally:
        release.set()
    response = await asyncio.wait_for(sending, 10)
    (name, data), *_ = parse_sse((await response.content.readuntil(b"\n\n")).decode())
    assert name == "prompt"
    conversation = await api.get_json(f"/api/conversations/{data['conversation_id']}")
    assert conversation["title"] == "Hello there"
    events = parse_sse(await response.text())
    assert [d["status"] for name, d in events if name == "done"] == ["complete"]
