"""The finish line of the AI workspace: with the OpenAI plugin's base URL pointing at an
OpenAI-compatible server (here a local fake speaking the real wire protocol, driven by the
official SDK), one prompt goes to two models, both stream, stop works, and the wallet is charged
exactly what the reported usage costs."""

from __future__ import annotations

import math

import pytest

from multinotes.app import create_app
from multinotes.keys import CATALOG
from multinotes.plugins.providers.openai.tests.fake_openai import FakeOpenAI
from multinotes.testing import app_client
from tests.fakes import serve_fake
from tests.support.sse import by_model, parse_sse

GPT4O, MINI = "openai/gpt-4o", "openai/gpt-4o-mini"


@pytest.fixture
async def fake():
    server = FakeOpenAI(api_key="sk-e2e-key-000000000000", reply="One two three four five")
    async with serve_fake(server.app()) as url:
        server.url = url  # type: ignore[attr-defined]
        yield server


@pytest.fixture
async def client(make_settings, fake):
    settings = make_settings(
        plugins={"openai": {"base_url": fake.url + "/v1", "api_key": "sk-e2e-key-000000000000"}}
    )
    async with app_client(create_app(settings)) as api:
        await api.register_admin()
        await api.mark_verified()
        yield api


def expected_cost(model: dict, usage: dict) -> int:
    pricing = model["pricing"]
    amount = (
        usage["input_tokens"] * pricing["input_per_million"]
        + usage["output_tokens"] * pricing["output_per_million"]
    ) / 1_000_000
    return math.ceil(amount - 1e-9)


async def test_one_prompt_two_openai_models_stream_and_are_charged_exactly(client, fake):
    models = {m["id"]: m for m in await client.get_json("/api/models")}
    assert models[GPT4O]["status"] == "ok" and models[MINI]["status"] == "ok"
    before = (await client.get_json("/api/wallet"))["balance"]
    conversation = (await (await client.post("/api/conversations", {})).json())["id"]
    response = await client.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "Count to five", "models": [GPT4O, MINI]},
    )
    events = parse_sse(await response.text())
    grouped = by_model(events)
    charged = 0
    for model in (GPT4O, MINI):
        text = "".join(d["text"] for n, d in grouped[model] if n == "delta")
        assert text == "One two three four five"
        done = grouped[model][-1][1]
        assert done["status"] == "complete"
        assert done["usage"]["output_tokens"] == 5 and done["usage"]["input_tokens"] > 0
        assert done["cost"] == expected_cost(models[model], done["usage"])
        charged += done["cost"]
    assert (await client.get_json("/api/wallet"))["balance"] == before - charged
    chats = [r for r in fake.requests if r.path == "/v1/chat/completions"]
    assert {r.json["model"] for r in chats} == {"gpt-4o", "gpt-4o-mini"}
    assert all(r.json["stream_options"] == {"include_usage": True} for r in chats)
    assert all(r.headers["Authorization"] == "Bearer sk-e2e-key-000000000000" for r in chats)


async def test_one_http_session_for_the_chats_lives_as_long_as_the_app(make_settings, fake):
    """Chats are read over the app's one aiohttp session for OpenAI-wire servers (not the SDK,
    issue #17): its connections are reused by the next answer, and the key travels with each
    request, so a rotated key is used from the next request on."""
    settings = make_settings(
        plugins={"openai": {"base_url": fake.url + "/v1", "api_key": "sk-e2e-key-000000000000"}}
    )
    async with app_client(create_app(settings)) as api:
        await api.register_admin()
        await api.mark_verified()
        clients = api.app[CATALOG].clients

        async def ask(models: list[str]) -> list:
            conversation = (await (await api.post("/api/conversations", {})).json())["id"]
            response = await api.post(
                f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": models}
            )
            events = parse_sse(await response.text())
            assert [d["status"] for n, d in events if n == "done"] == ["complete"] * len(models)
            return events

        # Two models at once and a second request: one session.
        await ask([GPT4O, MINI])
        await ask([MINI])
        assert len(clients) == 1
        (shared,) = clients._clients.values()

        # A new key is used from the next request on, through the same session.
        fake.api_key = "sk-rotated-key-11111111111"
        response = await api.patch(
            "/api/admin/plugins/openai", {"settings": {"api_key": fake.api_key}}
        )
        assert response.status == 200, await response.text()
        await ask([MINI])
        assert fake.requests[-1].headers["Authorization"] == f"Bearer {fake.api_key}"
        assert list(clients._clients.values()) == [shared]
    assert shared.closed and len(clients) == 0  # closed with the app


