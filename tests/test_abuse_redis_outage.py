"""Abuse detection with Redis gone (production): its counters and throttle live in Redis, so
while it is away requests made with an API key still work (nothing is counted, nothing fails),
generation fails closed with 503 as it does without abuse detection, and counting resumes once
Redis is back. The app talks to a private redis-server the test stops and starts."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

import pytest

from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.support.own_redis import OwnRedis
from tests.test_abuse import hits, set_rule


@pytest.fixture
def mode() -> str:
    return "production"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_server: OwnRedis) -> Settings:
    return make_settings(redis_url=redis_server.url, trusted_proxies=["127.0.0.1/32"])


async def test_key_requests_work_while_redis_is_away_and_counting_resumes(
    api: ApiClient, make_client: Callable[[], object], redis_server: OwnRedis
):
    await api.register_admin()
    await set_rule(api, "api_key_misuse", threshold=2, window_minutes=60)
    made = await api.post("/api/keys", {"name": "script", "scopes": ["read"]})
    assert made.status == 201
    scripted: ApiClient = await make_client()  # type: ignore[misc]
    scripted.use_key((await made.json())["key"])

    redis_server.stop()
    for ip in ("198.51.100.1", "203.0.113.1", "192.0.2.1"):
        answer = await scripted.get("/api/wallet", headers={"X-Forwarded-For": ip})
        assert answer.status == 200, await answer.text()
    conversation = await scripted.get("/api/documents", headers={"X-Forwarded-For": "192.0.3.1"})
    assert conversation.status == 200

    redis_server.start()
    back = time.monotonic()
    # The networks seen during the outage were not counted: they count now.
    networks = itertools.cycle(["198.51.100.1", "203.0.113.1"])
    while not await hits(api, "?rule=api_key_misuse"):
        assert time.monotonic() - back < 10, "nothing counted after Redis came back"
        answer = await scripted.get("/api/wallet", headers={"X-Forwarded-For": next(networks)})
        assert answer.status == 200
        await asyncio.sleep(0.2)
    [hit] = await hits(api, "?rule=api_key_misuse")
    assert hit["evidence"]["networks_in_window"] == 2
    assert hit["network"] in ("198.51.100.0/24", "203.0.113.0/24")
