"""Production mode with Redis gone: the app degrades instead of answering 500s.

- reads and pages that do not need Redis keep working (the notes API, note pages, health);
- rate limiting fails closed only where it protects accounts: login (and the other auth
  endpoints) answer 503 with Retry-After in the app's error shape, as does generation;
- everything else (the "api" class of limits) fails open;
- recovery is automatic within seconds of Redis returning.

The app talks to a private redis-server that the test stops and starts (never the shared one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest
from redis.exceptions import RedisError

from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.support.demo_user import user  # noqa: F401
from tests.support.own_redis import OwnRedis


@pytest.fixture
def mode() -> str:
    return "production"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_server: OwnRedis) -> Settings:
    return make_settings(redis_url=redis_server.url)


def assert_unavailable(response, body) -> None:  # type: ignore[no-untyped-def]
    assert response.status == 503, body
    assert int(response.headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "service_unavailable"
    assert "try again" in body["error"]["message"].lower()


async def test_reads_keep_working_and_auth_and_generation_answer_503(
    user: ApiClient,  # noqa: F811
    redis_server: OwnRedis,
):
    created = await user.post("/api/documents", {"title": "Kept", "content": "text"})
    assert created.status == 201, await created.text()
    conversation = (await (await user.post("/api/conversations", {})).json())["id"]

    redis_server.stop()

    documents = await user.get("/api/documents")
    assert documents.status == 200, await documents.text()
    assert [d["title"] for d in (await documents.json())["documents"]] == ["Kept"]
    assert (await user.get("/notes")).status == 200
    assert (await user.get("/healthz")).status == 200
    ready = await user.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["redis"].startswith("error")

    login = await user.post(
        "/api/auth/login", {"email": "admin@example.com", "password": "wrong password"}
    )
    assert_unavailable(login, await login.json())

    generation = await user.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "Hello", "models": ["demo/echo"]},
    )
    assert_unavailable(generation, await generation.json())


async def test_everything_recovers_within_seconds_of_redis_returning(
    user: ApiClient,  # noqa: F811
    redis_server: OwnRedis,
):
    redis_server.stop()
    failed = await user.post(
        "/api/auth/login", {"email": "admin@example.com", "password": "wrong password"}
    )
    assert failed.status == 503

    redis_server.start()
    back = time.monotonic()
    while True:
        login = await user.post(
            "/api/auth/login",
            {"email": "admin@example.com", "password": "correct horse battery staple"},
        )
        if login.status == 200:
            user.csrf = (await login.json())["csrf_token"]  # a new session
            break
        assert time.monotonic() - back < 5, await login.text()
        await asyncio.sleep(0.2)
    conversation = (await (await user.post("/api/conversations", {})).json())["id"]
    generation = await user.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "Hello", "models": ["demo/echo"]},
    )
    assert generation.status == 200, await generation.text()
    assert "Hello" in await generation.text()
    ready = await user.get("/readyz")
    assert (await ready.json())["checks"]["redis"] == "ok"


async def test_the_bus_hears_messages_again_after_redis_returns(api: ApiClient, redis_server):
    from multinotes.keys import BUS

    bus = api.app[BUS]
    heard: list[dict] = []

    async def handler(message: dict) -> None:
        heard.append(message)

    bus.subscribe("outage-test", handler)
    redis_server.stop()
    await asyncio.sleep(3)
    redis_server.start()
    back = time.monotonic()
    while not heard:
        assert time.monotonic() - back < 10, "no message after Redis came back"
        with contextlib.suppress(RedisError):  # not reconnected yet
            await bus.publish("outage-test", {"n": 1})
        await asyncio.sleep(0.5)
    assert heard[0] == {"n": 1}
