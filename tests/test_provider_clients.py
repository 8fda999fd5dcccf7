"""Gemini and Together answers go through one SDK client per server and key that the app keeps
for its lifetime (as OpenAI's do): its connections stay open between answers, so a busy
workspace does not pay a TLS handshake to the provider for every answer. A changed key gets a
new client from the next request on; the app closes every kept client when it stops.

Both SDKs run for real against the local fakes of each API (tests/fakes/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from multinotes.app import create_app
from multinotes.keys import CATALOG
from multinotes.plugins.providers.gemini.tests.fake_gemini import FakeGemini
from multinotes.plugins.providers.together.tests.fake_together import FakeTogether
from multinotes.testing import ApiClient, app_client
from tests.fakes import serve_fake
from tests.support.sse import parse_sse

# google-genai subclasses aiohttp.ClientSession, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


@dataclass
class Case:
    plugin: str
    model: str
    fake: Any
    #: The key the fake saw on its latest request.
    last_key: Callable[[], str | None]


@pytest.fixture(params=["gemini", "together"])
async def case(request: pytest.FixtureRequest) -> AsyncIterator[Case]:
    if request.param == "gemini":
        gemini = FakeGemini(api_key="gemini-key-0000000000")
        found = Case(
            "gemini", "gemini/gemini-2.5-flash", gemini, lambda: gemini.requests[-1].api_key
        )
    else:
        together = FakeTogether(api_key="together-key-000000000")
        found = Case(
            "together",
            "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            together,
            lambda: together.requests[-1].headers["authorization"].removeprefix("Bearer "),
        )
    async with serve_fake(found.fake.app()) as url:
        found.fake.url = url
        yield found


async def ask(api: ApiClient, model: str) -> str:
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [model]}
    )
    events = parse_sse(await response.text())
    [done] = [data for name, data in events if name == "done"]
    assert done["status"] == "complete", events
    return "".join(data["text"] for name, data in events if name == "delta")


async def test_answers_share_one_kept_client_per_server_and_key(
    make_settings: Any, case: Case, monkeypatch: pytest.MonkeyPatch
):
    settings = make_settings(
        plugins={case.plugin: {"base_url": case.fake.url, "api_key": case.fake.api_key}}
    )
    async with app_client(create_app(settings)) as api:
        await api.register_admin()
        await api.mark_verified()
        clients = api.app[CATALOG].clients

        assert await ask(api, case.model) == case.fake.reply
        assert await ask(api, case.model) == case.fake.reply
        assert len(clients) == 1
        (kept,) = clients._clients.values()

        case.fake.api_key = case.fake.api_key.replace("0000", "1111")
        response = await api.patch(
            f"/api/admin/plugins/{case.plugin}", {"settings": {"api_key": case.fake.api_key}}
        )
        assert response.status == 200, await response.text()
        assert await ask(api, case.model) == case.fake.reply
        assert case.last_key() == case.fake.api_key
        assert len(clients) == 2
        closed: list[object] = []
        close = type(kept).close

        async def recording_close(self: Any) -> None:
            closed.append(self)
            await close(self)

        monkeypatch.setattr(type(kept), "close", recording_close)
    assert kept in closed and len(clients) == 0  # every kept client is closed with the app
