"""The OpenAI-compatible provider plugin: named connections to servers such as Ollama, vLLM,
LM Studio or OpenRouter, each played here by a local fake (fake_compatible.py, beside this file)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import Any

import pytest
from aiohttp import web
from fake_compatible import FakeCompatible, tiny_png
from pydantic import ValidationError

from multinotes.plugin import (
    Attachment,
    ChatMessage,
    ContentFiltered,
    Model,
    NeedsKey,
    Provider,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.plugins.providers.openai_compatible import (
    CompatibleProvider,
    CompatibleSettings,
)
from multinotes.testing import (
    ProviderConformance,
    make_request,
    refused_url,
    serve_fake,
)
from multinotes.testing import (
    collect as run,
)


async def listed_model(provider: Provider, model_id: str, config: Any = None) -> Model:
    """The model with this id, as ``provider`` lists it for ``config``."""
    return next(m for m in await provider.list_models(config) if m.id == model_id)


@pytest.fixture
def local() -> FakeCompatible:
    """A keyless local server (like Ollama) that discovers its models."""
    return FakeCompatible(api_key=None, models=["llama3.2", "qwen2.5-coder"])


@pytest.fixture
def hosted() -> FakeCompatible:
    """A hosted server that wants a key (like OpenRouter)."""
    return FakeCompatible(api_key="sk-or-secret", models=["meta-llama/llama-3.1-8b-instruct"])


@pytest.fixture
async def local_url(local: FakeCompatible) -> AsyncIterator[str]:
    async with serve_fake(local.app()) as url:
        yield f"{url}/v1"


@pytest.fixture
async def hosted_url(hosted: FakeCompatible) -> AsyncIterator[str]:
    async with serve_fake(hosted.app()) as url:
        yield f"{url}/v1"


def settings(
    *connections: dict[str, Any], keys: dict[str, str] | None = None
) -> CompatibleSettings:
    return CompatibleSettings(
        connections=json.dumps(list(connections)),
        api_keys=json.dumps(keys) if keys is not None else None,
    )


# -- model lists --------------------------------------------------------------------------------


async def test_without_connections_there_are_no_models():
    assert await CompatibleProvider().list_models(CompatibleSettings()) == []


async def test_models_are_discovered_from_the_server_and_cached(local, local_url):
    provider = CompatibleProvider()
    config = settings({"name": "ollama", "base_url": local_url})

    models = await provider.list_models(config)
    again = await provider.list_models(config)

    assert [m.id for m in models] == ["ollama/llama3.2", "ollama/qwen2.5-coder"]
    assert [m.id for m in again] == [m.id for m in models]
    assert local.paths() == ["/v1/models"]  # the second listing came from the cache
    assert models[0].name == "llama3.2 (ollama)"
    assert models[0].capabilities == {"text"}


async def test_configured_models_are_offered_without_asking_the_server(local, local_url):
    connection = {
        "name": "vllm",
        "base_url": local_url,
        "models": ["mistral-7b", "phi-3"],
        "context_window": 32_000,
        "max_output": 2_000,
        "prices": {"input_per_million": 5_000, "output_per_million": 15_000},
        "capabilities": ["text", "code"],
    }
    models = await CompatibleProvider().list_models(settings(connection))

    assert [m.id for m in models] == ["vllm/mistral-7b", "vllm/phi-3"]
    assert (models[0].context_window, models[0].max_output) == (32_000, 2_000)
    assert models[0].pricing.input_per_million == 5_000
    assert models[0].pricing.output_per_million == 15_000
    assert models[0].capabilities == {"text", "code"}
    assert local.requests == []


async def test_two_connections_at_once_with_one_down(local, local_url, hosted, hosted_url):
    config = settings(
        {"name": "ollama", "base_url": local_url},
        {"name": "openrouter", "base_url": hosted_url},
        {"name": "offline", "base_url": refused_url()},
        keys={"openrouter": "sk-or-secret"},
    )
    models = await CompatibleProvider().list_models(config)

    assert [m.id for m in models] == [
        "ollama/llama3.2",
        "ollama/qwen2.5-coder",
        "openrouter/meta-llama/llama-3.1-8b-instruct",
    ]
    assert hosted.requests[-1].headers["Authorization"] == "Bearer sk-or-secret"


async def test_a_server_that_rejects_the_key_offers_no_models(hosted, hosted_url):
    config = settings({"name": "openrouter", "base_url": hosted_url})
    assert await CompatibleProvider().list_models(config) == []


# -- chat ---------------------------------------------------------------------------------------


async def test_chat_streams_through_the_connection_with_its_key(hosted, hosted_url):
    provider = CompatibleProvider()
    config = settings(
        {"name": "openrouter", "base_url": hosted_url}, keys={"openrouter": "sk-or-secret"}
    )
    chosen = await listed_model(provider, "openrouter/meta-llama/llama-3.1-8b-instruct", config)
    request = make_request(chosen, config, "Tell me a joke", options={"max_tokens": 64})

    chunks = await run(chosen, request)

    assert "".join(chunks) == hosted.reply
    assert (request.usage.input_tokens, request.usage.output_tokens) == (4, 5)
    sent = hosted.requests[-1]
    assert sent.headers["Authorization"] == "Bearer sk-or-secret"
    assert sent.json["model"] == "meta-llama/llama-3.1-8b-instruct"
    assert sent.json["max_tokens"] == 64  # what older compatible servers understand
    assert sent.json["stream_options"] == {"include_usage": True}


async def test_a_keyless_server_gets_a_placeholder_not_the_environments_key(
    local, local_url, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    provider = CompatibleProvider()
    config = settings({"name": "ollama", "base_url": local_url, "models": ["llama3.2"]})
    chosen = await listed_model(provider, "ollama/llama3.2", config)

    await run(chosen, make_request(chosen, config, "hi"))

    assert "sk-real-openai-key" not in local.requests[-1].headers["Authorization"]


async def test_usage_is_estimated_when_the_server_reports_none(local, local_url):
    local.report_usage = False
    provider = CompatibleProvider()
    config = settings({"name": "ollama", "base_url": local_url, "models": ["llama3.2"]})
    chosen = await listed_model(provider, "ollama/llama3.2", config)
    request = make_request(chosen, config, "Count to three, please")

    await run(chosen, request)

    assert request.usage.input_tokens == math.ceil(len("Count to three, please") / 4)
    assert request.usage.output_tokens == math.ceil(len(local.reply) / 4)


async def test_images_are_sent_only_to_vision_connections(local, local_url):
    provider = CompatibleProvider()
    image = ChatMessage("user", "What is this?", (Attachment("image/png", tiny_png()),))
    text_only = settings({"name": "plain", "base_url": local_url, "models": ["llama3.2"]})
    vision = settings(
        {"name": "llava", "base_url": local_url, "models": ["llava"], "capabilities": ["vision"]}
    )

    chosen = await listed_model(provider, "plain/llama3.2", text_only)
    await run(chosen, make_request(chosen, text_only, image))
    assert local.requests[-1].json["messages"][0]["content"] == "What is this?"

    chosen = await listed_model(provider, "llava/llava", vision)
    await run(chosen, make_request(chosen, vision, image))
    parts = local.requests[-1].json["messages"][0]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_connection_removed_since_listing_is_reported(local, local_url):
    provider = CompatibleProvider()
    config = settings({"name": "ollama", "base_url": local_url, "models": ["llama3.2"]})
    chosen = await listed_model(provider, "ollama/llama3.2", config)
    with pytest.raises(ProviderError, match="no longer configured"):
        await run(chosen, make_request(chosen, CompatibleSettings(), "hi"))


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("401", NeedsKey),
        ("429", ProviderRateLimited),
        ("500", ProviderUnavailable),
        ("cut", ProviderUnavailable),
    ],
)
async def test_failures_map_like_the_openai_plugin_and_name_the_connection(
    local, local_url, failure, error
):
    provider = CompatibleProvider()
    config = settings({"name": "ollama", "base_url": local_url, "models": ["llama3.2"]})
    chosen = await listed_model(provider, "ollama/llama3.2", config)
    local.next_failures.append(failure)

    with pytest.raises(error) as caught:
        await run(chosen, make_request(chosen, config, "hi"))

    assert '"ollama"' in caught.value.message
    if failure == "429":
        assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("failure", "error", "message", "text_before"),
    [
        ("403", NeedsKey, "Plugins console", ""),
        ("400", ProviderError, "Connection \"ollama\": Invalid value for 'temperature'.", ""),
        ("400_filtered", ContentFiltered, "content filter", ""),
        ("filtered", ContentFiltered, "content filter", "Hello from "),
        ("slow", ProviderUnavailable, "in time", ""),
        ("truncated", ProviderUnavailable, "stream cut", "Hello from the fake model."),
        ("malformed", ProviderBadResponse, "malformed", "Hello "),
        ("misshapen", ProviderBadResponse, "malformed", "Hello "),
    ],
)
async def test_every_failure_of_the_wire_maps_to_the_same_error_as_the_openai_plugin(
    local, local_url, failure, error, message, text_before
):
    """The plugin reads the stream itself (not through the SDK): each way a server can fail
    ends as the error the OpenAI plugin's SDK path gives, after the text that arrived."""
    # Far beyond the request's 0.4 s: the bound below holds on a busy machine and still tells
    # an honoured timeout from a wait for the server.
    local.slow_seconds = 10.0
    provider = CompatibleProvider()
    config = settings({"name": "ollama", "base_url": local_url, "models": ["llama3.2"]})
    chosen = await listed_model(provider, "ollama/llama3.2", config)
    local.next_failures.append(failure)
    received: list = []

    started = time.monotonic()
    with pytest.raises(error) as caught:
        await run(chosen, make_request(chosen, config, "hi", timeout=0.4), into=received)

    assert type(caught.value) is error
    assert message in caught.value.message
    assert "".join(received) == text_before
    assert len(local.requests) == 1  # nothing retried behind the core's back
    # Nothing of the transport travels with the error.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    assert time.monotonic() - started < 5


