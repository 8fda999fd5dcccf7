"""The audit log: every security-relevant action leaves an entry with actor, IP and time;
failures are recorded without passwords; admins filter and page through it; users see only
their own security events; nothing can change or delete an entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from multinotes.audit import AuditEntry, AuditLogIsAppendOnly, record
from multinotes.identity import account_mail
from multinotes.identity import service as identity
from multinotes.keys import DB
from multinotes.models import User, UserToken
from multinotes.testing import DEFAULT_PASSWORD, ApiClient

NEW_PASSWORD = "a brand new passphrase 42"


async def entries(admin: ApiClient, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    body = await admin.get_json(f"/api/admin/audit?limit=200&{query}")
    return list(body["entries"])


async def actions(admin: ApiClient, **filters: str) -> list[str]:
    return [e["action"] for e in await entries(admin, **filters)]


async def fresh_token(api: ApiClient, user_id: str, purpose: Any) -> str:
    """A mailed link's token, as the mail task would make it (past the resend cooldown)."""
    db = api.app[DB]
    async with db.transaction() as session:
        await session.execute(
            update(UserToken)
            .where(UserToken.user_id == user_id)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    token = await account_mail.issue_token(db, await identity.get_user(db, user_id), purpose)
    assert token is not None
    return token


async def user_client(make_client: Any, email: str) -> ApiClient:
    client = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    return client


async def test_logins_and_failures_are_recorded_with_actor_ip_and_time(
    admin: ApiClient, make_client
):
    before = datetime.now(UTC) - timedelta(seconds=5)
    bob = await user_client(make_client, "bob@example.com")
    wrong = await bob.post(
        "/api/auth/login", {"email": "bob@example.com", "password": "hunter2-wrong-pass"}
    )
    assert wrong.status == 401
    ghost = await bob.post(
        "/api/auth/login", {"email": "ghost@example.com", "password": "hunter3-wrong-pass"}
    )
    assert ghost.status == 401

    logins = await entries(admin, action="auth.login", actor=bob.user["id"])
    assert len(logins) == 1
    login = logins[0]
    assert login["actor_email"] == "bob@example.com"
    assert login["ip"] == "127.0.0.1"
    assert login["user_agent"]
    assert login["target_type"] == "user" and login["target_id"] == bob.user["id"]
    created = datetime.fromisoformat(login["created_at"])
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=5)

    failures = await entries(admin, action="auth.login_failed")
    assert len(failures) == 2
    by_email = {f["details"]["email"]: f for f in failures}
    known, unknown = by_email["b***@example.com"], by_email["g***@example.com"]
    # The owner of a known address will see the attempt; an unknown one targets nobody.
    assert known["target_id"] == bob.user["id"] and unknown["target_id"] is None
    assert known["actor_id"] is None and known["ip"] == "127.0.0.1"
    assert len(known["details"]["email_hash"]) == 20
    dump = json.dumps(await entries(admin))
    for secret in ("hunter2-wrong-pass", "hunter3-wrong-pass", DEFAULT_PASSWORD):
        assert secret not in dump
    assert "ghost@example.com" not in dump


