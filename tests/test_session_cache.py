"""Session cookies resolved from memory (``multinotes.identity.key_cache.SessionCache``): a
signed-in browser's session is read once per process and TTL, not on every request (issue #17:
the session lookup cost as much CPU as a list's own query). Logging out, signing out
everywhere, changing the password or being blocked takes effect on the next request in this
process and, through Redis pub/sub, within moments in every other process; the session's
last-use time is still recorded every ``TOUCH_INTERVAL``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from multinotes.app import create_app
from multinotes.db import utcnow
from multinotes.identity import key_cache
from multinotes.identity import service as identity
from multinotes.keys import DB, SESSION_CACHE, SETTINGS
from multinotes.models import AuthSession
from multinotes.testing import DEFAULT_PASSWORD, ApiClient, app_client
from tests.support.statements import Statements, selects_from


def session_token(api: ApiClient) -> str:
    for cookie in api.client.session.cookie_jar:
        if cookie.key in ("mn_session", "__Host-mn_session"):
            return cookie.value
    raise AssertionError("not signed in")


async def test_a_session_is_read_once_then_served_from_memory(api: ApiClient):
    await api.register_and_login("cached-session@example.com")
    assert (await api.get("/api/me")).status == 200
    with Statements(api.app, selects_from("sessions")) as reads:
        for _ in range(3):
            assert (await api.get("/api/me")).status == 200
    assert reads == []
    assert api.app[SESSION_CACHE].hits >= 3


async def test_logging_out_stops_the_session_at_once(api: ApiClient):
    await api.register_and_login("logout@example.com")
    token = session_token(api)
    assert (await api.get("/api/me")).status == 200
    assert (await api.post("/api/auth/logout")).status in (200, 204)
    api.client.session.cookie_jar.update_cookies({"mn_session": token})
    assert (await api.get("/api/me")).status == 401


async def test_signing_out_everywhere_stops_the_other_sessions(api: ApiClient, make_client):
    await api.register_and_login("everywhere@example.com")
    other: ApiClient = await make_client()
    await other.login("everywhere@example.com")
    assert (await other.get("/api/me")).status == 200
    assert (await api.post("/api/sessions/revoke-all", {})).status == 200
    assert (await other.get("/api/me")).status == 401


async def test_a_password_change_signs_out_the_other_sessions(api: ApiClient, make_client):
    await api.register_and_login("newpass@example.com")
    other: ApiClient = await make_client()
    await other.login("newpass@example.com")
    assert (await other.get("/api/me")).status == 200
    response = await api.post(
        "/api/auth/password/change",
        {"current_password": DEFAULT_PASSWORD, "new_password": "a quite different passphrase 7"},
    )
    assert response.status in (200, 204), await response.text()
    assert (await other.get("/api/me")).status == 401


async def test_blocking_the_user_stops_their_session_at_once(admin: ApiClient, make_client):
    member: ApiClient = await make_client()
    created = await member.register_and_login("blocked-session@example.com")
    assert (await member.get("/api/me")).status == 200
    response = await admin.patch(f"/api/admin/users/{created['id']}", {"is_active": False})
    assert response.status == 200, await response.text()
    assert (await member.get("/api/me")).status == 401


async def test_last_use_is_still_recorded_every_touch_interval(api: ApiClient, monkeypatch):
    await api.register_and_login("touched@example.com")
    assert (await api.get("/api/me")).status == 200
    later = utcnow() + identity.TOUCH_INTERVAL + timedelta(seconds=5)
    monkeypatch.setattr(key_cache, "utcnow", lambda: later)
    assert (await api.get("/api/me")).status == 200
    async with api.app[DB].read() as session:
        seen = await session.scalar(
            select(AuthSession.last_seen_at).where(
                AuthSession.token_hash == identity.token_hash(session_token(api))
            )
        )
    assert seen is not None and abs((seen - later).total_seconds()) < 1
    # The touch kept the entry (it changes nothing the session resolves to) ...
    hits = api.app[SESSION_CACHE].hits
    assert (await api.get("/api/me")).status == 200
    assert api.app[SESSION_CACHE].hits == hits + 1


async def test_an_idle_session_ends_even_when_cached(api: ApiClient, monkeypatch):
    await api.register_and_login("idle@example.com")
    assert (await api.get("/api/me")).status == 200
    assert len(api.app[SESSION_CACHE]) == 1
    minutes = api.app[SETTINGS].session_idle_minutes
    later = utcnow() + timedelta(minutes=minutes + 1)  # idle too long (well before expiry)
    monkeypatch.setattr(key_cache, "utcnow", lambda: later)
    assert (await api.get("/api/me")).status == 401


@pytest.mark.parametrize("mode", ["production"])
async def test_a_session_revoked_in_one_process_stops_in_another(api: ApiClient, settings: Any):
    """Two apps sharing MariaDB and Redis, as two web processes would: B has the session
    cached when A logs it out; B refuses it as soon as the pub/sub message arrives."""
    await api.register_and_login("two-processes@example.com")
    token = session_token(api)
    other_app = create_app(settings)
    async with app_client(other_app) as other:
        other.client.session.cookie_jar.update_cookies({"mn_session": token})
        assert (await other.get("/api/me")).status == 200
        assert len(other_app[SESSION_CACHE]) == 1
        assert (await api.post("/api/auth/logout")).status in (200, 204)
        status = 200
        for _ in range(40):
            if len(other_app[SESSION_CACHE]) == 0:
                status = (await other.get("/api/me")).status
                break
            await asyncio.sleep(0.05)
        assert status == 401
