"""Admin user management: list, search, filter and page through users; view one; block and
unblock (a blocked user loses access on the next request, by session and by API key); change
role (which logs the user out); the last admin can be neither demoted nor blocked; no one blocks
themselves; and none of it is open to non-admins."""

from __future__ import annotations

from typing import Any

from multinotes.testing import ApiClient


async def new_user(make_client: Any, email: str, name: str = "Test User") -> ApiClient:
    client = await make_client()
    await client.register_and_login(email, name=name)
    return client


async def patch_user(admin: ApiClient, user_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await admin.patch(f"/api/admin/users/{user_id}", body)
    return response.status, await response.json()


async def emails(admin: ApiClient, query: str = "") -> list[str]:
    body = await admin.get_json(f"/api/admin/users?{query}")
    return [u["email"] for u in body["users"]]


async def test_list_search_filter_and_page(admin: ApiClient, make_client):
    ids = {}
    for email, name in [
        ("ann@example.com", "Ann Archer"),
        ("ben@example.org", "Ben Baker"),
        ("cat@example.com", "Cat Cooper"),
        ("dan@example.org", "Dan Archer"),
    ]:
        ids[email] = (await new_user(make_client, email, name)).user["id"]

    listed = await admin.get_json("/api/admin/users")
    assert [u["email"] for u in listed["users"]] == [
        "dan@example.org",
        "cat@example.com",
        "ben@example.org",
        "ann@example.com",
        "admin@example.com",
    ]  # newest first
    first = listed["users"][0]
    assert set(first) >= {"id", "email", "name", "role", "status", "rate_limit_tier"}
    assert "password_hash" not in first and first["status"] == "active"

    assert await emails(admin, "q=archer") == ["dan@example.org", "ann@example.com"]
    assert await emails(admin, "q=EXAMPLE.ORG") == ["dan@example.org", "ben@example.org"]
    assert await emails(admin, "q=%25") == []  # a literal percent sign, not a wildcard
    assert await emails(admin, "role=admin") == ["admin@example.com"]
    await patch_user(admin, ids["cat@example.com"], {"is_active": False})
    assert await emails(admin, "status=blocked") == ["cat@example.com"]
    assert "cat@example.com" not in await emails(admin, "status=active")
    await patch_user(admin, ids["ben@example.org"], {"rate_limit_tier": "strict"})
    assert await emails(admin, "rate_limit_tier=strict") == ["ben@example.org"]
    assert (await admin.get("/api/admin/users?role=owner")).status == 422

    seen: list[str] = []
    cursor = None
    while True:
        suffix = f"&before={cursor}" if cursor else ""
        page = await admin.get_json(f"/api/admin/users?limit=2{suffix}")
        seen += [u["email"] for u in page["users"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5


async def test_one_user_with_counts_and_events(admin: ApiClient, make_client):
    eve = await new_user(make_client, "eve@example.com", "Eve")
    await eve.post("/api/keys", {"name": "script"})
    detail = await admin.get_json(f"/api/admin/users/{eve.user['id']}")
    assert detail["email"] == "eve@example.com" and detail["role"] == "user"
    assert detail["active_sessions"] == 1 and detail["api_keys"] == 1
    events = [e["action"] for e in detail["recent_events"]]
    assert {"auth.register", "auth.login", "api_key.created"} <= set(events)
    assert (await admin.get("/api/admin/users/nope")).status == 404


async def test_blocking_cuts_off_sessions_and_api_keys_at_the_next_request(
    admin: ApiClient, make_client
):
    fred = await new_user(make_client, "fred@example.com")
    key = (await (await fred.post("/api/keys", {"name": "bot"})).json())["key"]
    bot = await make_client()
    bot.use_key(key)
    assert (await bot.get("/api/me")).status == 200
    assert (await fred.get("/api/me")).status == 200

    status, body = await patch_user(admin, fred.user["id"], {"is_active": False})
    assert status == 200 and body["status"] == "blocked" and body["active_sessions"] == 0
    assert (await fred.get("/api/me")).status == 401
    assert (await bot.get("/api/me")).status == 401
    again = await fred.post("/api/auth/login", {"email": "fred@example.com", "password": "x" * 12})
    login = await make_client()
    refused = await login.post(
        "/api/auth/login",
        {"email": "fred@example.com", "password": "correct horse battery staple"},
    )
    assert refused.status == again.status == 401  # same answer as a wrong password
    assert (await refused.json())["error"]["message"] == (await again.json())["error"]["message"]

    status, body = await patch_user(admin, fred.user["id"], {"is_active": True})
    assert status == 200 and body["status"] == "active"
    assert (await bot.get("/api/me")).status == 200  # the key works again
    assert (await fred.get("/api/me")).status == 401  # the old session stays logged out
    await fred.login("fred@example.com")
    assert (await fred.get("/api/me")).status == 200


async def test_a_role_change_logs_the_user_out(admin: ApiClient, make_client):
    gil = await new_user(make_client, "gil@example.com")
    assert (await gil.get("/api/admin/users")).status == 403
    status, body = await patch_user(admin, gil.user["id"], {"role": "admin"})
    assert status == 200 and body["role"] == "admin" and body["active_sessions"] == 0
    assert (await gil.get("/api/me")).status == 401
    await gil.login("gil@example.com")
    assert (await gil.get("/api/admin/users")).status == 200
    status, _ = await patch_user(admin, gil.user["id"], {"role": "user"})
    assert status == 200
    assert (await gil.get("/api/me")).status == 401


async def test_the_last_admin_stays(admin: ApiClient, make_client):
    me = admin.user["id"]
    status, body = await patch_user(admin, me, {"role": "user"})
    assert status == 409 and body["error"]["code"] == "last_admin"
    status, body = await patch_user(admin, me, {"is_active": False})
    assert status == 409 and body["error"]["code"] == "cannot_block_self"
    assert (await admin.get_json("/api/me"))["role"] == "admin"

    hana = await new_user(make_client, "hana@example.com")
    await patch_user(admin, hana.user["id"], {"role": "admin"})
    await hana.login("hana@example.com")
    # Two admins: one may demote the other, but not the last one left.
    status, _ = await patch_user(hana, me, {"role": "user"})
    assert status == 200
    status, body = await patch_user(hana, hana.user["id"], {"role": "user"})
    assert status == 409 and body["error"]["code"] == "last_admin"

    # A blocked admin does not count as the other admin.
    await patch_user(hana, me, {"role": "admin"})
    await admin.login("admin@example.com")
    status, _ = await patch_user(admin, hana.user["id"], {"is_active": False})
    assert status == 200
    status, body = await patch_user(admin, me, {"role": "user"})
    assert status == 409 and body["error"]["code"] == "last_admin"


async def test_only_admins_and_only_known_fields(admin: ApiClient, make_client):
    ivy = await new_user(make_client, "ivy@example.com")
    uid = ivy.user["id"]
    assert (await ivy.get("/api/admin/users")).status == 403
    assert (await ivy.get(f"/api/admin/users/{uid}")).status == 403
    assert (await ivy.patch(f"/api/admin/users/{uid}", {"role": "admin"})).status == 403
    anonymous = await make_client()
    assert (await anonymous.get("/api/admin/users")).status == 401
    for body in ({"email": "x@example.com"}, {"balance": 10**6}, {"password_hash": "x"}):
        status, answer = await patch_user(admin, uid, body)
        assert status == 422 and answer["error"]["fields"]
    status, _ = await patch_user(admin, uid, {"role": "owner"})
    assert status == 422
    status, _ = await patch_user(admin, "nope", {"is_active": False})
    assert status == 404
    assert (await ivy.get_json("/api/me"))["email"] == "ivy@example.com"


async def test_console_pages(admin: ApiClient, make_client):
    jon = await new_user(make_client, "jon@example.com", "Jon Snow")
    uid = jon.user["id"]
    listing = await admin.get("/admin/users?q=snow")
    html = await listing.text()
    assert listing.status == 200 and ">jon@example.com</a>" in html
    assert ">admin@example.com</a>" not in html  # filtered out (the verify banner may name it)
    assert f'href="/admin/users/{uid}"' in html
    detail = await (await admin.get(f"/admin/users/{uid}")).text()
    assert "Block user" in detail and "Logged in" in detail  # their events

    blocked = await admin.client.post(
        f"/admin/users/{uid}",
        data={"is_active": "false", "csrf_token": admin.csrf},
        allow_redirects=False,
    )
    assert blocked.status == 303 and blocked.headers["Location"] == f"/admin/users/{uid}"
    assert (await jon.get("/api/me")).status == 401
    detail = await (await admin.get(f"/admin/users/{uid}")).text()
    assert "Unblock user" in detail

    refused = await admin.client.post(
        f"/admin/users/{admin.user['id']}",
        data={"role": "user", "csrf_token": admin.csrf},
        allow_redirects=False,
    )
    assert refused.status == 409
    assert "last active administrator" in await refused.text()

    gone = await jon.get("/admin/users", allow_redirects=False)
    assert gone.status == 303 and gone.headers["Location"].startswith("/login")  # logged out
    kim = await new_user(make_client, "kim@example.com")
    assert (await kim.get("/admin/users")).status == 403
    nav = await (await admin.get("/admin/plugins")).text()
    assert 'href="/admin/users"' in nav and 'href="/admin/audit"' in nav