async def test_account_actions_are_recorded(admin: ApiClient, make_client):
    carol = await user_client(make_client, "carol@example.com")
    uid = carol.user["id"]

    created = await carol.post("/api/keys", {"name": "laptop"})
    key_id = (await created.json())["id"]
    assert (await carol.delete(f"/api/keys/{key_id}")).status == 204

    other = await make_client()
    await other.login("carol@example.com")
    sessions = await carol.get_json("/api/sessions")
    foreign = next(s for s in sessions if not s["current"])
    assert (await carol.delete(f"/api/sessions/{foreign['id']}")).status == 204

    changed = await carol.post(
        "/api/auth/password/change",
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status == 200
    assert (await carol.patch("/api/me", {"name": "Carol C"})).status == 200

    token = await fresh_token(carol, uid, "verify_email")
    assert (await carol.post("/api/auth/verify", {"token": token})).status == 200
    reset = await fresh_token(carol, uid, "reset_password")
    response = await carol.post(
        "/api/auth/password/reset", {"token": reset, "password": DEFAULT_PASSWORD + "!"}
    )
    assert response.status == 200
    await carol.login("carol@example.com", DEFAULT_PASSWORD + "!")
    assert (await carol.post("/api/sessions/revoke-all", {})).status == 200
    await carol.login("carol@example.com", DEFAULT_PASSWORD + "!")
    assert (await carol.post("/api/auth/logout")).status == 204

    mine = await actions(admin, actor=uid)
    for action in (
        "auth.register",
        "auth.login",
        "api_key.created",
        "api_key.revoked",
        "session.revoked",
        "auth.password_changed",
        "profile.updated",
        "auth.email_verified",
        "auth.password_reset",
        "session.revoked_all",
        "auth.logout",
    ):
        assert action in mine, action
    key_created = (await entries(admin, action="api_key.created", actor=uid))[0]
    assert key_created["target_id"] == key_id
    assert key_created["details"] == {"name": "laptop"}
    revoked = (await entries(admin, action="session.revoked"))[0]
    assert revoked["target_type"] == "session" and revoked["target_id"] == foreign["id"]
    dump = json.dumps(await entries(admin))
    assert NEW_PASSWORD not in dump and token not in dump and reset not in dump


async def test_admin_actions_are_recorded(admin: ApiClient, make_client):
    dave = await user_client(make_client, "dave@example.com")
    uid = dave.user["id"]
    admin_id = admin.user["id"]
    for patch in ({"role": "admin"}, {"role": "user"}, {"is_active": False}, {"is_active": True}):
        assert (await admin.patch(f"/api/admin/users/{uid}", patch)).status == 200
    assert (await admin.patch(f"/api/admin/users/{uid}", {"rate_limit_tier": "strict"})).status
    grant = await admin.post(f"/api/admin/users/{uid}/credits", {"amount": 500, "reason": "gift"})
    assert grant.status == 201

    secret = "sk-test-this-is-a-very-secret-value"
    response = await admin.patch("/api/admin/plugins/openai", {"settings": {"api_key": secret}})
    assert response.status == 200, await response.json()
    assert (await admin.patch("/api/admin/plugins/demo", {"enabled": False})).status == 200
    assert (await admin.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    models = await admin.get_json("/api/admin/models")
    model_id = models[0]["id"]
    assert (await admin.patch(f"/api/admin/models/{model_id}", {"markup_percent": 10})).status
    assert (await admin.patch("/api/admin/pricing", {"trial_credits": 1234})).status == 200

    about_dave = await entries(admin, target_type="user", target_id=uid)
    kinds = [e["action"] for e in about_dave]
    assert kinds.count("user.role_changed") == 2
    for action in ("user.blocked", "user.unblocked", "user.rate_limit_tier_changed"):
        assert action in kinds
    role = next(e for e in about_dave if e["action"] == "user.role_changed")
    assert role["actor_id"] == admin_id and role["details"] == {"from": "admin", "to": "user"}
    adjusted = next(e for e in about_dave if e["action"] == "wallet.adjusted")
    assert adjusted["details"] == {"amount": 500, "reason": "gift"}

    plugin = await entries(admin, action="plugin.", target_id="openai")
    assert [e["action"] for e in plugin] == ["plugin.settings_changed"]
    assert plugin[0]["details"] == {"fields": ["api_key"]}
    assert secret not in json.dumps(await entries(admin))
    assert await actions(admin, target_type="plugin", target_id="demo") == [
        "plugin.enabled",
        "plugin.disabled",
    ]
    model = (await entries(admin, action="model.updated"))[0]
    assert model["target_id"] == model_id and model["details"] == {"markup_percent": 10.0}
    pricing = (await entries(admin, action="pricing.updated"))[0]
    assert pricing["details"] == {"trial_credits": 1234} and pricing["actor_id"] == admin_id


async def test_filters_and_paging(admin: ApiClient, make_client):
    erin = await user_client(make_client, "erin@example.com")
    for n in range(4):
        assert (await erin.post("/api/keys", {"name": f"k{n}"})).status == 201

    by_email = await actions(admin, actor="erin@example.com")
    assert by_email == await actions(admin, actor=erin.user["id"])
    assert set(by_email) == {"auth.register", "auth.login", "api_key.created"}
    assert await actions(admin, actor="nobody@example.com") == []
    family = set(await actions(admin, action="auth."))
    assert family == {"auth.register", "auth.login"}
    assert await actions(admin, action="auth") == []  # an exact action, not a prefix

    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert await entries(admin, since=future) == []
    assert await entries(admin, until=past) == []
    assert len(await entries(admin, since=past, until=future)) == len(await entries(admin))

    seen: list[str] = []
    cursor = None
    while True:
        suffix = f"&before={cursor}" if cursor else ""
        page = await admin.get_json(f"/api/admin/audit?action=api_key.created&limit=3{suffix}")
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4
    assert seen == sorted(seen, reverse=True)  # newest first

    bad = await admin.get("/api/admin/audit?since=yesterday")
    assert bad.status == 422


async def test_users_see_only_their_own_security_events(admin: ApiClient, make_client):
    fay = await user_client(make_client, "fay@example.com")
    gus = await user_client(make_client, "gus@example.com")
    await gus.post("/api/keys", {"name": "gus key"})
    failed = await gus.post("/api/auth/login", {"email": "fay@example.com", "password": "x" * 12})
    assert failed.status == 401
    await admin.patch(f"/api/admin/users/{fay.user['id']}", {"rate_limit_tier": "strict"})

    page = await fay.get_json("/api/me/security-events")
    events = page["events"]
    assert {e["action"] for e in events} == {
        "auth.register",
        "auth.login",
        "auth.login_failed",
        "user.rate_limit_tier_changed",
    }
    by_action = {e["action"]: e for e in events}
    assert by_action["auth.login"]["actor"] == "you"
    assert by_action["auth.login_failed"]["actor"] == "someone"
    assert by_action["user.rate_limit_tier_changed"]["actor"] == "administrator"
    assert by_action["auth.login"]["ip"] == "127.0.0.1"
    assert by_action["auth.login"]["label"] == "Logged in"
    assert "actor_id" not in by_action["auth.login"]
    gus_events = (await gus.get_json("/api/me/security-events"))["events"]
    assert "api_key.created" in {e["action"] for e in gus_events}
    assert all(e["action"] != "user.rate_limit_tier_changed" for e in gus_events)

    first = await fay.get_json("/api/me/security-events?limit=2")
    assert len(first["events"]) == 2 and first["next_cursor"]
    rest = await fay.get_json(f"/api/me/security-events?before={first['next_cursor']}")
    assert [e["id"] for e in first["events"] + rest["events"]] == [e["id"] for e in events]

    assert (await fay.get("/api/admin/audit")).status == 403
    account = await (await fay.get("/account")).text()
    assert "Security events" in account and "Failed login" in account


async def test_the_log_is_append_only(admin: ApiClient):
    for route in admin.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if "audit" in path or "security-events" in path:
            assert route.method in ("GET", "HEAD"), (route.method, path)
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        response = await admin.request(method, "/api/admin/audit", json={})
        assert response.status == 405
    some = (await entries(admin))[0]
    for method in ("PUT", "PATCH", "DELETE"):
        response = await admin.request(method, f"/api/admin/audit/{some['id']}", json={})
        assert response.status in (404, 405)

    db = admin.app[DB]
    with pytest.raises(AuditLogIsAppendOnly):
        async with db.transaction() as session:
            await session.execute(update(AuditEntry).values(action="tampered"))
    with pytest.raises(AuditLogIsAppendOnly):
        async with db.transaction() as session:
            await session.execute(delete(AuditEntry))
    with pytest.raises(AuditLogIsAppendOnly):
        async with db.transaction() as session:
            entry = await session.scalar(select(AuditEntry))
            assert entry is not None
            entry.action = "tampered"
    with pytest.raises(AuditLogIsAppendOnly):
        async with db.transaction() as session:
            await session.delete(await session.get(AuditEntry, some["id"]))
    assert (await entries(admin))[0]["action"] == some["action"]


async def test_record_redacts_secret_looking_details_and_works_without_a_request(
    admin: ApiClient,
):
    await record(
        admin.app,
        None,
        "privacy.export_requested",
        actor_id=admin.user["id"],
        details={"password": "p", "nested": {"token": "t", "ok": 1}, "count": 2},
    )
    entry = (await entries(admin, action="privacy.export_requested"))[0]
    assert entry["ip"] is None and entry["actor_id"] == admin.user["id"]
    assert entry["details"] == {
        "password": "[redacted]",
        "nested": {"token": "[redacted]", "ok": 1},
        "count": 2,
    }


async def test_admin_audit_page_filters(admin: ApiClient):
    page = await admin.get("/admin/audit?action=auth.")
    html = await page.text()
    assert page.status == 200
    assert "Logged in" in html and "admin@example.com" in html
    assert "Users" in html and 'href="/admin/audit"' in html  # the console's sub-nav
    empty = await (await admin.get("/admin/audit?actor=nobody@example.com")).text()
    assert "No entry matches." in empty
    bad = await admin.get("/admin/audit?since=not-a-date")
    assert bad.status == 422


async def test_deleted_users_entries_remain(admin: ApiClient, make_client):
    hal = await user_client(make_client, "hal@example.com")
    async with admin.app[DB].transaction() as session:
        await session.execute(delete(User).where(User.id == hal.user["id"]))
    kept = await entries(admin, actor=hal.user["id"])
    assert {e["action"] for e in kept} == {"auth.register", "auth.login"}
    assert all(e["actor_email"] is None for e in kept)