def sse_server(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> web.Application:
    """A server that answers every chat request with these bytes."""

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=headers or {})
        response.content_type = "text/event-stream"
        await response.prepare(request)
        for index in range(0, len(body), 7):  # in small pieces: events split across reads
            await response.write(body[index : index + 7])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> str:
    choices = (
        []
        if content is None and finish is None
        else [
            {
                "index": 0,
                "delta": {} if content is None else {"content": content},
                "finish_reason": finish,
            }
        ]
    )
    return json.dumps({"object": "chat.completion.chunk", "choices": choices, **extra})


async def stream_from(app: web.Application) -> tuple[list[Any], Any]:
    provider = CompatibleProvider()
    async with serve_fake(app) as url:
        config = settings({"name": "box", "base_url": f"{url}/v1", "models": ["m"]})
        chosen = await listed_model(provider, "box/m", config)
        request = make_request(chosen, config, "hi")
        return await run(chosen, request), request


async def test_the_event_stream_is_read_as_server_sent_events_are_defined():
    """CRLF line ends, an event's data over several lines, comments, ids and an event name
    are read as SSE defines them; nothing after ``[DONE]`` is read."""
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    head, tail = chunk("lo").split(", ", 1)  # one JSON object over two data lines
    body = (
        ": a comment\r\n"
        f"id: 1\r\ndata: {chunk('Hel')}\r\n\r\n"
        f"event: message\ndata: {head},\ndata: {tail}\n\n"
        f"data: {chunk(finish='stop')}\n\n"
        f"data: {chunk(usage=usage)}\n\n"
        "data: [DONE]\n\n"
        f"data: {chunk('never')}\n\n"
    ).encode()

    chunks, request = await stream_from(sse_server(body))

    assert chunks == ["Hel", "lo"]
    assert (request.usage.input_tokens, request.usage.output_tokens) == (3, 2)


