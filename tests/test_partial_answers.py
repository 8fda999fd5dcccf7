"""While answers stream, their text so far and their heartbeat are stored every round, for every
answer of the process in one transaction (issue #17: a transaction per answer every second was
a hundred durable commits a second at a hundred answers, and in embedded mode a hundred turns at
SQLite's one write lock). What is stored is what a client in another process follows and what
the crash sweep keeps."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import event, select

from multinotes.chat import partials
from multinotes.chat.models import Message
from multinotes.keys import DB
from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.sse import by_model, parse_sse

MODELS = ["script/one", "script/two", "script/three"]


@pytest.fixture
def scripts() -> dict[str, Script]:
    # About 2.4 s each: several rounds of 0.3 s while all three stream.
    return {model: Script(chunks=[f"w{i} " for i in range(40)], delay=0.06) for model in MODELS}


@pytest.fixture
def plugins(scripts: dict[str, Script]) -> Any:
    return scripted_plugins(scripts, context_window=4000, max_output=1000)


async def test_the_answers_streaming_together_are_stored_in_one_statement_a_round(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(partials, "PARTIAL_SAVE_SECONDS", 0.3)
    # Each write of answers' text so far: how many answers it stored.
    rounds: list[int] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool):
        sets = statement.split("WHERE")[0]
        if statement.startswith("UPDATE messages SET content=") and "status" not in sets:
            rounds.append(len(parameters) if many else 1)

    engine = user.app[DB].engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        conversation = (await (await user.post("/api/conversations", {})).json())["id"]
        started = time.monotonic()
        response = await user.post(
            f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": MODELS}
        )
        assert response.status == 200
        events = by_model(parse_sse(await response.text()))
        streamed = time.monotonic() - started
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert {model: events[model][-1][1]["status"] for model in MODELS} == dict.fromkeys(
        MODELS, "complete"
    )
    # The three answers' text went out together, round after round.
    assert rounds and max(rounds) == 3, rounds
    # ... one statement a round (not one per answer), however long a busy machine took.
    assert len(rounds) <= streamed / 0.3 + 2, rounds
    # The final store is the last word: whole answers, none cut to a round's text.
    async with user.app[DB].read() as session:
        stored = list(await session.scalars(select(Message).where(Message.role == "assistant")))
    assert sorted(m.content for m in stored) == ["".join(f"w{i} " for i in range(40))] * 3
    assert {m.status for m in stored} == {"complete"}
