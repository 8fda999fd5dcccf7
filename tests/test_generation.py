"""One prompt to several models, streamed side by side and metered against the wallet."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import select

from multinotes.chat.models import Generation
from multinotes.errors import (
    NeedsKey,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.keys import CATALOG, DB
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.sse import by_model, parse_sse
from tests.support.statements import Statements

A, B = "script/alpha", "script/beta"


@pytest.fixture
def scripts():
    return {
        A: Script(chunks=["Hello", " ", "from", " ", "alpha"]),
        B: Script(chunks=["Beta", " ", "says", " ", "hi"]),
    }


@pytest.fixture
def plugins(scripts):
    return scripted_plugins(scripts, context_window=1000, max_output=100)


async def new_conversation(api: ApiClient) -> str:
    return (await (await api.post("/api/conversations", {})).json())["id"]


async def send(
    api: ApiClient,
    conversation: str,
    content: str = "Say hello",
    models: list[str] | None = None,
    **extra,
) -> tuple[int, list]:
    response = await api.post(
        f"/api/conversations/{conversation}/messages",
        {"content": content, "models": models or [A, B], **extra},
    )
    if response.status != 200:
        return response.status, [("http_error", await response.json())]
    assert response.content_type == "text/event-stream"
    return response.status, parse_sse(await response.text())


async def test_two_models_stream_side_by_side_and_the_wallet_pays_the_usage(user: ApiClient):
    before = (await user.get_json("/api/wallet"))["balance"]
    conversation = await new_conversation(user)
    status, events = await send(user, conversation)
    assert status == 200
    assert events[0][0] == "prompt" and events[-1] == ("end", {})
    grouped = by_model(events)
    assert set(grouped) == {A, B}
    for model, text in ((A, "Hello from alpha"), (B, "Beta says hi")):
        kinds = [name for name, _ in grouped[model]]
        assert kinds[0] == "start" and kinds[-1] == "done" and "error" not in kinds
        assert "".join(d["text"] for name, d in grouped[model] if name == "delta") == text
        done = grouped[model][-1][1]
        # 10 input tokens at 1 credit + 5 output tokens at 2 credits.
        assert done["usage"]["input_tokens"] == 10 and done["usage"]["output_tokens"] == 5
        assert done["cost"] == 20 and done["status"] == "complete"
        assert done["latency_ms"] is not None and done["duration_ms"] >= done["latency_ms"]
    after = await user.get_json("/api/wallet")
    assert after == {**after, "balance": before - 40, "reserved": 0}
    assert await wallet.ledger_sum(user.app[DB], user.user["id"]) == after["balance"]

    tree = await user.get_json(f"/api/conversations/{conversation}")
    assert tree["title"] == "Say hello"
    prompt, first, second = tree["messages"]
    assert prompt["role"] == "user" and prompt["parent_id"] is None
    assert {first["parent_id"], second["parent_id"]} == {prompt["id"]}
    assert {first["content"], second["content"]} == {"Hello from alpha", "Beta says hi"}
    assert first["generation"]["cost"] == 20 and first["generation"]["status"] == "complete"


async def test_an_empty_wallet_is_402_before_any_provider_is_called(user: ApiClient, scripts):
    current = await user.get_json("/api/wallet")
    await wallet.adjust(user.app[DB], user.user["id"], -current["balance"], "drain", by=None)
    conversation = await new_conversation(user)
    response = await user.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [A]}
    )
    assert response.status == 402
    body = await response.json()
    assert body["error"]["code"] == "insufficient_credits"
    assert scripts[A].calls == 0
    tree = await user.get_json(f"/api/conversations/{conversation}")
    assert tree["messages"] == []


async def test_reservation_is_all_or_nothing(user: ApiClient, scripts):
    # Enough for one model's maximum cost but not two: neither is reserved or called.
    conversation = await new_conversation(user)
    current = await user.get_json("/api/wallet")
    one = 10 + 2 * 100 + 20  # prompt estimate + max output + overhead margin
    await wallet.adjust(user.app[DB], user.user["id"], -(current["balance"] - one), "trim", by=None)
    status, _events = await send(user, conversation, "Hi")
    assert status == 402
    assert scripts[A].calls == scripts[B].calls == 0
    assert (await user.get_json("/api/wallet"))["reserved"] == 0


async def test_unknown_options_and_models_are_rejected_and_nothing_is_kept(user: ApiClient):
    conversation = await new_conversation(user)
    status, events = await send(user, conversation, options={A: {"temprature": 1}})
    assert status == 422
    assert f"options.{A}.temprature" in events[0][1]["error"]["fields"]
    status, events = await send(user, conversation, models=[A, "nope/model"])
    assert status == 422 and "models.1" in events[0][1]["error"]["fields"]
    status, events = await send(user, conversation, options={A: {"max_tokens": 5000}})
    assert status == 422 and f"options.{A}.max_tokens" in events[0][1]["error"]["fields"]
    assert (await user.get_json(f"/api/conversations/{conversation}"))["messages"] == []
    assert (await user.get_json("/api/wallet"))["reserved"] == 0


async def test_a_provider_error_fails_that_model_only_and_charges_nothing(user: ApiClient, scripts):
    scripts[B].failures = [NeedsKey("Scripted rejected the key.")]
    conversation = await new_conversation(user)
    before = (await user.get_json("/api/wallet"))["balance"]
    _, events = await send(user, conversation)
    grouped = by_model(events)
    assert grouped[A][-1][1]["status"] == "complete"
    errors = [d for name, d in grouped[B] if name == "error"]
    assert errors == [{**errors[0], "code": "needs_key", "message": "Scripted rejected the key."}]
    assert grouped[B][-1][1]["status"] == "failed" and grouped[B][-1][1]["cost"] == 0
    assert (await user.get_json("/api/wallet"))["balance"] == before - 20


async def test_rate_limits_and_outages_are_retried_before_the_first_token(user: ApiClient, scripts):
    scripts[A].failures = [ProviderRateLimited(retry_after=0.01), ProviderUnavailable()]
    conversation = await new_conversation(user)
    _, events = await send(user, conversation, models=[A])
    assert scripts[A].calls == 3
    assert by_model(events)[A][-1][1]["status"] == "complete"


async def test_a_stream_cut_midway_keeps_the_text_and_charges_what_was_used(
    user: ApiClient, scripts
):
    scripts[A].fail_after_chunks = ProviderUnavailable("Scripted stream was cut.")
    conversation = await new_conversation(user)
    _, events = await send(user, conversation, models=[A])
    done = by_model(events)[A][-1][1]
    assert done["status"] == "failed" and done["cost"] == 20
    assert scripts[A].calls == 1  # no retry once text was sent
    tree = await user.get_json(f"/api/conversations/{conversation}")
    assert tree["messages"][1]["content"] == "Hello from alpha"
    assert tree["messages"][1]["generation"]["error"]["code"] == "provider_unavailable"


async def test_malformed_provider_data_is_reported_not_retried(user: ApiClient, scripts):
    scripts[A].failures = [ProviderBadResponse()]
    _, events = await send(user, await new_conversation(user), models=[A])
    assert scripts[A].calls == 1
    assert [d["code"] for n, d in by_model(events)[A] if n == "error"] == ["provider_bad_response"]


async def test_a_silent_provider_times_out(scripts, make_settings, plugins):
    from multinotes.app import create_app
    from multinotes.testing import app_client

    scripts[A].delay = 2.0
    app = create_app(make_settings(provider_timeout_seconds=0.2), plugins=plugins)
    async with app_client(app) as api:
        await api.register_admin("t@example.com")
        await api.mark_verified()
        _, events = await send(api, await new_conversation(api), models=[A])
    errors = [d for n, d in by_model(events)[A] if n == "error"]
    assert errors[0]["code"] == "provider_timeout"
    assert scripts[A].calls == RETRIES


async def test_the_timeout_counts_from_the_last_chunk_not_from_the_start(
    scripts, make_settings, plugins
):
    """``provider_timeout_seconds`` is for the first chunk and for each gap between chunks: an
    answer longer than it streams on while chunks keep coming, and one that then falls silent
    times out with the text it sent so far."""
    from multinotes.app import create_app
    from multinotes.testing import app_client

    scripts[A].chunks = [f"w{i} " for i in range(8)]
    scripts[A].pauses = dict.fromkeys(range(8), 0.1)  # 0.8 s in all, 0.1 s apart
    scripts[B].chunks = ["one ", "two ", "three"]
    scripts[B].pauses = {2: 2.0}
    app = create_app(make_settings(provider_timeout_seconds=0.4), plugins=plugins)
    async with app_client(app) as api:
        await api.register_admin("t@example.com")
        await api.mark_verified()
        _, events = await send(api, await new_conversation(api), models=[A, B])
    streamed = by_model(events)
    assert "".join(d["text"] for n, d in streamed[A] if n == "delta") == "".join(scripts[A].chunks)
    assert [n for n, _ in streamed[A] if n == "error"] == []
    assert "".join(d["text"] for n, d in streamed[B] if n == "delta") == "one two "
    errors = [d for n, d in streamed[B] if n == "error"]
    assert errors[0]["code"] == "provider_timeout"
    assert scripts[B].calls == 1  # text was sent: not retried


RETRIES = 3


async def test_repeated_outages_open_the_circuit_breaker(user: ApiClient, scripts):
    scripts[A].failures = [ProviderUnavailable()] * 30
    for _ in range(2):
        await send(user, await new_conversation(user), models=[A])
    models = {m["id"]: m for m in await user.get_json("/api/models")}
    assert models[A]["status"] == "unavailable" and models[A]["available"] is False
    assert models[B]["status"] == "unavailable"  # same provider: the breaker is per provider
    status, events = await send(user, await new_conversation(user), models=[A])
    assert status == 422 and "failing right now" in events[0][1]["error"]["fields"]["models.0"]
    user.app[CATALOG].breaker.cooldown = 0  # time passes: half-open, one request may try
    scripts[A].failures = []
    scripts[A].calls = 0
    _, events = await send(user, await new_conversation(user), models=[A])
    assert by_model(events)[A][-1][1]["status"] == "complete"
    models = {m["id"]: m for m in await user.get_json("/api/models")}
    assert models[A]["status"] == "ok"


async def test_stop_one_model_keeps_its_partial_answer(user: ApiClient, scripts):
    scripts[A].delay = 0.05
    scripts[A].chunks = [f"w{i} " for i in range(100)]
    conversation = await new_conversation(user)
    response = await user.post(
        f"/api/conversations/{conversation}/messages", {"content": "long please", "models": [A, B]}
    )
    generation_id = None
    text = ""
    async for line in response.content:
        text += line.decode()
        if generation_id is None and '"model":"script/alpha","text"' in text:
            start = next(
                d
                for n, d in parse_sse(text.rsplit("\n\n", 1)[0] + "\n\n")
                if n == "start" and d["model"] == A
            )
            generation_id = start["generation_id"]
            stop = await user.post(f"/api/generations/{generation_id}/cancel")
            assert stop.status == 200 and (await stop.json())["status"] == "stopping"
    done = next(d for n, d in parse_sse(text) if n == "done" and d["model"] == A)
    assert done["status"] == "stopped"
    assert 0 < done["usage"]["output_tokens"] < 100
    assert done["cost"] == 10 + 2 * done["usage"]["output_tokens"]
    tree = await user.get_json(f"/api/conversations/{conversation}")
    stopped = next(m for m in tree["messages"] if m["model"] == A)
    assert stopped["status"] == "stopped" and stopped["content"].startswith("w0 ")
    again = await user.post(f"/api/generations/{generation_id}/cancel")
    assert (await again.json())["status"] == "stopped"


async def test_closing_the_stream_does_not_stop_the_models(user: ApiClient, scripts):
    """Answers belong to the server: a client that goes away only stops receiving. (Its
    resumption and the single charge are in test_generation_resume.py.)"""
    for script in scripts.values():
        script.delay = 0.01
        script.chunks = [f"w{i} " for i in range(50)]
    conversation = await new_conversation(user)
    response = await user.post(
        f"/api/conversations/{conversation}/messages", {"content": "go", "models": [A, B]}
    )
    async for line in response.content:
        if b"event: delta" in line:
            break
    response.close()
    for _ in range(200):
        async with user.app[DB].read() as session:
            statuses = set(await session.scalars(select(Generation.status)))
        if "pending" not in statuses:
            break
        await asyncio.sleep(0.05)
    assert statuses == {"complete"}
    tree = await user.get_json(f"/api/conversations/{conversation}")
    answers = [m["content"] for m in tree["messages"] if m["role"] == "assistant"]
    assert answers == ["".join(f"w{i} " for i in range(50))] * 2
    assert (await user.get_json("/api/wallet"))["reserved"] == 0


async def test_regenerate_makes_a_sibling_and_parent_id_makes_a_branch(user: ApiClient, scripts):
    conversation = await new_conversation(user)
    _, events = await send(user, conversation, "First", models=[A])
    first_answer = by_model(events)[A][-1][1]["message_id"]
    response = await user.post(f"/api/messages/{first_answer}/regenerate", {})
    assert response.status == 200
    regenerated = by_model(parse_sse(await response.text()))[A][-1][1]["message_id"]
    _, events = await send(user, conversation, "Follow-up", models=[B], parent_id=first_answer)
    tree = await user.get_json(f"/api/conversations/{conversation}")
    by_id = {m["id"]: m for m in tree["messages"]}
    assert by_id[regenerated]["parent_id"] == by_id[first_answer]["parent_id"]
    follow_up = next(m for m in tree["messages"] if m["content"] == "Follow-up")
    assert follow_up["parent_id"] == first_answer
    # The follow-up saw the branch it continues: First, alpha's answer, Follow-up.
    seen = [m.content for m in scripts[B].requests[-1].messages]
    assert seen == ["First", "Hello from alpha", "Follow-up"]
    # Editing the first prompt = a sibling prompt under the same (root) parent.
    _, events = await send(user, conversation, "First, edited", models=[A])
    tree = await user.get_json(f"/api/conversations/{conversation}")
    roots = [m for m in tree["messages"] if m["parent_id"] is None]
    assert {m["content"] for m in roots} >= {"First"}


async def test_history_is_trimmed_to_the_context_window_and_the_reply_says_so(
    user: ApiClient, scripts
):
    conversation = await new_conversation(user)
    long_prompt = "word " * 300  # about 300 tokens; the window is 1000 with 100 for the answer
    parent = None
    for round_ in range(4):
        _, events = await send(
            user, conversation, f"{round_} " + long_prompt, models=[A], parent_id=parent
        )
        parent = by_model(events)[A][-1][1]["message_id"]
    start = by_model(events)[A][0][1]
    sent = scripts[A].requests[-1].messages
    # Seven messages in the branch; only the newest ones fit next to a 100-token answer.
    assert start["dropped_turns"] == 7 - len(sent) and start["dropped_turns"] >= 3
    assert sent[-1].content.startswith("3 ") and not sent[0].content.startswith("0 ")
    tree = await user.get_json(f"/api/conversations/{conversation}")
    assert tree["messages"][-1]["generation"]["dropped_turns"] == start["dropped_turns"]


async def test_ratings_feed_the_catalog_average(user: ApiClient, make_client):
    conversation = await new_conversation(user)
    _, events = await send(user, conversation)
    answers = {m: e[-1][1]["message_id"] for m, e in by_model(events).items()}
    assert (await user.post(f"/api/messages/{answers[A]}/rating", {"stars": 4})).status == 200
    assert (
        await user.post(f"/api/messages/{answers[A]}/rating", {"stars": 2, "comment": "meh"})
    ).status == 200
    bad = await user.post(f"/api/messages/{answers[A]}/rating", {"stars": 6})
    assert bad.status == 422
    models = {m["id"]: m for m in await user.get_json("/api/models")}
    assert models[A]["rating"] == {"average": 2.0, "count": 1}
    other = await make_client()
    await other.register_and_login("other@example.com")
    assert (await other.post(f"/api/messages/{answers[A]}/rating", {"stars": 5})).status == 404


async def test_other_users_cannot_see_or_touch_a_conversation(user: ApiClient, make_client):
    conversation = await new_conversation(user)
    _, events = await send(user, conversation, models=[A])
    generation = by_model(events)[A][0][1]["generation_id"]
    answer = by_model(events)[A][-1][1]["message_id"]
    other = await make_client()
    await other.register_and_login("intruder@example.com")
    await other.mark_verified()
    for method, path, body in [
        ("GET", f"/api/conversations/{conversation}", None),
        ("PATCH", f"/api/conversations/{conversation}", {"title": "mine"}),
        ("DELETE", f"/api/conversations/{conversation}", None),
        ("POST", f"/api/conversations/{conversation}/messages", {"content": "x", "models": [A]}),
        ("POST", f"/api/messages/{answer}/regenerate", {}),
        ("POST", f"/api/generations/{generation}/cancel", None),
    ]:
        response = await other.request(method, path, json=body)
        assert response.status == 404, (method, path, response.status)
    assert (await user.get_json(f"/api/conversations/{conversation}"))["title"] == "Say hello"


async def test_conversations_list_search_rename_delete(user: ApiClient):
    ids = []
    for title in ("Alpha plans", "Beta notes", "Gamma plans"):
        ids.append((await (await user.post("/api/conversations", {"title": title})).json())["id"])
    page = await user.get_json("/api/conversations?limit=2")
    assert [c["title"] for c in page["conversations"]] == ["Gamma plans", "Beta notes"]
    rest = await user.get_json(f"/api/conversations?limit=2&before={page['next_cursor']}")
    assert [c["title"] for c in rest["conversations"]] == ["Alpha plans"]
    assert rest["next_cursor"] is None
    found = await user.get_json("/api/conversations?q=plans")
    assert {c["title"] for c in found["conversations"]} == {"Alpha plans", "Gamma plans"}
    renamed = await user.patch(f"/api/conversations/{ids[0]}", {"title": "Renamed"})
    assert (await renamed.json())["title"] == "Renamed"
    assert (await user.delete(f"/api/conversations/{ids[1]}")).status == 204
    assert (await user.get(f"/api/conversations/{ids[1]}")).status == 404


async def test_messages_are_not_written_per_chunk(user: ApiClient, scripts):
    """Streaming writes nothing to the database until a generation finishes."""
    scripts[A].chunks = [f"c{i} " for i in range(50)]
    scripts[A].delay = 0.01
    conversation = await new_conversation(user)
    with Statements(user.app) as statements:
        await send(user, conversation, models=[A])
    # Only the tables an answer's text goes to: the app's periodic jobs (the stale-generation
    # sweep, the analytics rollup) share the engine and may write elsewhere meanwhile.
    written = re.compile(
        r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+[`\"]?(messages|generations)\b", re.I
    )
    writes = [s for s in statements if written.match(s)]
    assert 0 < len(writes) < 10  # bounded by the request, not by the 50 chunks


async def test_a_prompt_without_parent_continues_the_newest_message(user: ApiClient, scripts):
    conversation = await new_conversation(user)
    await send(user, conversation, "First", models=[A])
    await send(user, conversation, "Second", models=[A])
    assert [m.content for m in scripts[A].requests[-1].messages] == [
        "First",
        "Hello from alpha",
        "Second",
    ]
    await send(user, conversation, "A fresh start", models=[A], parent_id=None)
    assert [m.content for m in scripts[A].requests[-1].messages] == ["A fresh start"]