async def test_an_error_event_mid_answer_is_unavailable_with_the_servers_message():
    body = (
        f"data: {chunk('Par')}\n\n"
        'data: {"error": {"message": "The  model\\n crashed.", "type": "server_error"}}\n\n'
    ).encode()
    with pytest.raises(ProviderUnavailable) as caught:
        await stream_from(sse_server(body))
    assert caught.value.message == 'Connection "box" failed mid-answer: The model crashed.'


async def test_an_error_status_without_a_json_body_still_names_the_status():
    with pytest.raises(ProviderError) as caught:
        await stream_from(sse_server(b"<html>nope</html>", status=404))
    assert caught.value.message == 'Connection "box": Error code: 404'
    with pytest.raises(ProviderError) as caught:
        await stream_from(sse_server(b"", status=503))
    assert type(caught.value) is ProviderUnavailable and "HTTP 503" in caught.value.message


async def test_a_quota_error_is_not_a_rate_limit():
    body = json.dumps(
        {"error": {"message": "You exceeded your quota.", "code": "insufficient_quota"}}
    ).encode()
    with pytest.raises(ProviderError) as caught:
        await stream_from(sse_server(body, status=429, headers={"Retry-After": "3"}))
    assert type(caught.value) is ProviderError
    assert caught.value.message == 'Connection "box": You exceeded your quota.'


