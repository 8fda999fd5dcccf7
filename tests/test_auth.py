"""Identity core: register, log in, log out, the current user, sessions and CSRF."""

from __future__ import annotations

from multinotes.testing import DEFAULT_PASSWORD, ApiClient


async def test_first_user_becomes_admin_and_later_users_do_not(api: ApiClient, make_client):
    first = await api.register("ada@example.com", name="Ada")
    assert first["role"] == "admin"
    assert set(first) == {"id", "email", "name", "role", "email_verified"}
    other = await make_client()
    second = await other.register("bob@example.com", name="Bob")
    assert second["role"] == "user"


async def test_register_validates_every_field(api: ApiClient):
    response = await api.post(
        "/api/auth/register", {"email": "not-an-email", "password": "short", "name": ""}
    )
    assert response.status == 422
    body = await response.json()
    assert body["error"]["code"] == "invalid"
    assert {"email", "name"} <= set(body["error"]["fields"])


async def test_register_rejects_weak_password_with_field_error(api: ApiClient):
    response = await api.post(
        "/api/auth/register", {"email": "c@example.com", "password": "aaaaaaaaaaaa", "name": "C"}
    )
    assert response.status == 422
    assert "password" in (await response.json())["error"]["fields"]


async def test_register_rejects_role_in_body(api: ApiClient):
    response = await api.post(
        "/api/auth/register",
        {"email": "eve@example.com", "password": DEFAULT_PASSWORD, "name": "Eve", "role": "admin"},
    )
    assert response.status == 422
    assert "role" in (await response.json())["error"]["fields"]


async def test_a_taken_address_creates_no_second_account_case_insensitively(
    api: ApiClient, make_client
):
    # Answered like a new address (see tests/security/test_registration_enumeration.py).
    await api.register("dup@example.com")
    response = await api.post(
        "/api/auth/register",
        {"email": "DUP@example.com", "password": "another long passphrase 7", "name": "Again"},
    )
    assert response.status == 201
    other = await make_client()
    refused = await other.post(
        "/api/auth/login", {"email": "dup@example.com", "password": "another long passphrase 7"}
    )
    assert refused.status == 401
    await other.login("dup@example.com")


async def test_malformed_json_is_a_clear_400(api: ApiClient):
    response = await api.client.post(
        "/api/auth/register", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "malformed_json"


async def test_login_sets_a_hardened_session_cookie_and_me_works(api: ApiClient):
    await api.register("ann@example.com", name="Ann")
    response = await api.post(
        "/api/auth/login", {"email": "ann@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status == 200
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    body = await response.json()
    assert body["csrf_token"]
    api.csrf = body["csrf_token"]
    me = await api.get_json("/api/me")
    assert me["email"] == "ann@example.com" and me["name"] == "Ann"


async def test_wrong_password_and_unknown_email_look_the_same(api: ApiClient):
    await api.register("sam@example.com")
    wrong = await api.post("/api/auth/login", {"email": "sam@example.com", "password": "nope" * 3})
    unknown = await api.post("/api/auth/login", {"email": "who@example.com", "password": "x" * 12})
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["error"]["message"] == (await unknown.json())["error"]["message"]


async def test_me_needs_authentication(api: ApiClient):
    response = await api.get("/api/me")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_logout_ends_the_session(api: ApiClient):
    await api.register_and_login("lou@example.com")
    cookies = {c.key: c.value for c in api.client.session.cookie_jar}
    response = await api.post("/api/auth/logout")
    assert response.status == 204
    # Even a client that kept the old cookie is logged out: the session is revoked server-side.
    replay = await api.client.get("/api/me", cookies=cookies)
    assert replay.status == 401


async def test_login_rotates_the_session(api: ApiClient):
    await api.register_and_login("rot@example.com")
    old = {c.key: c.value for c in api.client.session.cookie_jar}
    await api.login("rot@example.com")
    new = {c.key: c.value for c in api.client.session.cookie_jar}
    assert old != new
    stale = await api.client.get("/api/me", cookies=old)
    assert stale.status == 401


async def test_cookie_writes_need_the_csrf_token(api: ApiClient):
    await api.register_and_login("csrf@example.com")
    token, api.csrf = api.csrf, None
    missing = await api.post("/api/keys", {"name": "x"})
    assert missing.status == 403
    assert (await missing.json())["error"]["code"] == "csrf_failed"
    wrong = await api.post("/api/keys", {"name": "x"}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status == 403
    api.csrf = token
    ok = await api.post("/api/keys", {"name": "x"})
    assert ok.status == 201


async def test_cross_site_origin_is_refused_even_with_the_token(api: ApiClient):
    await api.register_and_login("origin@example.com")
    response = await api.post("/api/keys", {"name": "x"}, headers={"Origin": "https://evil.test"})
    assert response.status == 403
    same = await api.post(
        "/api/keys", {"name": "y"}, headers={"Origin": str(api.client.make_url("")).rstrip("/")}
    )
    assert same.status == 201


async def test_cross_site_login_attempt_is_refused(api: ApiClient):
    await api.register("victim@example.com")
    response = await api.post(
        "/api/auth/login",
        {"email": "victim@example.com", "password": DEFAULT_PASSWORD},
        headers={"Origin": "https://evil.test"},
    )
    assert response.status == 403


async def test_login_form_works_while_already_logged_in(api: ApiClient):
    """The page form carries the CSRF token, so switching accounts in one browser works."""
    await api.register_and_login("one@example.com")
    await api.register("two@example.com")
    page = await (await api.get("/login")).text()
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert token == api.csrf
    response = await api.client.post(
        "/login",
        data={"email": "two@example.com", "password": DEFAULT_PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303
    me = await (await api.client.get("/api/me")).json()
    assert me["email"] == "two@example.com"


async def test_email_errors_are_readable(api: ApiClient):
    response = await api.post(
        "/api/auth/register", {"email": "nobody", "password": DEFAULT_PASSWORD, "name": "N"}
    )
    message = (await response.json())["error"]["fields"]["email"]
    assert message.startswith("An email address must have an @-sign")
