"""multinotes-acme against a local fake of the Acme API: in the console, settings with a secret,
an answer streamed through the real chat API and billed from the provider's usage, and every
failure mapped to the error that tells the user what to do."""

from __future__ import annotations

import json

import multinotes_acme
import pytest
from fake_api import API_KEY

from multinotes.plugin import (
    GenerationRequest,
    NeedsKey,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.testing import make_request, plugin_client


def events_of(body: str) -> list[tuple[str, dict[str, object]]]:
    """The (event, data) pairs of a server-sent-events answer."""
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields and "data" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_the_plugin_appears_in_the_console_and_streams_an_answer(tmp_path, fake):
    server, url = fake
    async with plugin_client(tmp_path, [("acme", multinotes_acme)]) as api:
        await api.register_admin()
        [plugin] = await api.get_json("/api/admin/plugins")
        assert (plugin["name"], plugin["kinds"], plugin["enabled"]) == (
            "acme",
            ["provider"],
            True,
        )
        response = await api.patch(
            "/api/admin/plugins/acme", {"settings": {"api_key": API_KEY, "base_url": url}}
        )
        assert response.status == 200, await response.text()
        assert API_KEY not in await response.text()  # a secret is never shown again

        conversation = (await (await api.post("/api/conversations", {})).json())["id"]
        response = await api.post(
            f"/api/conversations/{conversation}/messages",
            {"content": "hello there", "models": ["acme/small"]},
        )
        assert response.status == 200, await response.text()
        events = events_of(await response.text())
        text = "".join(str(data["text"]) for name, data in events if name == "delta")
        assert text == "You said: hello there"
        assert server.requests[0]["model"] == "small"


async def test_a_disabled_plugin_takes_its_models_away(tmp_path):
    async with plugin_client(tmp_path, [("acme", multinotes_acme)]) as api:
        await api.register_admin()
        models = {m["id"] for m in await api.get_json("/api/models")}
        assert "acme/small" in models
        response = await api.patch("/api/admin/plugins/acme", {"enabled": False})
        assert response.status == 200
        models = {m["id"] for m in await api.get_json("/api/models")}
        assert "acme/small" not in models


async def stream(url: str, key: str | None) -> tuple[str, GenerationRequest]:
    [model, _] = await multinotes_acme.PROVIDER.list_models(None)
    settings = multinotes_acme.AcmeSettings(base_url=url, api_key=key)
    # As the core builds it: the key and base URL read from the settings and passed in.
    request = make_request(
        model,
        settings,
        "Say hello",
        options={"temperature": 0.5},
        timeout=10.0,
        provider=multinotes_acme.PROVIDER,
    )
    text = "".join([str(chunk) async for chunk in model.stream(request)])
    return text, request


async def test_usage_is_the_providers_and_options_are_sent(fake):
    server, url = fake
    text, request = await stream(url, API_KEY)
    assert text == "You said: Say hello"
    assert (request.usage.input_tokens, request.usage.output_tokens) == (2, 4)
    assert server.requests[0]["temperature"] == 0.5


async def test_unknown_options_are_refused():
    [model, _] = await multinotes_acme.PROVIDER.list_models(None)
    with pytest.raises(ValueError):
        model.Options(temprature=1)


async def test_a_missing_key_fails_before_any_request(fake):
    server, url = fake
    with pytest.raises(NeedsKey):
        await stream(url, None)
    assert server.requests == []


@pytest.mark.parametrize(
    ("failure", "error"),
    [("401", NeedsKey), ("429", ProviderRateLimited), ("500", ProviderUnavailable)],
)
async def test_failures_map_to_the_cores_errors(fake, failure, error):
    server, url = fake
    server.next_failures.append(failure)
    with pytest.raises(error) as raised:
        await stream(url, API_KEY)
    assert len(server.requests) == 1  # never retried behind the core's back
    if failure == "429":
        assert raised.value.retry_after == 7


async def test_an_unreachable_server_is_unavailable():
    with pytest.raises(ProviderUnavailable):
        await stream("http://127.0.0.1:9", API_KEY)
