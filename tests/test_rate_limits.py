"""Rate limits: login, registration and password reset are limited per client IP and per target
account; repeated failed logins lock an address for a while, known or not, without telling the
two apart; admins put users on the exempt or strict tier; every 429 says when to come back."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient

from multinotes.app import create_app
from multinotes.keys import RATE_LIMITS
from multinotes.settings import Settings
from multinotes.testing import DEFAULT_PASSWORD, ApiClient, app_client
from tests.support.scripted_provider import Script, scripted_plugins

WRONG = "not the password at all"


@asynccontextmanager
async def client_for(
    make_settings: Callable[..., Settings], **overrides: Any
) -> AsyncIterator[Any]:
    """A client of an app with these settings; ``api.another()`` opens a second client (its
    own cookies, the same IP) against the same server."""
    app = create_app(make_settings(**overrides), plugins=[])
    async with app_client(app) as api:
        opened: list[TestClient] = []

        async def another() -> ApiClient:
            client = TestClient(api.client.server)
            await client.start_server()
            opened.append(client)
            return ApiClient(client)

        api.another = another  # type: ignore[attr-defined]
        try:
            yield api
        finally:
            for client in opened:
                await client.session.close()


async def login(api: ApiClient, email: str, password: str = WRONG) -> tuple[int, Any, Any]:
    response = await api.post("/api/auth/login", {"email": email, "password": password})
    body = await response.json()
    if response.status == 200:
        api.csrf = body["csrf_token"]  # logged in: later writes need the session's token
    return response.status, body, response.headers


def public_part(body: dict[str, Any]) -> dict[str, Any]:
    """The error without its request id (which differs on every response)."""
    error = dict(body["error"])
    error.pop("request_id", None)
    return error


LOCKOUT = {"login_lockout_failures": 3, "login_lockout_window_seconds": 60}


async def test_failures_lock_a_real_and_an_unknown_address_alike(make_settings):
    async with client_for(make_settings, **LOCKOUT, login_lockout_seconds=120) as api:
        await api.register("real@example.com")
        answers = {}
        for email in ("real@example.com", "ghost@example.com"):
            first = await login(api, email)
            second = await login(api, email)
            assert first[0] == second[0] == 401
            locking = await login(api, email)
            answers[email] = (first, locking)
            # Locked: even the right password is refused until the lock ends.
            after = await login(api, email, DEFAULT_PASSWORD)
            assert after[0] == 429
            assert public_part(after[1]) == public_part(locking[1])

        real, ghost = answers["real@example.com"], answers["ghost@example.com"]
        assert public_part(real[0][1]) == public_part(ghost[0][1])
        assert real[1][0] == ghost[1][0] == 429
        assert public_part(real[1][1]) == public_part(ghost[1][1])
        assert public_part(real[1][1])["code"] == "login_locked"
        assert "minute" in public_part(real[1][1])["message"]
        for headers in (real[1][2], ghost[1][2]):
            assert 100 < int(headers["Retry-After"]) <= 120
        assert sorted(k for k in real[1][2] if k.lower() != "date") == sorted(
            k for k in ghost[1][2] if k.lower() != "date"
        )


async def test_the_lock_ends_after_its_time(make_settings):
    async with client_for(make_settings, **LOCKOUT, login_lockout_seconds=1) as api:
        await api.register("wait@example.com")
        for email in ("wait@example.com", "nobody@example.com"):
            for _ in range(3):
                await login(api, email)
            assert (await login(api, email, DEFAULT_PASSWORD))[0] == 429
        await asyncio.sleep(1.3)
        status, body, _ = await login(api, "wait@example.com", DEFAULT_PASSWORD)
        assert status == 200, body
        assert (await login(api, "nobody@example.com"))[0] == 401


async def test_a_success_clears_the_count_and_locks_are_per_address(make_settings):
    async with client_for(make_settings, **LOCKOUT, login_lockout_seconds=120) as api:
        await api.register("ok@example.com")
        await api.register("other@example.com")
        for _ in range(2):
            assert (await login(api, "ok@example.com"))[0] == 401
        assert (await login(api, "ok@example.com", DEFAULT_PASSWORD))[0] == 200
        for _ in range(2):
            assert (await login(api, "ok@example.com"))[0] == 401  # counting starts afresh
        assert (await login(api, "ok@example.com", DEFAULT_PASSWORD))[0] == 200

        for _ in range(3):
            await login(api, "ok@example.com")
        assert (await login(api, "ok@example.com", DEFAULT_PASSWORD))[0] == 429
        # Same client, same IP, another address: not locked.
        assert (await login(api, "other@example.com", DEFAULT_PASSWORD))[0] == 200


async def test_unknown_and_known_addresses_take_about_as_long(make_settings):
    """An unknown address still costs a password hash, so timing does not tell them apart.
    At the real hash cost: with the test suite's cheapest one, the known address's failed-login
    writes outweigh the hash, and a loaded machine made those writes 4x the hash."""
    async with client_for(make_settings, password_hash_cost="standard") as api:
        await api.register("timed@example.com")

        async def duration(email: str) -> float:
            started = time.perf_counter()
            assert (await login(api, email))[0] == 401
            return time.perf_counter() - started

        known = statistics.median([await duration("timed@example.com") for _ in range(3)])
        unknown = statistics.median([await duration("untimed@example.com") for _ in range(3)])
        assert 0.33 < unknown / known < 3, (known, unknown)


async def test_login_is_limited_per_target_account(make_settings):
    async with client_for(
        make_settings, rate_limit_login_account="3/minute", login_lockout_failures=100
    ) as api:
        for _ in range(3):
            assert (await login(api, "target@example.com"))[0] == 401
        status, body, headers = await login(api, "target@example.com")
        assert status == 429
        assert body["error"]["code"] == "rate_limited"
        assert int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Limit"] == "3"
        # Other addresses from the same client are not affected.
        assert (await login(api, "someone-else@example.com"))[0] == 401


async def test_login_is_limited_per_ip(make_settings):
    async with client_for(make_settings, rate_limit_login_ip="3/minute") as api:
        for n in range(3):
            assert (await login(api, f"spray{n}@example.com"))[0] == 401
        status, _, headers = await login(api, "spray9@example.com")
        assert status == 429
        assert headers["RateLimit-Remaining"] == "0"
        assert int(headers["Retry-After"]) >= 1


async def test_registration_is_limited_per_ip_and_per_address(make_settings):
    async with client_for(
        make_settings, rate_limit_register_ip="3/hour", rate_limit_register_account="2/hour"
    ) as api:
        body = {"email": "dup@example.com", "password": DEFAULT_PASSWORD, "name": "D"}
        assert (await api.post("/api/auth/register", body)).status == 201
        assert (await api.post("/api/auth/register", body)).status == 201  # taken: same answer
        third = await api.post("/api/auth/register", body)
        assert third.status == 429  # per address
        assert "Retry-After" in third.headers
        fresh = {"email": "fresh@example.com", "password": DEFAULT_PASSWORD, "name": "F"}
        assert (await api.post("/api/auth/register", fresh)).status == 429  # per IP: 4th try


async def test_password_reset_requests_are_limited_alike_for_known_and_unknown(make_settings):
    async with client_for(make_settings, rate_limit_reset_account="2/hour") as api:
        await api.register("known@example.com")
        for email in ("known@example.com", "unknown@example.com"):
            statuses = []
            for _ in range(3):
                response = await api.post("/api/auth/password/forgot", {"email": email})
                statuses.append(response.status)
            assert statuses == [202, 202, 429]


async def test_password_resets_with_a_token_are_limited_per_ip(make_settings):
    async with client_for(make_settings, rate_limit_reset_ip="2/hour") as api:
        statuses = []
        for _ in range(3):
            response = await api.post(
                "/api/auth/password/reset", {"token": "guess", "password": DEFAULT_PASSWORD}
            )
            statuses.append(response.status)
        assert statuses == [422, 422, 429]


async def _user_on_tier(api: Any, tier: str | None) -> ApiClient:
    await api.register_admin()
    user = await api.another()
    await user.register_and_login("tiered@example.com")
    if tier:
        response = await api.patch(f"/api/admin/users/{user.user['id']}", {"rate_limit_tier": tier})
        assert response.status == 200, await response.json()
    return user


async def _statuses(client: ApiClient, count: int) -> list[int]:
    return [(await client.get("/api/keys")).status for _ in range(count)]


async def test_the_strict_tier_tightens_one_user(make_settings):
    async with client_for(
        make_settings, rate_limit_api="6/minute", rate_limit_strict_api="2/minute"
    ) as api:
        user = await _user_on_tier(api, "strict")
        response = await user.get("/api/keys")
        assert response.status == 200
        assert response.headers["RateLimit-Limit"] == "2"
        assert await _statuses(user, 2) == [200, 429]


async def test_the_default_tier_uses_the_class_limit(make_settings):
    async with client_for(make_settings, rate_limit_api="4/minute") as api:
        user = await _user_on_tier(api, None)
        assert await _statuses(user, 5) == [200, 200, 200, 200, 429]


async def test_the_exempt_tier_has_no_limits(make_settings):
    async with client_for(make_settings, rate_limit_api="3/minute") as api:
        user = await _user_on_tier(api, "exempt")
        statuses = await _statuses(user, 8)
        assert statuses == [200] * 8
        response = await user.get("/api/keys")
        assert "RateLimit-Limit" not in response.headers


async def test_responses_carry_rate_limit_headers(make_settings):
    async with client_for(make_settings, rate_limit_api="50/minute") as api:
        await api.register_and_login("headers@example.com")
        response = await api.get("/api/keys")
        assert response.status == 200
        assert response.headers["RateLimit-Limit"] == "50"
        assert int(response.headers["RateLimit-Remaining"]) < 50
        assert int(response.headers["RateLimit-Reset"]) >= 1


async def test_a_streamed_answer_counts_against_the_limit_without_reading_the_window(
    make_settings,
):
    """The RateLimit-* headers need a second look at the window (a storage round trip in
    production). A streamed answer sends its headers before it ends, without them, so the
    window is read only when the hit is refused (for its Retry-After) or for a response that
    can still carry them (issue #17: one round trip fewer before the first token)."""
    plugins = scripted_plugins(
        {"script/alpha": Script(chunks=["a", "b"])}, context_window=1000, max_output=100
    )
    app = create_app(make_settings(rate_limit_generation="3/minute"), plugins=plugins)
    async with app_client(app) as api:
        await api.register_admin()
        await api.mark_verified()
        limiter = app[RATE_LIMITS].limiter
        read = limiter.get_window_stats
        reads: list[str] = []

        async def counted(item: Any, *identifiers: str) -> Any:
            reads.append(identifiers[0])
            return await read(item, *identifiers)

        limiter.get_window_stats = counted  # type: ignore[method-assign]
        body = {"content": "hi", "models": ["script/alpha"]}
        for _ in range(3):
            response = await api.post("/api/messages", body)
            assert response.status == 200
            assert "data: " in await response.text()
        assert reads == []
        refused = await api.post("/api/messages", body)
        assert refused.status == 429
        assert (await refused.json())["error"]["code"] == "rate_limited"
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert int(refused.headers["Retry-After"]) >= 1
        assert reads == ["generation"]
        # A response that can still carry the headers gets them, as before.
        listed = await api.get("/api/keys")
        assert listed.headers["RateLimit-Limit"]
        assert reads == ["generation", "api"]
