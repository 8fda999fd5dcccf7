"""An answer that ends early is paid for what it delivered, and what it delivered is kept.

Many providers report usage only in a stream's last chunk, which a stopped or broken stream
never reaches; a process can die mid-answer. In each case the delivered text is counted offline
(the tokenizer the holds use) next to the prompt, charged, recorded, and the text stored.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from multinotes.chat import partials, pipeline
from multinotes.chat.models import Generation, Message
from multinotes.chat.pipeline import RUNNING
from multinotes.errors import ProviderBadResponse, ProviderUnavailable
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.tokens import PER_MESSAGE_OVERHEAD, REPLY_PRIMING, count_tokens
from multinotes.wallet.models import LedgerEntry, Reservation
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

MODEL = "script/quiet"
PROMPT = "Write me a long answer please"
WORDS = [f"word{i} " for i in range(100)]


@pytest.fixture
def script():
    # Reports no usage at all, like a provider whose usage would come in the last chunk.
    return Script(chunks=WORDS, delay=0.02, reports_usage=False)


@pytest.fixture
def plugins(script):
    # 1 credit per input token, 2 per output token.
    return scripted_plugins({MODEL: script}, context_window=4000, max_output=1000)


def prompt_tokens(prompt: str = PROMPT) -> int:
    return count_tokens(prompt) + PER_MESSAGE_OVERHEAD + REPLY_PRIMING


async def start(api: ApiClient):
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": PROMPT, "models": [MODEL]}
    )
    assert response.status == 200
    return conversation, response


async def generation_row(api: ApiClient) -> Generation:
    async with api.app[DB].read() as session:
        return await session.scalar(select(Generation))


async def charges(api: ApiClient) -> list[LedgerEntry]:
    async with api.app[DB].read() as session:
        return list(await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "usage")))


async def test_stopped_at_95_percent_pays_for_the_delivered_tokens(user: ApiClient, script: Script):
    script.pauses = {95: 30.0}  # the Stop lands at 95%, however busy the machine
    before = (await user.get_json("/api/wallet"))["balance"]
    conversation, response = await start(user)
    text, deltas, generation_id = "", 0, None
    async for line in response.content:
        text += line.decode()
        if line.startswith(b"event: delta"):
            deltas += 1
            if deltas == 95:
                generation_id = next(d for n, d in parse_sse(text) if n == "start")["generation_id"]
                stop = await user.post(f"/api/generations/{generation_id}/cancel")
                assert (await stop.json())["status"] == "stopping"
    events = parse_sse(text)
    delivered = "".join(d["text"] for n, d in events if n == "delta")
    done = next(d for n, d in events if n == "done")
    assert done["status"] == "stopped"
    assert delivered.startswith("word0 word1") and len(delivered) < len("".join(WORDS))

    # The delivered text counted offline, and the prompt: charged and recorded.
    output = count_tokens(delivered)
    assert output > 0
    assert done["usage"]["output_tokens"] == output
    assert done["usage"]["input_tokens"] == prompt_tokens()
    assert done["cost"] == prompt_tokens() + 2 * output
    row = await generation_row(user)
    assert (row.output_tokens, row.input_tokens, row.cost) == (
        output,
        prompt_tokens(),
        done["cost"],
    )
    assert [c.amount for c in await charges(user)] == [-done["cost"]]
    wallet = await user.get_json("/api/wallet")
    assert wallet["balance"] == before - done["cost"] and wallet["reserved"] == 0
    tree = await user.get_json(f"/api/conversations/{conversation}")
    answer = tree["messages"][1]
    assert answer["content"] == delivered and answer["status"] == "stopped"


async def test_a_provider_failing_mid_stream_pays_for_and_keeps_what_it_sent(
    user: ApiClient, script: Script
):
    script.delay = 0
    script.chunks = WORDS[:40]
    script.fail_after_chunks = ProviderUnavailable("The connection dropped.")
    conversation, response = await start(user)
    events = parse_sse(await response.text())
    delivered = "".join(d["text"] for n, d in events if n == "delta")
    assert delivered == "".join(WORDS[:40])
    done = next(d for n, d in events if n == "done")
    assert done["status"] == "failed"
    output = count_tokens(delivered)
    assert done["usage"]["output_tokens"] == output > 0
    assert done["cost"] == prompt_tokens() + 2 * output
    assert [c.amount for c in await charges(user)] == [-done["cost"]]
    tree = await user.get_json(f"/api/conversations/{conversation}")
    answer = tree["messages"][1]
    assert answer["content"] == delivered and answer["status"] == "failed"
    assert answer["generation"]["usage"]["output_tokens"] == output


async def test_a_provider_failing_before_any_text_costs_nothing(user: ApiClient, script: Script):
    script.failures = [ProviderBadResponse("Nonsense.")]
    _, response = await start(user)
    done = next(d for n, d in parse_sse(await response.text()) if n == "done")
    assert done["status"] == "failed" and done["cost"] == 0
    assert await charges(user) == []
    assert (await user.get_json("/api/wallet"))["reserved"] == 0


async def test_a_killed_process_leaves_its_partial_answer_settled_within_a_minute(
    user: ApiClient, monkeypatch
):
    """A process killed mid-answer never reaches its own settlement. Its answer was stored as
    it streamed; the sweep (every minute) finds it silent and settles it to that text."""
    app = user.app

    async def killed(*_args, **_kwargs) -> None:
        """What a SIGKILLed process runs after it dies: nothing."""

    monkeypatch.setattr(pipeline, "finish_generation", killed)
    before = (await user.get_json("/api/wallet"))["balance"]
    conversation, response = await start(user)

    async def stored() -> str:
        async with app[DB].read() as session:
            answer = select(Message.content).where(Message.role == "assistant")
            return await session.scalar(answer) or ""  # "": its row is still on its way

    async def some_text_stored() -> bool:
        return len(await stored()) > 40

    await eventually(some_text_stored, timeout=10)
    generation = await generation_row(user)
    task = app[RUNNING].tasks[generation.id]
    task.cancel()  # the process dies: the stream ends, nothing is settled
    await eventually(task.done)
    response.close()
    partial = await stored()
    assert (await generation_row(user)).status == "pending"
    assert (await user.get_json("/api/wallet"))["reserved"] > 0

    # The last heartbeat was 40 s ago (the process died then): the next sweep settles it.
    async with app[DB].transaction() as session:
        await session.execute(
            update(Generation).values(created_at=generation.created_at - timedelta(seconds=40))
        )
    assert await pipeline.settle_stale_generations(app) == 1

    row = await generation_row(user)
    output = count_tokens(partial)
    assert row.status == "failed" and row.error_code == "interrupted"
    assert (row.input_tokens, row.output_tokens) == (prompt_tokens(), output)
    assert row.cost == prompt_tokens() + 2 * output > 0
    async with app[DB].read() as session:
        hold = await session.scalar(select(Reservation))
    assert hold.settled_at is not None and hold.cost == row.cost
    wallet = await user.get_json("/api/wallet")
    assert wallet["balance"] == before - row.cost and wallet["reserved"] == 0
    tree = await user.get_json(f"/api/conversations/{conversation}")
    assert tree["messages"][1]["content"] == partial
    assert partial.startswith("word0 word1")
    assert await pipeline.settle_stale_generations(app) == 0  # idempotent


async def test_a_live_answer_is_never_swept(user: ApiClient, script: Script, monkeypatch):
    """The heartbeat keeps an answer that sends no text for a while from looking orphaned."""
    monkeypatch.setattr(partials, "HEARTBEAT_SECONDS", 0.5)
    script.chunks = ["late"]
    script.delay = 5.0
    _, response = await start(user)
    await asyncio.sleep(3.5)
    # Not in this process's registry, as if it streamed in another web process: only the
    # heartbeat says it is alive (silent for 3.5 s without it, about 1 s with it).
    running = dict(user.app[RUNNING].tasks)
    user.app[RUNNING].tasks.clear()
    assert await pipeline.settle_stale_generations(user.app, orphaned_after=2.5, wait=0) == 0
    user.app[RUNNING].tasks.update(running)
    done = next(d for n, d in parse_sse(await response.text()) if n == "done")
    assert done["status"] == "complete"
