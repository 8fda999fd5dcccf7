"""Outgoing requests reach only addresses the operator allows: a provider base URL (or any
other outgoing URL) naming loopback, a host name that resolves to it, the cloud metadata
address, an IPv4-mapped IPv6 or a decimal/octal IPv4 form is refused at connect time with an
error that names MULTINOTES_OUTGOING_ALLOW, and the same URL works once the operator allows it.

The suite's fakes listen on 127.0.0.1, which the test settings allow; these tests take that
allowance away (``strict``) to see the guard, then give it back the way an operator would."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from multinotes import outgoing
from multinotes.app import create_app
from multinotes.errors import ProviderError
from multinotes.plugin import outgoing as public_outgoing
from multinotes.plugins.providers.gemini import GeminiProvider, GeminiSettings
from multinotes.plugins.providers.gemini.tests.fake_gemini import FakeGemini
from multinotes.plugins.providers.openai.tests.fake_openai import FakeOpenAI
from multinotes.plugins.providers.openai_compatible import CompatibleProvider, CompatibleSettings
from multinotes.plugins.providers.together import TogetherProvider, TogetherSettings
from multinotes.plugins.providers.together.tests.fake_together import FakeTogether
from multinotes.providers import ChatMessage, Provider
from multinotes.settings import Settings
from multinotes.testing import app_client, provider_request
from tests.fakes import serve_fake
from tests.support.provider_calls import run

SETTING = "MULTINOTES_OUTGOING_ALLOW"


@pytest.fixture
def strict() -> None:
    """Production's policy with nothing allowed (conftest restores the suite's afterwards)."""
    outgoing.install(outgoing.OutgoingPolicy())


def allow(*entries: str) -> None:
    outgoing.install(outgoing.OutgoingPolicy.parse(entries))


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOpenAI, int]]:
    server = FakeOpenAI(api_key=None)
    async with serve_fake(server.app()) as url:
        yield server, int(url.rsplit(":", 1)[1])


async def answer(provider: Provider, model_id: str, config: Any) -> str:
    model = next(m for m in await provider.list_models(config) if m.id == model_id)
    request = provider_request(provider, config, [ChatMessage("user", "hello")], model.Options())
    chunks = await run(model, request)
    return "".join(c for c in chunks if isinstance(c, str))


async def refused(provider: Provider, model_id: str, config: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await answer(provider, model_id, config)
    return caught.value


def compatible(base_url: str) -> CompatibleSettings:
    connection = {"name": "box", "base_url": base_url, "models": ["gpt-4o"]}
    return CompatibleSettings(connections=json.dumps([connection]))


# One loopback server, named six ways: each must be refused, each allowed by 127.0.0.1/32.
LOOPBACK_FORMS = [
    "127.0.0.1",
    "localhost",
    "[::ffff:127.0.0.1]",
    "2130706433",  # decimal
    "0177.1",  # octal, short form (httpx rejects a four-part octal address outright)
    "0x7f.0.0.1",  # hex
]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
async def test_a_provider_pointed_at_loopback_is_refused_with_an_actionable_error(
    strict: None, fake: tuple[FakeOpenAI, int], host: str
) -> None:
    server, port = fake
    error = await refused(
        CompatibleProvider(), "box/gpt-4o", compatible(f"http://{host}:{port}/v1")
    )
    assert error.error_code == "outgoing_refused", error.message
    assert error.status == 502
    assert "loopback" in error.message and SETTING in error.message
    assert server.requests == []


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
async def test_the_same_provider_works_once_the_operator_allows_the_address(
    strict: None, fake: tuple[FakeOpenAI, int], host: str
) -> None:
    server, port = fake
    allow("127.0.0.1/32")
    text = await answer(CompatibleProvider(), "box/gpt-4o", compatible(f"http://{host}:{port}/v1"))
    assert text == server.reply
    assert [r.path for r in server.requests] == ["/v1/chat/completions"]


async def test_a_host_name_on_the_allowlist_is_allowed_whatever_it_resolves_to(
    strict: None, fake: tuple[FakeOpenAI, int]
) -> None:
    server, port = fake
    allow("LocalHost.")  # host names match case-insensitively, a trailing dot ignored
    text = await answer(
        CompatibleProvider(), "box/gpt-4o", compatible(f"http://localhost:{port}/v1")
    )
    assert text == server.reply
    error = await refused(
        CompatibleProvider(), "box/gpt-4o", compatible(f"http://127.0.0.1:{port}/v1")
    )
    assert error.error_code == "outgoing_refused"


@pytest.mark.parametrize("host", ["169.254.169.254", "[fd00:ec2::254]", "[::ffff:169.254.169.254]"])
async def test_the_cloud_metadata_address_is_refused_before_any_connection(
    strict: None, host: str
) -> None:
    allow("127.0.0.1/32", "10.0.0.0/8")  # an ordinary allowlist does not open metadata
    error = await refused(CompatibleProvider(), "box/gpt-4o", compatible(f"http://{host}/v1"))
    assert error.error_code == "outgoing_refused"
    assert "metadata" in error.message and SETTING in error.message


async def test_the_together_sdk_is_guarded(strict: None) -> None:
    server = FakeTogether()
    async with serve_fake(server.app()) as url:
        config = TogetherSettings(api_key=SecretStr("together-key"), base_url=url, timeout=5)
        error = await refused(
            TogetherProvider(), "together/meta-llama/Llama-3.3-70B-Instruct-Turbo", config
        )
    assert error.error_code == "outgoing_refused", error.message
    assert SETTING in error.message and server.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_gemini_sdk_is_guarded(strict: None, host: str) -> None:
    server = FakeGemini()
    async with serve_fake(server.app()) as url:
        base_url = url.replace("127.0.0.1", host)
        config = GeminiSettings(api_key=SecretStr("gemini-test-key"), base_url=base_url, timeout=5)
        error = await refused(GeminiProvider(), "gemini/gemini-2.5-flash", config)
        assert error.error_code == "outgoing_refused", error.message
        assert SETTING in error.message and server.requests == []

        allow("127.0.0.1/32")
        assert await answer(GeminiProvider(), "gemini/gemini-2.5-flash", config) == server.reply


async def test_aiohttp_sessions_with_the_guarded_connector_check_every_request(
    strict: None,
) -> None:
    """Sign-in, S3 and webhooks use aiohttp: the check runs on each new connection, so a name
    that resolved to an allowed address once is checked again on the next one (a kept-alive
    connection stays with the address checked when it was made)."""
    hits: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    async with serve_fake(app) as url:
        port = url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession(
            connector=public_outgoing.connector(force_close=True)
        ) as http:
            allow("localhost")
            async with http.get(f"http://localhost:{port}/first") as response:
                assert response.status == 200
            outgoing.install(outgoing.OutgoingPolicy())
            for target in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::ffff:127.0.0.1]:{port}"):
                with pytest.raises(outgoing.OutgoingRefused) as caught:
                    await http.get(f"http://{target}/second")
                assert SETTING in caught.value.message
    assert hits == ["/first"]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert outgoing.address_kind(ipaddress.ip_address(address)) == kind


def test_the_setting_takes_cidrs_and_host_names_and_defaults_by_mode(tmp_path: Any) -> None:
    base: dict[str, Any] = {"_env_file": None, "data_dir": tmp_path}
    embedded = outgoing.OutgoingPolicy.from_settings(Settings(**base))
    # A person's own machine: their local Ollama works out of the box; metadata never does.
    assert embedded.refusal("localhost", "127.0.0.1") is None
    assert embedded.refusal("nas", "192.168.1.5") is None
    assert embedded.refusal("x", "169.254.169.254") is not None
    production = outgoing.OutgoingPolicy.from_settings(
        Settings.model_construct(mode="production", outgoing_allow=[], outgoing_allow_private=None)
    )
    assert production.refusal("localhost", "127.0.0.1") is not None
    assert production.refusal("nas", "192.168.1.5") is not None

    configured = Settings(**base, outgoing_allow="127.0.0.1/32, 10.0.0.0/8,ollama.internal")
    policy = outgoing.OutgoingPolicy.from_settings(
        configured.model_copy(update={"mode": "production"})
    )
    assert policy.refusal("a", "10.9.9.9") is None
    assert policy.refusal("ollama.internal", "192.168.7.7") is None
    assert policy.refusal("b", "192.168.7.7") is not None
    with pytest.raises(ValidationError, match="not a CIDR or a host name"):
        Settings(**base, outgoing_allow="http://10.0.0.1/")


@pytest.mark.parametrize("name", ["MULTINOTES_OUTGOING_ALLOW", "MULTINOTES_OUTBOUND_ALLOW"])
def test_the_allowlist_is_read_under_both_of_its_names(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "127.0.0.1/32")
    settings = Settings(_env_file=None, data_dir=tmp_path, mode="production")
    assert settings.outgoing_allow == ["127.0.0.1/32"]
    policy = outgoing.OutgoingPolicy.from_settings(settings)
    assert policy.refusal("receiver", "127.0.0.1") is None
    # Only the listed address: the rest of loopback stays refused.
    assert policy.refusal("receiver", "127.0.0.2") is not None


async def test_the_admin_test_connection_goes_through_the_guard(
    make_settings: Any, fake: tuple[FakeOpenAI, int]
) -> None:
    _, port = fake
    connection = {"name": "box", "base_url": f"http://127.0.0.1:{port}/v1", "models": ["gpt-4o"]}
    plugins = {"openai_compatible": {"connections": json.dumps([connection])}}

    async def test_connection(**overrides: Any) -> dict[str, Any]:
        app = create_app(make_settings(plugins=plugins, **overrides))
        async with app_client(app) as api:
            await api.register_admin()
            response = await api.post("/api/admin/models/test", {"model": "box/gpt-4o"})
            assert response.status == 200
            result: dict[str, Any] = await response.json()
            return result

    blocked = await test_connection(outgoing_allow=[])
    assert blocked["ok"] is False
    assert "loopback" in blocked["result"] and SETTING in blocked["result"]
    allowed = await test_connection()  # the suite's settings allow 127.0.0.1/32
    assert allowed["ok"] is True, allowed


async def test_a_requests_session_for_synchronous_sdks_is_guarded_and_follows_no_redirect(
    strict: None,
) -> None:
    """``outgoing.requests_session()`` (razorpay's SDK takes one): the same address check on
    the resolved address, and a redirect comes back as it is."""
    app = web.Application()

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app.router.add_get("/hop", hop)
    async with serve_fake(app) as url:
        session = public_outgoing.requests_session(timeout=5)
        with pytest.raises(outgoing.OutgoingRefused) as refused:
            await asyncio.to_thread(session.get, f"{url}/hop")
        assert refused.value.kind == "loopback" and SETTING in str(refused.value)
        allow("127.0.0.1/32")
        answer = await asyncio.to_thread(session.get, f"{url}/hop")
        assert answer.status_code == 302  # not followed to the metadata address
        assert answer.headers["Location"].startswith("http://169.254.169.254/")
        session.close()
