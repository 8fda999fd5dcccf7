"""Many image generations at once (the image tool pressed by many tabs): every request
succeeds, every stream ends with its final events, every image is kept, the money is exact.

On MariaDB concurrent transactions on the same wallet, conversation and files deadlock now and
then; the pipeline runs its short transactions again when the database says so. Should saving
an answer still fail, its stream ends with its final events all the same (the answer failed,
nothing charged), the failure is logged, and the crash sweep settles the hold later.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from multinotes.chat import pipeline
from multinotes.chat.models import Generation, MessageMedia
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from tests.support.sse import parse_sse

SWATCH = "demo/swatch"
REQUESTS = 50  # the number the finding reported 15 deadlocked 500s from


@pytest.fixture
def plugins():
    import plugins.providers.demo as demo

    return [("demo", demo)]


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    await api.mark_verified()
    # The demo provider starts disabled in production mode.
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    await wallet.adjust(api.app[DB], api.user["id"], 100_000, "for the test", by=None)
    return api


async def test_fifty_image_generations_at_once_all_finish(user: ApiClient):
    before = (await user.get_json("/api/wallet"))["balance"]
    shared = (await (await user.post("/api/conversations", {})).json())["id"]

    async def one(index: int) -> tuple[int, list]:
        # Half start new chats, half add to one conversation (its row and tree contended).
        path = "/api/messages" if index % 2 else f"/api/conversations/{shared}/messages"
        body = {"content": f"a teal swatch {index}", "models": [SWATCH]}
        if index % 2:
            body["tool"] = "image"
        response = await user.post(path, body)
        return response.status, parse_sse(await response.text())

    results = await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    assert [status for status, _ in results] == [200] * REQUESTS
    for _, events in results:
        names = [name for name, _ in events]
        assert names[-2:] == ["done", "end"], names
        assert "media" in names and "error" not in names
        assert events[-2][1]["status"] == "complete"

    async with user.app[DB].read() as session:
        statuses = list(await session.scalars(select(Generation.status)))
        media = await session.scalar(select(func.count()).select_from(MessageMedia))
    assert statuses == ["complete"] * REQUESTS and media == REQUESTS
    files = await user.get_json("/api/files?limit=100")
    items = files["files"] if isinstance(files, dict) else files
    assert len(items) == REQUESTS
    after = await user.get_json("/api/wallet")
    assert after["reserved"] == 0
    assert after["balance"] == before - REQUESTS * 50
    assert await wallet.ledger_sum(user.app[DB], user.user["id"]) == after["balance"]


def deadlock() -> OperationalError:
    """What aiomysql raises through SQLAlchemy when MariaDB picks a transaction as the victim."""
    return OperationalError(
        "UPDATE wallets ...", {}, Exception(1213, "Deadlock found when trying to get lock")
    )


async def draw(user: ApiClient) -> list[tuple[str, Any]]:
    response = await user.post(
        "/api/messages", {"content": "a teal swatch", "models": [SWATCH], "tool": "image"}
    )
    assert response.status == 200, await response.text()
    return parse_sse(await response.text())


async def test_a_deadlocked_save_is_run_again_and_the_stream_ends_whole(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    store = pipeline._store_outcome
    victims = 2

    async def deadlocking(*args: Any) -> int:
        nonlocal victims
        if victims:
            victims -= 1
            raise deadlock()
        return await store(*args)

    monkeypatch.setattr(pipeline, "_store_outcome", deadlocking)
    before = (await user.get_json("/api/wallet"))["balance"]
    with capture_logs() as logs:
        events = await draw(user)
    names = [name for name, _ in events]
    assert names[-2:] == ["done", "end"] and "media" in names and "error" not in names, names
    assert events[-2][1]["status"] == "complete"
    retried = [e for e in logs if e["event"] == "transaction_retried"]
    assert [(e["what"], e["code"], e["attempt"]) for e in retried] == [
        ("finish_generation", 1213, 1),
        ("finish_generation", 1213, 2),
    ]
    wallet_after = await user.get_json("/api/wallet")
    assert wallet_after["balance"] == before - 50 and wallet_after["reserved"] == 0
    async with user.app[DB].read() as session:
        assert await session.scalar(select(func.count()).select_from(MessageMedia)) == 1


async def test_an_answer_that_cannot_be_saved_still_ends_its_stream_and_is_logged(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    async def always_deadlocked(*_args: Any) -> int:
        raise deadlock()

    monkeypatch.setattr(pipeline, "_store_outcome", always_deadlocked)
    before = (await user.get_json("/api/wallet"))["balance"]
    with capture_logs() as logs:
        events = await draw(user)
    names = [name for name, _ in events]
    assert names[-3:] == ["error", "done", "end"], names
    error, done = events[-3][1], events[-2][1]
    assert error["code"] == "internal_error" and error["model"] == SWATCH
    assert "could not be saved" in error["message"] and "Deadlock" not in error["message"]
    assert done["status"] == "failed" and done["cost"] == 0
    failures = [e for e in logs if e["event"] == "generation_finish_failed"]
    assert len(failures) == 1 and failures[0]["log_level"] == "error"
    assert failures[0]["generation"] == done["generation_id"]
    # Nothing was charged; the hold waits for the crash sweep, which settles it once.
    wallet_now = await user.get_json("/api/wallet")
    assert wallet_now["balance"] == before and wallet_now["reserved"] > 0
    monkeypatch.undo()
    async with user.app[DB].transaction() as session:
        started = await session.scalar(select(Generation.created_at))
        assert started is not None
        await session.execute(update(Generation).values(created_at=started - timedelta(seconds=40)))
    assert await pipeline.settle_stale_generations(user.app, wait=0) == 1
    assert (await user.get_json("/api/wallet"))["reserved"] == 0
    assert (
        await wallet.ledger_sum(user.app[DB], user.user["id"])
        == (await user.get_json("/api/wallet"))["balance"]
    )