def test_the_plugin_streams_and_discovers_without_the_openai_sdk(tmp_path):
    """The plugin reads the wire itself (the SDK's per-chunk decoding cost more CPU than the
    rest of a streamed answer, bench/README.md), so a process whose only provider is an
    OpenAI-compatible server never imports the SDK (~14 MB)."""
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from multinotes.plugin import outgoing
        from multinotes.plugins.providers.openai_compatible import (
            CompatibleProvider, CompatibleSettings)
        from multinotes.testing import LOOPBACK_ALLOW, collect, make_request, serve_fake
        from multinotes.testing_openai import FakeOpenAIWire

        async def main():
            outgoing.install(outgoing.OutgoingPolicy.parse(LOOPBACK_ALLOW))
            fake = FakeOpenAIWire(api_key=None, models=["llama3.2"])
            provider = CompatibleProvider()
            provider.warm()
            async with serve_fake(fake.app()) as url:
                connection = {"name": "ollama", "base_url": url + "/v1"}
                config = CompatibleSettings(connections=json.dumps([connection]))
                [model] = await provider.list_models(config)
                chunks = await collect(model, make_request(model, config, "hi"))
            print(json.dumps(["".join(chunks), "openai" in sys.modules]))

        asyncio.run(main())
        """
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text, sdk_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert text == "Hello from the fake model."
    assert sdk_loaded is False


# -- check --------------------------------------------------------------------------------------


async def test_check_reports_each_connection(local, local_url, hosted, hosted_url):
    config = settings(
        {"name": "ollama", "base_url": local_url},
        {"name": "openrouter", "base_url": hosted_url, "models": ["meta-llama/x", "gone/y"]},
        {"name": "offline", "base_url": refused_url()},
        keys={"openrouter": "sk-or-secret"},
    )
    report = await CompatibleProvider().check(config)

    lines = report.splitlines()
    assert lines[0] == "ollama: connected, 2 models"
    assert lines[1].startswith("openrouter: 2 models configured, not listed by the server:")
    assert lines[2].startswith("offline: failed: Could not reach")


async def test_check_fails_when_no_connection_answers():
    with pytest.raises(ProviderError, match="No connections"):
        await CompatibleProvider().check(CompatibleSettings())
    config = settings({"name": "offline", "base_url": refused_url()})
    with pytest.raises(ProviderUnavailable, match="offline: failed"):
        await CompatibleProvider().check(config)


async def test_check_does_not_use_the_discovery_cache(local, local_url):
    provider = CompatibleProvider()
    config = settings({"name": "ollama", "base_url": local_url})
    await provider.list_models(config)
    await provider.check(config)
    assert local.paths() == ["/v1/models", "/v1/models"]


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not json", "not a valid list of connections"),
        ('[{"name": "Bad Name", "base_url": "http://x/v1"}]', "0.name"),
        ('[{"name": "a", "base_url": "ftp://x"}]', "0.base_url"),
        ('[{"name": "a", "base_url": "http://x/v1", "colour": "red"}]', "0.colour"),
        (
            '[{"name": "a", "base_url": "http://x/v1"}, {"name": "a", "base_url": "http://y/v1"}]',
            "unique: a",
        ),
    ],
)
def test_connections_are_validated_with_a_readable_message(text, complaint):
    with pytest.raises(ValidationError) as caught:
        CompatibleSettings(connections=text)
    assert complaint in caught.value.errors()[0]["msg"]


def test_a_malformed_keys_field_never_echoes_the_secret():
    with pytest.raises(ValidationError) as caught:
        CompatibleSettings(api_keys="sk-oops-not-json")
    assert "sk-oops" not in str(caught.value)
    assert "JSON object" in caught.value.errors()[0]["msg"]


def test_declared_as_an_entry_point_like_a_third_party_plugin():
    """Declared in the ``multinotes`` entry-point group, so it loads like a third-party plugin."""
    import multinotes.plugins.providers.openai_compatible as plugin

    [point] = [e for e in entry_points(group="multinotes") if e.name == "openai_compatible"]
    assert point.load() is plugin
    assert plugin.register_providers and plugin.register_settings


# -- the provider contract ----------------------------------------------------------------------


class TestConformance(ProviderConformance):
    """A hosted connection that wants a key: the suite's failure cases, the key in the
    connection's settings (this provider has no single key for the core to pass in)."""

    model_id = "hosted/gpt-4o-mini"
    api_key = "sk-conformance-hosted"

    def make_fake(self) -> FakeCompatible:
        return FakeCompatible(api_key=self.api_key)

    def make_provider(self) -> CompatibleProvider:
        return CompatibleProvider()

    def make_settings(self, url: str, api_key: str | None) -> CompatibleSettings:
        connection = {"name": "hosted", "base_url": f"{url}/v1", "models": ["gpt-4o-mini"]}
        return settings(connection, keys={"hosted": api_key} if api_key else None)
