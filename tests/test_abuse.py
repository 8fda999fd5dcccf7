"""Abuse detection (issue #19 item 9): a sign-up burst from one network is flagged and the
sign-ups past the threshold are refused with 429 (or let in suspended, as configured);
throw-away addresses are refused or flagged per the rule; the operator's queue dismisses,
warns (mail and in-app) or blocks, audited; a blocked user's session and API key stop at the
next request and login tells them why. Admins only."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import DEFAULT_PASSWORD, ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox

smtp_server = mail_fixtures.smtp_server
mailbox = mail_fixtures.mailbox


@pytest.fixture
def settings(make_settings: Any, mode: str, smtp_server: Any) -> Any:
    """Sign-ups come from the addresses X-Forwarded-For names (the test client is loopback,
    which the rules never count)."""
    extra: dict[str, Any] = {"trusted_proxies": ["127.0.0.1/32"]}
    if mode == "production":
        extra.update(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    return make_settings(**extra)


@pytest.fixture
async def admin(api: ApiClient) -> ApiClient:
    await api.register_admin("admin@example.com")
    return api


async def sign_up(client: ApiClient, email: str, ip: str) -> Any:
    return await client.post(
        "/api/auth/register",
        {"email": email, "password": DEFAULT_PASSWORD, "name": "Someone"},
        headers={"X-Forwarded-For": ip},
    )


async def set_rule(admin: ApiClient, rule: str, **values: Any) -> dict[str, Any]:
    current = {r["rule"]: r for r in (await admin.get_json("/api/admin/abuse/rules"))["rules"]}[
        rule
    ]
    body = {
        "enabled": current["enabled"],
        "action": current["action"],
        "threshold": current["threshold"],
        "window_minutes": current["window_minutes"],
        **values,
    }
    response = await admin.request("PUT", f"/api/admin/abuse/rules/{rule}", json=body)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def hits(admin: ApiClient, query: str = "") -> list[dict[str, Any]]:
    return list((await admin.get_json(f"/api/admin/abuse{query}"))["hits"])


async def test_a_signup_burst_is_flagged_and_throttled(admin: ApiClient, make_client: Any):
    rules = (await admin.get_json("/api/admin/abuse/rules"))["rules"]
    assert {r["rule"]: (r["enabled"], r["action"]) for r in rules}["signup_burst"] == (
        True,
        "rate_limit",
    )
    await set_rule(admin, "signup_burst", threshold=3, window_minutes=30)
    visitor = await make_client()
    for i in range(3):
        response = await sign_up(visitor, f"burst{i}@example.com", f"198.51.100.{10 + i}")
        assert response.status == 201, await response.text()

    refused = await sign_up(visitor, "burst3@example.com", "198.51.100.77")
    assert refused.status == 429
    error = (await refused.json())["error"]
    assert error["code"] == "signup_burst" and "network" in error["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 30 * 60
    again = await sign_up(visitor, "burst4@example.com", "198.51.100.200")
    assert again.status == 429
    # Nothing was created for the refused sign-ups.
    login = await visitor.post(
        "/api/auth/login", {"email": "burst3@example.com", "password": DEFAULT_PASSWORD}
    )
    assert login.status == 401
    # Another network is not affected.
    assert (await sign_up(visitor, "elsewhere@example.com", "203.0.113.5")).status == 201

    [hit] = await hits(admin, "?rule=signup_burst")
    assert hit["status"] == "open" and hit["action_taken"] == "rate_limited"
    assert hit["network"] == "198.51.100.0/24" and hit["user_id"] is None
    assert hit["evidence"]["signups_in_window"] == 3
    assert hit["evidence"]["window_minutes"] == 30
    assert "198.51.100.77" not in str(hit)  # addresses truncated, never whole
    assert (await admin.get_json(f"/api/admin/abuse/{hit['id']}"))["id"] == hit["id"]

    # A network report can be dismissed, not warned or blocked (there is no account).
    warn = await admin.post(f"/api/admin/abuse/{hit['id']}/actions", {"action": "warn"})
    assert warn.status == 409 and (await warn.json())["error"]["code"] == "no_account"
    done = await admin.post(
        f"/api/admin/abuse/{hit['id']}/actions", {"action": "dismiss", "note": "office NAT"}
    )
    assert done.status == 200
    body = await done.json()
    assert body["status"] == "dismissed" and body["review_note"] == "office NAT"
    assert body["reviewed_by"] == admin.user["id"]
    assert await hits(admin, "?status=open") == []

    audit = (await admin.get_json("/api/admin/audit?action=abuse."))["entries"]
    assert {e["action"] for e in audit} >= {"abuse.dismissed", "abuse.rule_changed"}


async def test_a_burst_can_let_accounts_in_suspended(admin: ApiClient, make_client: Any):
    await set_rule(admin, "signup_burst", threshold=1, action="suspend")
    visitor = await make_client()
    assert (await sign_up(visitor, "first@example.com", "2001:db8:1:2::5")).status == 201
    second = await sign_up(visitor, "second@example.com", "2001:db8:1:2:ffff::9")
    assert second.status == 201  # let in, but blocked until reviewed

    refused = await visitor.post(
        "/api/auth/login", {"email": "second@example.com", "password": DEFAULT_PASSWORD}
    )
    assert refused.status == 403
    error = (await refused.json())["error"]
    assert error["code"] == "account_blocked" and "network" in error["message"]
    first = await make_client()
    await first.login("first@example.com")

    [hit] = await hits(admin, "?rule=signup_burst")
    assert hit["network"] == "2001:db8:1:2::/64" and hit["action_taken"] == "suspended"
    assert hit["user_email"] == "second@example.com"


async def test_disposable_addresses_are_refused_or_flagged_per_config(
    admin: ApiClient, make_client: Any
):
    visitor = await make_client()
    refused = await sign_up(visitor, "temp@mailinator.com", "192.0.2.1")
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert error["code"] == "disposable_email" and "mailinator.com" in error["fields"]["email"]
    sub = await sign_up(visitor, "temp@eu.yopmail.com", "192.0.2.1")
    assert sub.status == 422  # a subdomain of a listed domain too
    assert (await sign_up(visitor, "real@example.org", "192.0.2.1")).status == 201

    # The operator adds a domain; a bad one is refused on its field, nothing saved.
    bad = await admin.request(
        "PUT",
        "/api/admin/abuse/rules/disposable_email",
        json={
            "enabled": True,
            "action": "none",
            "threshold": 1,
            "window_minutes": 60,
            "extra_domains": ["not a domain"],
        },
    )
    assert bad.status == 422 and "extra_domains" in (await bad.json())["error"]["fields"]
    saved = await set_rule(admin, "disposable_email", action="none", extra_domains=["Junk-Box.NET"])
    assert saved["params"]["extra_domains"] == ["junk-box.net"]
    flagged = await sign_up(visitor, "who@junk-box.net", "192.0.2.2")
    assert flagged.status == 201  # "none": let in, reported

    reports = await hits(admin, "?rule=disposable_email")
    assert [h["action_taken"] for h in reports] == ["none", "refused", "refused"]
    assert reports[0]["user_email"] == "who@junk-box.net"
    assert reports[0]["evidence"]["domain"] == "junk-box.net"
    assert reports[0]["evidence"]["email"] == "w***@junk-box.net"

    await set_rule(admin, "disposable_email", enabled=False)
    assert (await sign_up(visitor, "ok@mailinator.com", "192.0.2.3")).status == 201


async def flagged_user(admin: ApiClient, make_client: Any, email: str) -> tuple[ApiClient, str]:
    """A logged-in user with a report about them (a throw-away address, only flagged)."""
    await set_rule(admin, "disposable_email", action="none")
    user: ApiClient = await make_client()
    assert (await sign_up(user, email, "192.0.2.50")).status == 201
    await user.login(email)
    [hit] = [h for h in await hits(admin) if h["user_email"] == email]
    return user, hit["id"]


async def test_a_blocked_users_session_and_key_stop_at_once(admin: ApiClient, make_client: Any):
    user, hit_id = await flagged_user(admin, make_client, "spammer@mailinator.com")
    key = (await (await user.post("/api/keys", {"name": "bot"})).json())["key"]
    bot = await make_client()
    bot.use_key(key)
    assert (await bot.get("/api/me")).status == 200
    assert (await user.get("/api/me")).status == 200

    blocked = await admin.post(
        f"/api/admin/abuse/{hit_id}/actions",
        {"action": "block", "note": "Sending spam through the API."},
    )
    assert blocked.status == 200 and (await blocked.json())["status"] == "blocked"
    assert (await user.get("/api/me")).status == 401
    assert (await bot.get("/api/me")).status == 401
    login = await (await make_client()).post(
        "/api/auth/login", {"email": "spammer@mailinator.com", "password": DEFAULT_PASSWORD}
    )
    assert login.status == 403
    error = (await login.json())["error"]
    assert error["code"] == "account_blocked"
    assert error["message"] == "This account is blocked: Sending spam through the API."
    wrong = await (await make_client()).post(
        "/api/auth/login", {"email": "spammer@mailinator.com", "password": "wrong" * 4}
    )
    assert wrong.status == 401  # a wrong password learns nothing about the block

    users = (await admin.get_json("/api/admin/users?status=blocked"))["users"]
    assert [u["email"] for u in users] == ["spammer@mailinator.com"]
    # Unblocked and blocked again from the users console: no stale reason is told (a block
    # without a reason answers as a wrong password does, like an account being deleted).
    spammer_id = users[0]["id"]
    for active in (True, False):
        changed = await admin.patch(f"/api/admin/users/{spammer_id}", {"is_active": active})
        assert changed.status == 200
    again = await (await make_client()).post(
        "/api/auth/login", {"email": "spammer@mailinator.com", "password": DEFAULT_PASSWORD}
    )
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "invalid_credentials"
    actions = {e["action"] for e in (await admin.get_json("/api/admin/audit"))["entries"]}
    assert {"abuse.blocked", "user.blocked"} <= actions


async def test_a_warning_is_mailed_and_shown_in_the_app(
    admin: ApiClient, make_client: Any, mailbox: Mailbox
):
    user, hit_id = await flagged_user(admin, make_client, "warned@trashmail.com")
    response = await admin.post(
        f"/api/admin/abuse/{hit_id}/actions",
        {"action": "warn", "note": "Please stop creating throw-away accounts."},
    )
    assert response.status == 200 and (await response.json())["status"] == "warned"
    notices = (await user.get_json("/api/notifications"))["notifications"]
    [notice] = [n for n in notices if n["kind"] == "abuse_warning"]
    assert "throw-away accounts" in notice["excerpt"]
    await mailbox.settle()
    [mail] = mailbox.to("warned@trashmail.com", "A warning about your")
    assert "Please stop creating throw-away accounts." in str(mail)
    assert (await user.get("/api/me")).status == 200  # a warning blocks nothing


async def test_bad_actions_and_unknown_reports(admin: ApiClient, make_client: Any):
    _user, hit_id = await flagged_user(admin, make_client, "x@yopmail.com")
    bad = await admin.post(f"/api/admin/abuse/{hit_id}/actions", {"action": "delete"})
    assert bad.status == 422 and "action" in (await bad.json())["error"]["fields"]
    long = await admin.post(
        f"/api/admin/abuse/{hit_id}/actions", {"action": "warn", "note": "x" * 501}
    )
    assert long.status == 422 and "note" in (await long.json())["error"]["fields"]
    assert (await hits(admin))[0]["status"] == "open"  # nothing done
    missing = await admin.post("/api/admin/abuse/nope/actions", {"action": "dismiss"})
    assert missing.status == 404
    assert (await admin.get("/api/admin/abuse/nope")).status == 404
    rule = await admin.request(
        "PUT",
        "/api/admin/abuse/rules/nope",
        json={"enabled": True, "action": "none", "threshold": 1, "window_minutes": 1},
    )
    assert rule.status == 404
    zero = await admin.request(
        "PUT",
        "/api/admin/abuse/rules/signup_burst",
        json={"enabled": True, "action": "explode", "threshold": 0, "window_minutes": 1},
    )
    assert zero.status == 422
    assert set((await zero.json())["error"]["fields"]) >= {"action", "threshold"}
    assert (await admin.get("/api/admin/abuse?status=weird")).status == 422


async def test_only_admins_see_or_act(admin: ApiClient, make_client: Any):
    _user, hit_id = await flagged_user(admin, make_client, "y@yopmail.com")
    member = await make_client()
    await member.register_and_login("member@example.com")
    for method, path, body in (
        ("GET", "/api/admin/abuse", None),
        ("GET", f"/api/admin/abuse/{hit_id}", None),
        ("POST", f"/api/admin/abuse/{hit_id}/actions", {"action": "dismiss"}),
        ("GET", "/api/admin/abuse/rules", None),
        ("PUT", "/api/admin/abuse/rules/signup_burst", {}),
    ):
        response = await member.request(method, path, json=body)
        assert response.status == 403, (method, path, response.status)
    anonymous = await make_client()
    assert (await anonymous.get("/api/admin/abuse")).status == 401
    assert (await hits(admin))[0]["status"] == "open"


async def test_the_queue_page_filters_and_acts(admin: ApiClient, make_client: Any):
    _user, hit_id = await flagged_user(admin, make_client, "page@yopmail.com")
    page = await admin.get("/admin/abuse?status=open")
    html = await page.text()
    assert page.status == 200 and "page@yopmail.com" in html and f"hit-{hit_id}" in html
    assert f"hit-{hit_id}" not in await (await admin.get("/admin/abuse?status=blocked")).text()
    assert (await admin.get("/admin/abuse?rule=bogus")).status == 422
    rules_page = await admin.get("/admin/abuse/rules")
    assert rules_page.status == 200 and "mailinator" not in await rules_page.text()
    member = await make_client()
    await member.register_and_login("nosy@example.com")
    assert (await member.get("/admin/abuse")).status in (403, 404)


async def test_the_sign_up_form_says_why_a_burst_is_refused_and_when_to_retry(
    admin: ApiClient, make_client: Any
):
    await set_rule(admin, "signup_burst", threshold=1, window_minutes=20)
    visitor = await make_client()
    assert (await sign_up(visitor, "first@example.com", "198.51.100.10")).status == 201
    refused = await visitor.post(
        "/register",
        data={"email": "second@example.com", "name": "Second", "password": DEFAULT_PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.11", "Accept": "text/html"},
        allow_redirects=False,
    )
    assert refused.status == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 20 * 60
    page = await refused.text()
    assert "Too many accounts were created from your network recently" in page
    assert "Try again in 20 minutes." in page
    assert 'value="second@example.com"' in page  # what was typed is kept
