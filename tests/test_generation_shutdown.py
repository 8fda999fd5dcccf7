"""A web process that stops (SIGTERM: an upgrade, a restart) lets answers nobody watches run to
their end within its drain (``shutdown_timeout``), and stops, stores and settles the rest
before its database closes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from multinotes.chat.models import Generation, Message
from multinotes.keys import DB
from multinotes.testing import plugin_client
from multinotes.wallet.models import Reservation
from tests.support.scripted_provider import Script, scripted_plugins

MODEL = "script/steady"
WORDS = [f"w{i} " for i in range(40)]


async def leave_an_answer_running(data: Path, script: Script, **settings) -> None:
    async with plugin_client(data, scripted_plugins({MODEL: script}), **settings) as api:
        await api.register_admin()
        await api.mark_verified()
        response = await api.post("/api/messages", {"content": "Go", "models": [MODEL]})
        async for line in response.content:
            if line.startswith(b"event: delta"):
                break
        response.close()  # nobody watches it any more; then the process stops


async def stored(data: Path) -> tuple[Generation, Message, Reservation]:
    plugins = scripted_plugins({MODEL: Script()})
    async with plugin_client(data, plugins) as api, api.app[DB].read() as session:
        generation = await session.scalar(select(Generation))
        message = await session.get(Message, generation.message_id)
        hold = await session.scalar(select(Reservation))
    return generation, message, hold


async def test_an_unwatched_answer_finishes_during_the_drain(tmp_path: Path):
    data = tmp_path / "data"
    await leave_an_answer_running(data, Script(chunks=WORDS, delay=0.02), shutdown_timeout=30)
    generation, message, hold = await stored(data)
    assert generation.status == "complete" and message.content == "".join(WORDS)
    assert hold.settled_at is not None and hold.cost == generation.cost > 0


async def test_past_the_drain_an_answer_is_stopped_and_settled(tmp_path: Path):
    data = tmp_path / "data"
    await leave_an_answer_running(data, Script(chunks=WORDS, delay=0.2), shutdown_timeout=0.5)
    generation, message, hold = await stored(data)
    assert generation.status == "stopped"
    assert message.content and "".join(WORDS).startswith(message.content)
    assert hold.settled_at is not None and hold.cost == generation.cost > 0
