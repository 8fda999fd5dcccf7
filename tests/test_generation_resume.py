"""Answers outlive the client that asked for them.

Generation belongs to the server: closing the stream is not a cancel (only Stop is), the
answer completes and is charged once, and a client that comes back follows the rest of it
(``GET /api/messages/{id}/stream``, from ``Last-Event-ID``). A new chat started with its first
prompt (``POST /api/messages``) names its conversation in the first event, and a request that
is refused creates no conversation.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from multinotes.chat.models import Conversation, Generation
from multinotes.chat.pipeline import RUNNING
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet.models import LedgerEntry
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

MODEL = "script/long"
WORDS = [f"w{i} " for i in range(60)]
FULL = "".join(WORDS)


@pytest.fixture
def script():
    return Script(chunks=WORDS, delay=0.03)


@pytest.fixture
def plugins(script):
    return scripted_plugins({MODEL: script}, context_window=4000, max_output=500)


async def start_and_leave(api: ApiClient, deltas: int = 3) -> dict:
    """Start a new chat, read its first events, then go away. Returns the `start` event."""
    response = await api.post("/api/messages", {"content": "Count", "models": [MODEL]})
    assert response.status == 200
    text, seen = "", 0
    async for line in response.content:
        text += line.decode()
        if line.startswith(b"event: delta"):
            seen += 1
            if seen == deltas:
                break
    response.close()
    events = parse_sse(text.rsplit("\n\n", 1)[0] + "\n\n")
    assert events[0][0] == "prompt"
    return next(d for n, d in events if n == "start")


async def generation_status(api: ApiClient) -> str:
    async with api.app[DB].read() as session:
        return await session.scalar(select(Generation.status))


async def usage_charges(api: ApiClient) -> list[int]:
    async with api.app[DB].read() as session:
        return list(
            await session.scalars(select(LedgerEntry.amount).where(LedgerEntry.kind == "usage"))
        )


async def test_leaving_does_not_stop_the_answer_and_it_is_charged_once(user: ApiClient):
    before = (await user.get_json("/api/wallet"))["balance"]
    started = await start_and_leave(user)

    async def finished() -> bool:
        return await generation_status(user) != "pending"

    await eventually(finished, timeout=10)
    assert await generation_status(user) == "complete"
    tree = await user.get_json(f"/api/conversations/{started['conversation_id']}")
    answer = next(m for m in tree["messages"] if m["role"] == "assistant")
    assert answer["content"] == FULL and answer["status"] == "complete"
    cost = answer["generation"]["cost"]
    assert cost > 0 and await usage_charges(user) == [-cost]
    wallet = await user.get_json("/api/wallet")
    assert wallet["balance"] == before - cost and wallet["reserved"] == 0


async def test_coming_back_resumes_the_live_answer_from_last_event_id(user: ApiClient):
    started = await start_and_leave(user)
    # The stored partial text, then live until it ends.
    response = await user.get(f"/api/messages/{started['message_id']}/stream")
    assert response.status == 200 and response.content_type == "text/event-stream"
    events = parse_sse(await response.text())
    names = [n for n, _ in events]
    assert names[0] == "start" and names[-2:] == ["done", "end"]
    assert events[0][1]["generation_id"] == started["generation_id"]
    assert "".join(d["text"] for n, d in events if n == "delta") == FULL
    done = events[-2][1]
    assert done["status"] == "complete" and done["cost"] > 0 and "w59" in done["html"]
    assert await generation_status(user) == "complete"

    # A reconnecting EventSource sends the id of the last event it saw: only the rest comes.
    again = await user.get(
        f"/api/messages/{started['message_id']}/stream", headers={"Last-Event-ID": "9"}
    )
    rest = "".join(d["text"] for n, d in parse_sse(await again.text()) if n == "delta")
    assert rest == FULL[9:]


async def test_resumed_deltas_carry_their_position_as_event_id(user: ApiClient):
    started = await start_and_leave(user)
    response = await user.get(f"/api/messages/{started['message_id']}/stream")
    raw = await response.text()
    ids = [int(line[4:]) for line in raw.splitlines() if line.startswith("id: ")]
    assert ids == sorted(ids) and ids[-1] == len(FULL)


async def test_stop_still_cancels_an_answer_nobody_is_watching(user: ApiClient, script):
    script.delay = 0.05
    started = await start_and_leave(user)
    stop = await user.post(f"/api/generations/{started['generation_id']}/cancel")
    assert (await stop.json())["status"] == "stopping"

    async def stopped() -> bool:
        return await generation_status(user) == "stopped"

    await eventually(stopped, timeout=5)
    response = await user.get(f"/api/messages/{started['message_id']}/stream")
    events = parse_sse(await response.text())
    text = "".join(d["text"] for n, d in events if n == "delta")
    assert FULL.startswith(text) and 0 < len(text) < len(FULL)
    done = events[-2][1]
    assert done["status"] == "stopped" and await usage_charges(user) == [-done["cost"]]


async def test_following_someone_elses_answer_is_404(user: ApiClient, make_client):
    started = await start_and_leave(user)
    other = await make_client()
    await other.register_and_login("other@example.com")
    assert (await other.get(f"/api/messages/{started['message_id']}/stream")).status == 404
    assert (await user.get("/api/messages/nope/stream")).status == 404


async def test_a_new_chat_is_named_in_the_first_event(user: ApiClient):
    response = await user.post(
        "/api/messages", {"content": "Hello there", "models": [MODEL], "tool": "text"}
    )
    first_chunk = await response.content.readuntil(b"\n\n")
    (name, data), *_ = parse_sse(first_chunk.decode())
    assert name == "prompt" and data["conversation_id"] and data["message_id"]
    # The conversation exists already, while the answer is still coming.
    conversation = await user.get_json(f"/api/conversations/{data['conversation_id']}")
    assert conversation["title"] == "Hello there" and conversation["tool"] == "text"
    events = parse_sse(first_chunk.decode() + (await response.text()))
    assert events[-1] == ("end", {})


@pytest.mark.parametrize(
    "body",
    [
        {"content": "Hi", "models": [MODEL], "options": {MODEL: {"temperature": 9}}},
        {"content": "Hi", "models": ["script/none"]},
        {"content": "Hi", "models": [MODEL], "options": {"other/model": {}}},
    ],
)
async def test_a_refused_first_prompt_creates_no_conversation(user: ApiClient, body):
    response = await user.post("/api/messages", body)
    assert 400 <= response.status < 500
    async with user.app[DB].read() as session:
        assert list(await session.scalars(select(Conversation))) == []
    assert (await user.get_json("/api/conversations"))["conversations"] == []


async def test_an_empty_wallet_creates_no_conversation(user: ApiClient):
    from multinotes.wallet import service as wallet

    current = await user.get_json("/api/wallet")
    await wallet.adjust(user.app[DB], user.user["id"], -current["balance"], "drain", by=None)
    response = await user.post("/api/messages", {"content": "Hi", "models": [MODEL]})
    assert response.status == 402
    assert (await user.get_json("/api/conversations"))["conversations"] == []


async def test_an_answer_streaming_in_another_process_is_followed_from_its_stored_text(
    user: ApiClient,
):
    """Another web process cannot see this one's memory: it follows the text stored (every
    second) while the answer streams. Simulated by hiding the live text from the follower."""
    started = await start_and_leave(user)
    user.app[RUNNING].texts.pop(started["generation_id"], None)
    response = await user.get(f"/api/messages/{started['message_id']}/stream")
    events = parse_sse(await response.text())
    assert "".join(d["text"] for n, d in events if n == "delta") == FULL
    assert [n for n, _ in events][-2:] == ["done", "end"]
    # Several pieces, as the stored text grew (not one piece at the end).
    assert len([n for n, _ in events if n == "delta"]) > 1
