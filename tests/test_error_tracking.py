"""Error tracking: with MULTINOTES_SENTRY_DSN set, an unexpected exception in a request reaches
Sentry (here a local fake of its ingestion endpoint) with the request id, the user id, the
release and the environment, and with nothing that identifies or quotes a person: no email,
prompt, secret, cookie, Authorization header, query string or body."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sentry_sdk
from aiohttp import web
from aiohttp.test_utils import TestServer

from multinotes import __version__, hookimpl
from multinotes.app import create_app
from multinotes.identity.actor import ACTOR
from multinotes.testing import ApiClient, app_client
from tests.fakes.sentry_server import FakeSentry
from tests.support.waiting import eventually

EMAIL = "grace.hopper@example.com"
PROMPT = "Summarise my secret merger plans with Initech"
PROVIDER_KEY = "sk-live-abcdefghijklmnopqrstuvwxyz0123"


class Exploding:
    """A plugin whose route fails with a bug, holding personal data in its local variables."""

    @hookimpl
    def register_routes(self, register: Any) -> None:
        register("POST", "/api/plugins/exploding/run", self.run, access="user")
        register("GET", "/api/plugins/exploding/refuse", self.refuse, access="user")

    async def run(self, request: web.Request) -> web.Response:
        email = request[ACTOR].email  # noqa: F841 (locals must not be sent)
        body = await request.json()
        prompt, api_key = body["prompt"], body["api_key"]  # noqa: F841
        raise RuntimeError(f"the flux capacitor is empty (asked by {request[ACTOR].email})")

    async def refuse(self, request: web.Request) -> web.Response:
        raise web.HTTPForbidden()


@pytest.fixture
async def fake_sentry() -> AsyncIterator[tuple[FakeSentry, str]]:
    fake = FakeSentry()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, fake.dsn(str(server.make_url("/")))
    await server.close()


@pytest.fixture
def plugins() -> list[tuple[str, Any]]:
    return [("exploding", Exploding())]


@pytest.fixture
def settings(make_settings, fake_sentry):
    return make_settings(sentry_dsn=fake_sentry[1], sentry_environment="staging-eu")


async def crash(api: ApiClient) -> dict[str, Any]:
    response = await api.post(
        "/api/plugins/exploding/run?token=reset-link-token-123",
        {"prompt": PROMPT, "api_key": PROVIDER_KEY},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    body = await response.json()
    assert response.status == 500, body
    return dict(body["error"])


async def test_an_unexpected_error_arrives_with_request_id_user_id_and_release(
    api: ApiClient, fake_sentry: tuple[FakeSentry, str]
):
    fake, _ = fake_sentry
    user = await api.register_and_login(EMAIL)

    error = await crash(api)
    assert error["code"] == "internal_error"
    await eventually(lambda: len(fake.events) == 1, timeout=10)

    [event] = fake.events
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"].startswith("the flux capacitor is empty")
    assert event["tags"]["request_id"] == error["request_id"]
    assert event["user"] == {"id": user["id"]}
    assert event["release"] == f"multinotes@{__version__}"
    assert event["environment"] == "staging-eu"
    assert event["request"]["method"] == "POST"
    assert event["request"]["url"].endswith("/api/plugins/exploding/run")


async def test_nothing_personal_or_secret_is_sent(
    api: ApiClient, fake_sentry: tuple[FakeSentry, str]
):
    fake, _ = fake_sentry
    await api.register_and_login(EMAIL)
    cookies = [cookie.value for cookie in api.client.session.cookie_jar]
    assert cookies and api.csrf
    await crash(api)

    # The same through an API key (the Authorization header).
    response = await api.post("/api/keys", {"name": "script"})
    key = (await response.json())["key"]
    api.use_key(key)
    await crash(api)
    await eventually(lambda: len(fake.events) == 2, timeout=10)

    sent = b"\n".join(fake.raw).decode()
    for private in [EMAIL, "grace.hopper", PROMPT, "Initech", PROVIDER_KEY, key, api.csrf]:
        assert private not in sent
    for cookie in cookies:
        assert cookie not in sent
    assert "reset-link-token-123" not in sent  # query strings carry tokens
    assert "203.0.113.9" not in sent  # no client IP either
    for event in fake.events:
        for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
            assert "vars" not in frame
        assert "breadcrumbs" not in event or not event["breadcrumbs"].get("values")
        assert set(event["request"]["headers"]) <= {
            "Accept",
            "Content-Type",
            "Content-Length",
            "User-Agent",
            "Host",
        }


async def test_expected_refusals_are_not_reported(
    api: ApiClient, fake_sentry: tuple[FakeSentry, str]
):
    fake, _ = fake_sentry
    await api.register_and_login(EMAIL)
    assert (await api.get("/api/plugins/exploding/refuse")).status == 403
    assert (await api.get("/api/no-such-thing")).status == 404
    await crash(api)  # then one that is, so we know the transport delivered
    await eventually(lambda: len(fake.events) == 1, timeout=10)
    assert [e["exception"]["values"][0]["type"] for e in fake.events] == ["RuntimeError"]


async def test_without_a_dsn_nothing_is_set_up(make_settings):
    app = create_app(make_settings(), plugins=[("exploding", Exploding())])
    async with app_client(app) as api:
        await api.register_and_login(EMAIL)
        await crash(api)
        assert not sentry_sdk.get_client().is_active()


def test_the_scrubber_keeps_a_log_message_free_of_emails():
    from multinotes.error_tracking import scrub_event

    event = scrub_event(
        {"logentry": {"message": "mail to ada@example.org failed", "params": [PROMPT]}}
    )
    assert json.dumps(event).count("example.org") == 0
    assert PROMPT not in json.dumps(event)
