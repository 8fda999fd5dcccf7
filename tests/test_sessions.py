"""Sessions: listed, revoked one by one or all at once; idle and absolute timeouts; blocked and
deleted users lose access on their next request."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from multinotes.db import utcnow
from multinotes.identity import service as identity
from multinotes.keys import DB, SETTINGS
from multinotes.models import AuthSession, User
from multinotes.testing import ApiClient

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


async def login_as(client: ApiClient, email: str, user_agent: str) -> None:
    response = await client.post(
        "/api/auth/login",
        {"email": email, "password": "correct horse battery staple"},
        headers={"User-Agent": user_agent},
    )
    assert response.status == 200
    client.csrf = (await response.json())["csrf_token"]


async def two_browsers(api: ApiClient, make_client, email: str) -> ApiClient:
    """``api`` logged in with Firefox, and another client with Safari, as the same user."""
    await api.register(email)
    await login_as(api, email, FIREFOX)
    phone = await make_client()
    await login_as(phone, email, SAFARI)
    return phone


async def test_active_sessions_are_listed_with_the_current_one_marked(api: ApiClient, make_client):
    await two_browsers(api, make_client, "amy@example.com")
    sessions = await api.get_json("/api/sessions")
    assert len(sessions) == 2
    assert set(sessions[0]) == {
        "id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ip",
        "user_agent",
        "device",
        "current",
    }
    by_device = {s["device"]: s for s in sessions}
    assert by_device["Firefox on Linux"]["current"] is True
    assert by_device["Safari on iOS"]["current"] is False
    assert by_device["Safari on iOS"]["user_agent"] == SAFARI
    assert all(s["ip"] == "127.0.0.1" for s in sessions)


async def test_other_users_sessions_and_revoked_ones_are_not_listed(api: ApiClient, make_client):
    await api.register_and_login("ben@example.com")
    other = await make_client()
    await other.register_and_login("cat@example.com")
    await api.login("ben@example.com")  # rotates: the first session is revoked
    sessions = await api.get_json("/api/sessions")
    assert len(sessions) == 1 and sessions[0]["current"] is True


async def test_a_user_revokes_one_of_their_sessions(api: ApiClient, make_client):
    phone = await two_browsers(api, make_client, "dan@example.com")
    phone_session = next(s for s in await api.get_json("/api/sessions") if not s["current"])
    response = await api.delete(f"/api/sessions/{phone_session['id']}")
    assert response.status == 204
    assert (await phone.get("/api/me")).status == 401
    assert (await api.get("/api/me")).status == 200
    assert [s["current"] for s in await api.get_json("/api/sessions")] == [True]
    again = await api.delete(f"/api/sessions/{phone_session['id']}")
    assert again.status == 404


async def test_someone_elses_session_is_not_found_and_keeps_working(api: ApiClient, make_client):
    await api.register_and_login("eli@example.com")
    victim = await make_client()
    await victim.register_and_login("fox@example.com")
    victim_session = (await victim.get_json("/api/sessions"))[0]["id"]
    response = await api.delete(f"/api/sessions/{victim_session}")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    assert (await victim.get("/api/me")).status == 200


async def test_revoking_the_current_session_logs_out(api: ApiClient):
    await api.register_and_login("gil@example.com")
    current = (await api.get_json("/api/sessions"))[0]["id"]
    response = await api.delete(f"/api/sessions/{current}")
    assert response.status == 204
    assert "Max-Age=0" in response.headers.get("Set-Cookie", "")  # the cookie is cleared
    assert (await api.get("/api/me")).status == 401


async def test_log_out_everywhere_ends_every_session_and_keeps_api_keys(
    api: ApiClient, make_client
):
    phone = await two_browsers(api, make_client, "hana@example.com")
    key = (await (await api.post("/api/keys", {"name": "cli"})).json())["key"]
    response = await api.post("/api/sessions/revoke-all")
    assert response.status == 200
    assert await response.json() == {"sessions_revoked": 2, "api_keys_revoked": 0}
    for client in (api, phone):
        assert (await client.get("/api/me")).status == 401
    keyed = await make_client()
    keyed.use_key(key)
    assert (await keyed.get("/api/me")).status == 200


async def test_log_out_everywhere_can_revoke_api_keys_too(api: ApiClient, make_client):
    await api.register_and_login("ivo@example.com")
    keys = [(await (await api.post("/api/keys", {"name": n})).json())["key"] for n in "ab"]
    response = await api.post("/api/sessions/revoke-all", {"include_api_keys": True})
    assert await response.json() == {"sessions_revoked": 1, "api_keys_revoked": 2}
    keyed = await make_client()
    for key in keys:
        keyed.use_key(key)
        assert (await keyed.get("/api/me")).status == 401


async def test_revoke_all_rejects_unknown_fields(api: ApiClient):
    await api.register_and_login("jan@example.com")
    response = await api.post("/api/sessions/revoke-all", {"include_everything": True})
    assert response.status == 422
    assert (await api.get("/api/me")).status == 200


async def test_sessions_work_with_an_api_key(api: ApiClient, make_client):
    await api.register_and_login("kai@example.com")
    key = (await (await api.post("/api/keys", {"name": "cli"})).json())["key"]
    keyed = await make_client()
    keyed.use_key(key)
    sessions = await keyed.get_json("/api/sessions")
    assert len(sessions) == 1 and sessions[0]["current"] is False
    assert (await keyed.delete(f"/api/sessions/{sessions[0]['id']}")).status == 204
    assert (await api.get("/api/me")).status == 401


async def test_the_service_can_keep_one_session(api: ApiClient, make_client):
    """For password and role changes: everything ends but the session making the change."""
    phone = await two_browsers(api, make_client, "lia@example.com")
    current = next(s["id"] for s in await api.get_json("/api/sessions") if s["current"])
    user_id = (await api.get_json("/api/me"))["id"]
    assert await identity.revoke_all_sessions(api.app[DB], user_id, except_session_id=current) == 1
    assert (await api.get("/api/me")).status == 200
    assert (await phone.get("/api/me")).status == 401


# -- timeouts -----------------------------------------------------------------------------------


async def test_a_session_idle_for_longer_than_the_idle_timeout_ends(api: ApiClient):
    await api.register_and_login("mia@example.com")
    idle = timedelta(minutes=api.app[SETTINGS].session_idle_minutes)
    assert idle == timedelta(days=14)
    async with api.app[DB].transaction() as session:
        await session.execute(
            update(AuthSession).values(last_seen_at=utcnow() - idle + timedelta(minutes=10))
        )
    assert (await api.get("/api/me")).status == 200  # still inside the window: and refreshed
    async with api.app[DB].read() as session:
        seen = await session.scalar(select(AuthSession.last_seen_at))
    assert seen is not None and utcnow() - seen < timedelta(minutes=1)

    async with api.app[DB].transaction() as session:
        await session.execute(
            update(AuthSession).values(last_seen_at=utcnow() - idle - timedelta(minutes=1))
        )
    assert (await api.get("/api/me")).status == 401


async def test_a_session_ends_at_its_absolute_limit_however_active(api: ApiClient):
    await api.register_and_login("ned@example.com")
    async with api.app[DB].read() as session:
        record = await session.scalar(select(AuthSession))
    assert record is not None
    assert record.expires_at - record.created_at == timedelta(days=30)
    async with api.app[DB].transaction() as session:
        await session.execute(
            update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await api.get("/api/me")).status == 401


async def test_the_idle_timeout_is_a_setting(make_settings):
    from multinotes.app import create_app
    from multinotes.testing import app_client

    async with app_client(create_app(make_settings(session_idle_minutes=30))) as api:
        await api.register_and_login("ola@example.com")
        async with api.app[DB].transaction() as session:
            await session.execute(
                update(AuthSession).values(last_seen_at=utcnow() - timedelta(minutes=31))
            )
        assert (await api.get("/api/me")).status == 401


# -- blocked and deleted users ------------------------------------------------------------------


async def test_a_blocked_user_loses_access_on_the_next_request(api: ApiClient, make_client):
    await api.register_and_login("pia@example.com")
    key = (await (await api.post("/api/keys", {"name": "cli"})).json())["key"]
    keyed = await make_client()
    keyed.use_key(key)
    assert (await api.get("/api/me")).status == (await keyed.get("/api/me")).status == 200

    async with api.app[DB].transaction() as session:
        await session.execute(update(User).values(is_active=False))
    assert (await api.get("/api/me")).status == 401
    assert (await keyed.get("/api/me")).status == 401
    relogin = await api.post(
        "/api/auth/login", {"email": "pia@example.com", "password": "correct horse battery staple"}
    )
    assert relogin.status == 401


async def test_a_deleted_user_loses_access_on_the_next_request(api: ApiClient, make_client):
    await api.register_and_login("rob@example.com")
    key = (await (await api.post("/api/keys", {"name": "cli"})).json())["key"]
    keyed = await make_client()
    keyed.use_key(key)
    async with api.app[DB].transaction() as session:
        await session.execute(delete(User))
    assert (await api.get("/api/me")).status == 401
    assert (await keyed.get("/api/me")).status == 401


# -- the account page ---------------------------------------------------------------------------


async def test_the_account_page_lists_sessions_and_revokes_them(api: ApiClient, make_client):
    phone = await two_browsers(api, make_client, "sam@example.com")
    page = await (await api.get("/account")).text()
    assert "Firefox on Linux" in page and "Safari on iOS" in page
    assert "This browser" in page and "Log out everywhere" in page
    phone_session = next(s for s in await api.get_json("/api/sessions") if not s["current"])

    revoked = await api.client.post(
        f"/account/sessions/{phone_session['id']}/revoke",
        data={"csrf_token": api.csrf},
        allow_redirects=False,
    )
    assert revoked.status == 303 and revoked.headers["Location"] == "/account#sessions"
    assert (await phone.get("/api/me")).status == 401

    everywhere = await api.client.post(
        "/account/sessions/revoke-all",
        data={"csrf_token": api.csrf, "include_api_keys": "true"},
        allow_redirects=False,
    )
    assert everywhere.status == 303 and everywhere.headers["Location"] == "/login"
    assert (await api.get("/api/me")).status == 401


async def test_account_page_session_forms_need_the_csrf_token(api: ApiClient):
    await api.register_and_login("tia@example.com")
    response = await api.client.post("/account/sessions/revoke-all", data={})
    assert response.status == 403
    assert (await api.get("/api/me")).status == 200