async def test_stop_works_against_a_real_sdk_stream(client, fake):
    fake.reply = " ".join(f"w{i}" for i in range(200))
    fake.chunk_delay = 0.02
    conversation = (await (await client.post("/api/conversations", {})).json())["id"]
    response = await client.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "Long, please", "models": [GPT4O]},
    )
    text, stopped = "", False
    async for line in response.content:
        text += line.decode()
        if not stopped and text.count("event: delta") >= 3:
            start = next(
                d for n, d in parse_sse(text.rsplit("\n\n", 1)[0] + "\n\n") if n == "start"
            )
            await client.post(f"/api/generations/{start['generation_id']}/cancel")
            stopped = True
    done = next(d for n, d in parse_sse(text) if n == "done")
    assert done["status"] == "stopped"
    assert 3 <= done["usage"]["output_tokens"] < 200 or done["usage"]["output_tokens"] == 0


async def test_a_provider_401_is_a_clear_error_and_costs_nothing(client, fake):
    fake.next_failures.append("401")
    before = (await client.get_json("/api/wallet"))["balance"]
    conversation = (await (await client.post("/api/conversations", {})).json())["id"]
    response = await client.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [MINI]}
    )
    events = parse_sse(await response.text())
    error = next(d for n, d in events if n == "error")
    assert error["code"] == "needs_key" and "key" in error["message"].lower()
    assert (await client.get_json("/api/wallet"))["balance"] == before


async def test_models_need_a_key_before_they_can_be_used(make_settings, fake):
    settings = make_settings(plugins={"openai": {"base_url": fake.url + "/v1"}})
    async with app_client(create_app(settings)) as api:
        await api.register_admin()
        await api.mark_verified()
        models = {m["id"]: m for m in await api.get_json("/api/models")}
        assert models[GPT4O]["status"] == "needs_key" and not models[GPT4O]["available"]
        conversation = (await (await api.post("/api/conversations", {})).json())["id"]
        response = await api.post(
            f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [GPT4O]}
        )
        assert response.status == 422
        assert "API key" in (await response.json())["error"]["fields"]["models.0"]
    assert fake.requests == []


async def test_a_content_filter_refusal_fails_the_answer_and_counts_as_a_moderation_flag(
    client, fake
):
    """OpenAI ends a stream it moderated with finish_reason "content_filter"; Azure OpenAI
    refuses the prompt with 400 code "content_filter". Both fail the answer with
    ``content_filtered`` (not retried), and abuse detection counts them."""
    from tests.support.waiting import eventually

    rule = {"enabled": True, "action": "none", "threshold": 2, "window_minutes": 60}
    saved = await client.request("PUT", "/api/admin/abuse/rules/moderation_flags", json=rule)
    assert saved.status == 200
    fake.next_failures = ["filtered", "400_filtered"]
    conversation = (await (await client.post("/api/conversations", {})).json())["id"]
    for expected_text in ("One two ", ""):
        response = await client.post(
            f"/api/conversations/{conversation}/messages",
            {"content": "Something the filter refuses", "models": [GPT4O]},
        )
        events = parse_sse(await response.text())
        error = next(d for n, d in events if n == "error")
        assert error["code"] == "content_filtered" and "content filter" in error["message"]
        assert next(d for n, d in events if n == "done")["status"] == "failed"
        assert "".join(d["text"] for n, d in events if n == "delta") == expected_text
    assert len([r for r in fake.requests if r.path == "/v1/chat/completions"]) == 2

    async def reported() -> bool:
        found = (await client.get_json("/api/admin/abuse?rule=moderation_flags"))["hits"]
        return len(found) == 1 and found[0]["evidence"]["refusals_in_window"] == 2

    await eventually(reported)
