"""Many image generations at once (the image tool pressed by many tabs): every request
succeeds, every stream ends with its final events, every image is kept, the money is exact.

On MariaDB concurrent transactions on the same wallet, conversation and files deadlock now and
then; the pipeline runs its short transactions again when the database says so.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from multinotes.chat.models import Generation, MessageMedia
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from tests.support.sse import parse_sse

SWATCH = "demo/swatch"
REQUESTS = 40


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


async def test_forty_image_generations_at_once_all_finish(user: ApiClient):
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
