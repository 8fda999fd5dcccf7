"""Outgoing requests never follow redirects: an upstream answering 307 to another port (or
host) would otherwise receive the request, provider key included. Each SDK family the
providers use (openai, together, google-genai) is pointed at a fake upstream that redirects to
a second loopback server; the second server must see nothing, and the answer is a clear
provider error. So are the clients SDKs drive on sessions we hand them (Slack's), and a scan of
the source holds every outgoing client to the guard, so a new one cannot slip past it."""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from multinotes import outgoing
from multinotes.errors import ProviderError
from multinotes.plugins.providers.gemini import GeminiProvider, GeminiSettings
from multinotes.plugins.providers.openai import OpenAIProvider, OpenAISettings
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
    config = OpenAISettings(api_key=SecretStr("sk-key"), base_url=f"{upstream}/v1", timeout=5)
    error = await refused(OpenAIProvider(), "openai/gpt-4o-mini", config)
    assert error.error_code == "provider_redirect", error.message
    assert "redirect (HTTP 307)" in error.message
    assert target.hits == []


async def test_the_openai_compatible_reader_does_not_follow_a_redirect(
    upstream: str, target: Target
) -> None:
    """The OpenAI-compatible plugin reads the wire itself, on a guarded aiohttp session."""
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


async def test_a_guarded_session_refuses_a_redirect_whoever_sends_the_request(
    upstream: str, target: Target
) -> None:
    """``outgoing.client_session`` is for sessions an SDK drives (it would not pass
    ``allow_redirects=False``): a redirect is refused, never followed."""
    async with outgoing.client_session() as session:
        with pytest.raises(outgoing.RedirectRefused) as caught:
            await session.post(f"{upstream}/hook", json={"text": "hi"})
    assert caught.value.redirect_status == 307
    assert caught.value.location.startswith("http://127.0.0.1:")
    assert target.hits == []


async def test_slack_responses_do_not_follow_a_redirect(upstream: str, target: Target) -> None:
    from multinotes.plugins.integrations.slack import service as slack

    # slack-sdk's webhook client, given our session, would follow the 307 on its own.
    assert await slack.post_response(f"{upstream}/commands/1234", {"text": "hi"}) is False
    assert target.hits == []


ROOT = Path(__file__).resolve().parents[2]
#: Where the outgoing policy itself is built: the one place allowed to make raw clients.
POLICY = ROOT / "core" / "outgoing.py"


def sources() -> list[Path]:
    found = []
    for folder in (ROOT / "core", ROOT / "plugins"):
        for path in folder.rglob("*.py"):
            parts = set(path.relative_to(ROOT).parts)
            if parts & {"tests", "fakes", "plugin_templates"} or path == POLICY:
                continue
            found.append(path)
    return found


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def keyword_call(call: ast.Call, name: str) -> str:
    """The function called for keyword ``name`` (``connector=outgoing.connector()``)."""
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Call):
            return dotted(keyword.value.func)
    return ""


def no_redirects(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg is None and dotted(keyword.value).endswith("HTTPX_CLIENT_ARGS"):
            return True
        if keyword.arg == "follow_redirects" and isinstance(keyword.value, ast.Constant):
            return keyword.value.value is False
    return False


def test_every_outgoing_client_goes_through_the_guard() -> None:
    """aiohttp sessions (and Stripe's aiohttp client) connect through the guarded connector,
    which checks the address of every connection, a redirect's included; httpx clients are
    guarded and follow no redirect; requests only through ``outgoing.requests_session``."""
    problems: list[str] = []
    checked = 0
    for path in sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        guarded: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and dotted(node.func).endswith("guard_httpx_client"):
                guarded.update(id(arg) for arg in node.args)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = dotted(node.func)
            where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
            if name.endswith(("ClientSession", "AIOHTTPClient")):
                checked += 1
                if not keyword_call(node, "connector").endswith("outgoing.connector"):
                    problems.append(f"{where} without connector=outgoing.connector()")
            elif name in ("httpx.AsyncClient", "httpx.Client") or name.endswith(
                "DefaultAsyncHttpxClient"
            ):
                checked += 1
                if id(node) not in guarded or not no_redirects(node):
                    problems.append(f"{where} not guard_httpx_client(... HTTPX_CLIENT_ARGS)")
            elif name.startswith(("requests.", "urllib.request.", "http.client.")):
                problems.append(f"{where}: use outgoing.requests_session()")
            elif name == "razorpay.Client":
                checked += 1
                if not keyword_call(node, "session").endswith("outgoing.requests_session"):
                    problems.append(f"{where} without session=outgoing.requests_session()")
    assert problems == []
    assert checked >= 10  # the scan sees the clients (oauth, S3, providers, integrations, ...)
