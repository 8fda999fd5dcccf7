"""Outgoing requests never follow redirects: an upstream answering 307 to another port (or
host) would otherwise receive the request, provider key included. Each SDK family the
providers use (openai, together, google-genai) is pointed at a fake upstream that redirects to
a second loopback server; the second server must see nothing, and the answer is a clear
provider error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from multinotes.errors import ProviderError
from multinotes.plugins.providers.gemini import GeminiProvider, GeminiSettings
from multinotes.plugins.providers.openai_compatible import CompatibleProvider, CompatibleSettings
from multinotes.plugins.providers.together import TogetherProvider, TogetherSettings
from multinotes.providers import ChatMessage, Provider
from multinotes.testing import provider_request
from tests.fakes import serve_fake
from tests.support.provider_calls import run


class Target:
    """The server the redirects point at: records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.hits.append(f"{request.method} {request.path}")
            return web.json_response({"data": []})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


def redirector(target_url: str) -> web.Application:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(target_url + request.path_qs)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app


LLAMA = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"


@pytest.fixture
def target() -> Target:
    return Target()


@pytest.fixture
async def upstream(target: Target) -> AsyncIterator[str]:
    """An upstream that answers every request with a 307 to the target (another port)."""
    async with serve_fake(target.app()) as target_url, serve_fake(redirector(target_url)) as url:
        yield url


async def refused(provider: Provider, model_id: str, config: Any) -> ProviderError:
    model = next(m for m in await provider.list_models(config) if m.id == model_id)
    request = provider_request(provider, config, [ChatMessage("user", "hello")], model.Options())
    with pytest.raises(ProviderError) as caught:
        await run(model, request)
    return caught.value


async def test_the_openai_sdk_does_not_follow_a_redirect(upstream: str, target: Target) -> None:
    config = CompatibleSettings(
        connections=json.dumps([{"name": "box", "base_url": f"{upstream}/v1", "models": ["m"]}])
    )
    error = await refused(CompatibleProvider(), "box/m", config)
    assert error.error_code == "provider_redirect", error.message
    assert "redirect (HTTP 307)" in error.message
    assert target.hits == []


async def test_the_together_sdk_does_not_follow_a_redirect(upstream: str, target: Target) -> None:
    config = TogetherSettings(api_key=SecretStr("together-key"), base_url=upstream, timeout=5)
    error = await refused(TogetherProvider(), LLAMA, config)
    assert error.error_code == "provider_redirect", error.message
    assert target.hits == []


async def test_the_gemini_sdk_does_not_follow_a_redirect(upstream: str, target: Target) -> None:
    config = GeminiSettings(api_key=SecretStr("gemini-key"), base_url=upstream, timeout=5)
    error = await refused(GeminiProvider(), "gemini/gemini-2.5-flash", config)
    assert error.error_code == "provider_redirect", error.message
    assert target.hits == []
