"""Sign in with Google (OpenID Connect) and Facebook (OAuth 2 + Graph), end to end.

The providers are a local fake (tests/fakes/oidc_server.py) that issues real RS256-signed ID
tokens, checks PKCE and makes codes single-use. Each test follows the browser's redirects by hand:
start → the provider's consent page → our callback.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from sqlalchemy import func, select, update

from multinotes.app import create_app
from multinotes.identity.oauth_models import OAuthFlow, OAuthIdentity
from multinotes.keys import DB
from multinotes.models import User
from multinotes.testing import ApiClient, app_client
from tests.fakes import serve_fake
from tests.fakes.oidc_server import FakeOIDC


@dataclass
class Provider:
    fake: FakeOIDC
    url: str


@pytest.fixture
async def oidc() -> AsyncIterator[Provider]:
    fake = FakeOIDC()
    async with serve_fake(fake.app()) as url:
        yield Provider(fake, url)


@pytest.fixture
def settings(make_settings, oidc: Provider):
    return make_settings(**oidc.fake.settings(oidc.url))


@pytest.fixture
def plugins() -> Any:
    return []  # no LLM provider is needed to sign in


# -- driving the browser's side ------------------------------------------------------------------


async def consent(api: ApiClient, provider: str = "google", next_url: str | None = None) -> str:
    """Start a sign-in and pass the consent page; returns the callback URL the provider sent."""
    query = f"?{urlencode({'next': next_url})}" if next_url else ""
    start = await api.get(f"/api/auth/oauth/{provider}/start{query}", allow_redirects=False)
    assert start.status == 302, await start.text()
    assert start.headers["Cache-Control"] == "no-store"
    page = await api.client.session.get(start.headers["Location"], allow_redirects=False)
    assert page.status == 302, await page.text()
    return page.headers["Location"]


async def follow(api: ApiClient, callback: str, **headers: str) -> Any:
    return await api.client.session.get(callback, allow_redirects=False, headers=headers)


async def sign_in(api: ApiClient, provider: str = "google", next_url: str | None = None) -> Any:
    """A complete sign-in; returns the callback's response (a 303 when it worked)."""
    return await follow(api, await consent(api, provider, next_url))


async def error_of(response: Any, status: int) -> str:
    body = await response.json()
    assert response.status == status, body
    assert "error" in body
    return str(body["error"]["code"])


async def use_page_csrf(api: ApiClient) -> None:
    """Pick up the session's CSRF token from a page, as the browser does after a redirect."""
    html = await (await api.get("/account")).text()
    api.csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


async def me(api: ApiClient) -> dict[str, Any]:
    return dict(await api.get_json("/api/me"))


async def users_count(api: ApiClient) -> int:
    async with api.app[DB].read() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


# -- configuration -------------------------------------------------------------------------------


async def test_enabled_providers_are_listed(api: ApiClient):
    providers = await api.get_json("/api/auth/oauth/providers")
    assert providers == [
        {"id": "google", "name": "Google", "start_url": "/api/auth/oauth/google/start"},
        {"id": "facebook", "name": "Facebook", "start_url": "/api/auth/oauth/facebook/start"},
    ]
    login = await (await api.get("/login")).text()
    assert 'href="/api/auth/oauth/google/start"' in login
    assert "Continue with Facebook" in login
    assert "Continue with Google" in await (await api.get("/register")).text()


async def test_unconfigured_providers_do_not_exist(make_settings):
    async with app_client(create_app(make_settings(), plugins=[])) as api:
        assert await api.get_json("/api/auth/oauth/providers") == []
        for path in ("/api/auth/oauth/google/start", "/api/auth/oauth/facebook/callback"):
            response = await api.get(path, allow_redirects=False)
            assert await error_of(response, 404) == "not_found"
        assert "Continue with" not in await (await api.get("/login")).text()


async def test_an_unknown_provider_is_404(api: ApiClient):
    response = await api.get("/api/auth/oauth/github/start", allow_redirects=False)
    assert response.status == 404


# -- Google --------------------------------------------------------------------------------------


async def test_google_sign_in_creates_a_verified_account_and_logs_in(api: ApiClient, oidc):
    callback = await consent(api)
    request = oidc.fake.authorize_requests[-1]
    # Authorization code flow with PKCE (S256), state and nonce, back to our callback.
    assert request["response_type"] == "code"
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert len(request["state"]) >= 43 and len(request["nonce"]) >= 43
    assert request["redirect_uri"] == str(api.client.make_url("/api/auth/oauth/google/callback"))
    assert "openid" in request["scope"].split() and "email" in request["scope"].split()

    response = await follow(api, callback)
    assert response.status == 303 and response.headers["Location"] == "/"
    user = await me(api)
    assert user["email"] == "gina@example.com" and user["name"] == "Gina Google"
    assert user["email_verified"] is True
    assert user["role"] == "admin"  # the first account on a fresh install, as with a password
    identities = await api.get_json("/api/auth/oauth/identities")
    assert [(i["provider"], i["email"]) for i in identities] == [("google", "gina@example.com")]
    # No password was set, so none works.
    api.client.session.cookie_jar.clear()
    login = await api.post("/api/auth/login", {"email": "gina@example.com", "password": "x" * 12})
    assert login.status == 401


async def test_returning_google_user_gets_the_same_account(api: ApiClient, oidc, make_client):
    await api.register("someone@example.com")  # not the first account: no admin this time
    assert (await sign_in(api)).status == 303
    first = await me(api)
    assert first["role"] == "user"
    old_cookies = {c.key: c.value for c in api.client.session.cookie_jar}

    oidc.fake.google_user["email"] = "gina.new@example.com"  # people change addresses
    assert (await sign_in(api)).status == 303
    assert (await me(api))["id"] == first["id"]
    assert await users_count(api) == 2
    # The session was rotated: the cookie from before the second sign-in no longer works.
    stale = await api.client.get("/api/me", cookies=old_cookies)
    assert stale.status == 401

    other = await make_client()
    assert (await sign_in(other)).status == 303
    assert (await me(other))["id"] == first["id"]
    identities = await other.get_json("/api/auth/oauth/identities")
    assert identities[0]["email"] == "gina.new@example.com"
    assert identities[0]["last_login_at"] is not None


async def test_next_is_kept_but_only_within_the_site(api: ApiClient):
    response = await sign_in(api, next_url="/chat")
    assert response.headers["Location"] == "/chat"
    response = await sign_in(api, next_url="https://evil.example/")
    assert response.headers["Location"] == "/"


async def test_an_existing_password_account_is_never_taken_over(api: ApiClient, oidc, make_client):
    owner = await api.register("gina@example.com", name="Gina")
    visitor = await make_client()
    response = await sign_in(visitor)
    assert await error_of(response, 409) == "oauth_account_exists"
    assert "already exists" in (await response.json())["error"]["message"]
    assert (await visitor.get("/api/me")).status == 401
    assert await users_count(api) == 1

    # A browser is told what to do, on a page.
    page = await follow(visitor, await consent(visitor), Accept="text/html")
    assert page.status == 409
    html = await page.text()
    assert "You already have an account" in html and "gina@example.com" in html
    assert 'href="/login?next=/account%23linked-accounts"' in html

    # The owner logs in with the password and links Google from inside the account.
    await api.login("gina@example.com")
    link = await api.post("/api/auth/oauth/google/link")
    assert link.status == 200, await link.text()
    authorize_url = (await link.json())["authorize_url"]
    page = await api.client.session.get(authorize_url, allow_redirects=False)
    linked = await follow(api, page.headers["Location"])
    assert linked.status == 303 and linked.headers["Location"] == "/account#linked-accounts"
    identities = await api.get_json("/api/auth/oauth/identities")
    assert [i["provider"] for i in identities] == ["google"]

    # From now on Google logs in to that very account.
    later = await make_client()
    assert (await sign_in(later)).status == 303
    assert (await me(later))["id"] == owner["id"]


async def test_a_google_identity_linked_elsewhere_cannot_be_linked_again(
    api: ApiClient, make_client
):
    assert (await sign_in(api)).status == 303  # Gina's Google now belongs to Gina's account
    bob = await make_client()
    await bob.register_and_login("bob@example.com")
    link = await bob.post("/api/auth/oauth/google/link")
    page = await bob.client.session.get((await link.json())["authorize_url"], allow_redirects=False)
    response = await follow(bob, page.headers["Location"])
    assert await error_of(response, 409) == "oauth_identity_taken"
    assert await bob.get_json("/api/auth/oauth/identities") == []


async def test_linking_needs_a_browser_session_not_an_api_key(api: ApiClient):
    await api.register_and_login("kim@example.com")
    created = await api.post("/api/keys", {"name": "script"})
    api.use_key((await created.json())["key"])
    response = await api.post("/api/auth/oauth/google/link")
    assert await error_of(response, 403) == "session_required"


async def test_unverified_google_email_creates_nothing(api: ApiClient, oidc):
    oidc.fake.google_user["email_verified"] = False
    response = await sign_in(api)
    assert await error_of(response, 400) == "oauth_email_unverified"
    assert await users_count(api) == 0


# -- what is refused -----------------------------------------------------------------------------


async def test_a_tampered_state_is_refused(api: ApiClient, oidc):
    callback = await consent(api)
    response = await follow(api, with_query(callback, state="forged" + "x" * 40))
    assert await error_of(response, 400) == "oauth_state_invalid"
    assert oidc.fake.token_requests == 0  # the code was never even tried
    assert (await api.get("/api/me")).status == 401


async def test_a_callback_works_once(api: ApiClient):
    callback = await consent(api)
    assert (await follow(api, callback)).status == 303
    replay = await follow(api, callback)
    assert await error_of(replay, 400) == "oauth_state_invalid"


async def test_a_callback_only_works_in_the_browser_that_started_it(api: ApiClient, make_client):
    """Login CSRF: an attacker's own callback URL, opened in a victim's browser, does nothing."""
    callback = await consent(api)
    victim = await make_client()
    response = await follow(victim, callback)
    assert await error_of(response, 400) == "oauth_state_invalid"
    assert (await victim.get("/api/me")).status == 401
    assert (await follow(api, callback)).status == 303  # its rightful browser still can


async def test_an_expired_flow_is_refused(api: ApiClient):
    callback = await consent(api)
    async with api.app[DB].transaction() as session:
        await session.execute(update(OAuthFlow).values(expires_at=OAuthFlow.created_at))
    response = await follow(api, callback)
    assert await error_of(response, 400) == "oauth_state_expired"


@pytest.mark.parametrize(
    "misbehaviour",
    [
        pytest.param({"id_token_overrides": {"nonce": "another-nonce"}}, id="wrong-nonce"),
        pytest.param({"id_token_overrides": {"nonce": None}}, id="no-nonce"),
        pytest.param({"id_token_overrides": {"aud": "someone-elses-client"}}, id="wrong-audience"),
        pytest.param({"id_token_overrides": {"azp": "someone-elses-client"}}, id="wrong-azp"),
        pytest.param({"id_token_overrides": {"iss": "https://evil.example"}}, id="wrong-issuer"),
        pytest.param(
            {"id_token_overrides": {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4200}},
            id="expired",
        ),
        pytest.param({"id_token_overrides": {"iat": int(time.time()) + 3600}}, id="future-iat"),
        pytest.param({"sign_with_other_key": True}, id="bad-signature"),
    ],
)
async def test_an_id_token_that_fails_a_check_is_refused(api: ApiClient, oidc, misbehaviour):
    for name, value in misbehaviour.items():
        setattr(oidc.fake, name, value)
    response = await sign_in(api)
    assert await error_of(response, 400) == "oauth_invalid_token"
    body = await response.json()
    assert "could not be verified" in body["error"]["message"]
    assert (await api.get("/api/me")).status == 401
    assert await users_count(api) == 0


async def test_denied_consent_is_a_clear_refusal(api: ApiClient, oidc):
    oidc.fake.deny = True
    callback = await consent(api)
    assert "error=access_denied" in callback
    response = await follow(api, callback)
    assert await error_of(response, 400) == "oauth_denied"
    assert oidc.fake.token_requests == 0
    # A browser gets a page, not JSON, and not a 500.
    page = await follow(api, await consent(api), Accept="text/html,application/xhtml+xml")
    assert page.status == 400 and page.content_type == "text/html"
    html = await page.text()
    assert "Signing in with Google did not work" in html and "cancelled" in html


async def test_a_failing_token_endpoint_is_a_502_not_a_500(api: ApiClient, oidc):
    oidc.fake.token_status = 500
    response = await sign_in(api)
    assert await error_of(response, 502) == "oauth_provider_error"
    # A code the provider rejects (here: a made-up one) fails the same clean way.
    oidc.fake.token_status = None
    callback = await consent(api)
    response = await follow(api, with_query(callback, code="made-up"))
    assert await error_of(response, 502) == "oauth_provider_error"


async def test_an_unreachable_provider_is_a_clean_error(make_settings, oidc):
    settings = make_settings(
        **{
            **oidc.fake.settings(oidc.url),
            "oauth_google_discovery_url": "http://127.0.0.1:9/.well-known/openid-configuration",
        }
    )
    async with app_client(create_app(settings, plugins=[])) as api:
        response = await api.get("/api/auth/oauth/google/start", allow_redirects=False)
        assert await error_of(response, 502) == "oauth_provider_error"


async def test_blocked_users_cannot_sign_in_with_google(api: ApiClient, make_client):
    assert (await sign_in(api)).status == 303
    async with api.app[DB].transaction() as session:
        await session.execute(update(User).values(is_active=False))
    again = await make_client()
    response = await sign_in(again)
    assert await error_of(response, 403) == "account_blocked"
    assert (await again.get("/api/me")).status == 401


# -- Facebook ------------------------------------------------------------------------------------


async def test_facebook_sign_in_creates_an_account_then_logs_in_again(
    api: ApiClient, oidc, make_client
):
    callback = await consent(api, "facebook")
    request = oidc.fake.authorize_requests[-1]
    assert request["code_challenge_method"] == "S256" and request["state"]
    assert "email" in request["scope"]
    response = await follow(api, callback)
    assert response.status == 303
    user = await me(api)
    assert (user["email"], user["name"]) == ("fay@example.com", "Fay Facebook")
    # Facebook does not say whether the address was confirmed: the usual link is mailed.
    assert user["email_verified"] is False

    other = await make_client()
    assert (await sign_in(other, "facebook")).status == 303
    assert (await me(other))["id"] == user["id"]
    assert await users_count(api) == 1
    identities = await other.get_json("/api/auth/oauth/identities")
    assert [(i["provider"], i["email"]) for i in identities] == [("facebook", "fay@example.com")]
    async with api.app[DB].read() as session:
        subject = await session.scalar(select(OAuthIdentity.subject))
    assert subject == oidc.fake.facebook_user["id"]


async def test_facebook_without_an_email_is_refused_clearly(api: ApiClient, oidc):
    del oidc.fake.facebook_user["email"]
    response = await sign_in(api, "facebook")
    assert await error_of(response, 400) == "oauth_email_missing"
    assert await users_count(api) == 0


async def test_facebook_denied_and_failing_token_exchange(api: ApiClient, oidc):
    oidc.fake.deny = True
    assert await error_of(await sign_in(api, "facebook"), 400) == "oauth_denied"
    oidc.fake.deny = False
    oidc.fake.facebook_client_secret = "rotated-at-facebook"  # our secret no longer matches
    assert await error_of(await sign_in(api, "facebook"), 502) == "oauth_provider_error"


async def test_facebook_cannot_take_over_an_existing_account(api: ApiClient, make_client):
    await api.register("fay@example.com")
    visitor = await make_client()
    response = await sign_in(visitor, "facebook")
    assert await error_of(response, 409) == "oauth_account_exists"


# -- linked accounts -----------------------------------------------------------------------------


async def link(api: ApiClient, provider: str) -> Any:
    started = await api.post(f"/api/auth/oauth/{provider}/link")
    assert started.status == 200, await started.text()
    page = await api.client.session.get(
        (await started.json())["authorize_url"], allow_redirects=False
    )
    return await follow(api, page.headers["Location"])


async def test_the_last_way_to_log_in_cannot_be_unlinked(api: ApiClient, make_client):
    assert (await sign_in(api)).status == 303  # a Google-only account: no password
    await use_page_csrf(api)
    [google] = await api.get_json("/api/auth/oauth/identities")
    refused = await api.delete(f"/api/auth/oauth/identities/{google['id']}")
    assert await error_of(refused, 409) == "last_login_method"

    assert (await link(api, "facebook")).status == 303  # now there are two ways in
    assert (await api.delete(f"/api/auth/oauth/identities/{google['id']}")).status == 204
    [facebook] = await api.get_json("/api/auth/oauth/identities")
    assert facebook["provider"] == "facebook"
    refused = await api.delete(f"/api/auth/oauth/identities/{facebook['id']}")
    assert await error_of(refused, 409) == "last_login_method"

    # Someone else's identity id is as unknown as a made-up one.
    other = await make_client()
    await other.register_and_login("other@example.com")
    response = await other.delete(f"/api/auth/oauth/identities/{facebook['id']}")
    assert response.status == 404
    assert len(await api.get_json("/api/auth/oauth/identities")) == 1


async def test_an_account_with_a_password_can_unlink_everything(api: ApiClient):
    await api.register_and_login("gina@example.com")
    assert (await link(api, "google")).status == 303
    [google] = await api.get_json("/api/auth/oauth/identities")
    assert (await api.delete(f"/api/auth/oauth/identities/{google['id']}")).status == 204
    assert await api.get_json("/api/auth/oauth/identities") == []
    # Unlinked means unlinked: Google now meets the "account exists" rule again.
    api.client.session.cookie_jar.clear()
    assert await error_of(await sign_in(api), 409) == "oauth_account_exists"


async def test_a_link_finishes_only_for_the_user_who_started_it(api: ApiClient):
    await api.register("ann@example.com")
    await api.register("bob@example.com")
    await api.login("ann@example.com")
    started = await api.post("/api/auth/oauth/google/link")
    page = await api.client.session.get(
        (await started.json())["authorize_url"], allow_redirects=False
    )
    await api.login("bob@example.com")  # another account logs in on this browser meanwhile
    response = await follow(api, page.headers["Location"])
    assert await error_of(response, 400) == "oauth_link_session"
    assert await api.get_json("/api/auth/oauth/identities") == []


async def test_account_page_lists_links_and_unlinks(api: ApiClient, oidc):
    await api.register_and_login("gina@example.com")
    response = await api.get("/account")
    html = await response.text()
    assert 'id="linked-accounts"' in html
    assert 'action="/account/oauth/google/link"' in html
    # The "Link Google" form redirects to the provider, which the page's policy must allow.
    policy = response.headers["Content-Security-Policy"]
    assert f"form-action 'self' {oidc.url}" in policy

    started = await api.client.post(
        "/account/oauth/google/link", data={"csrf_token": api.csrf}, allow_redirects=False
    )
    assert started.status == 303
    assert started.headers["Location"].startswith(f"{oidc.url}/authorize?")
    page = await api.client.session.get(started.headers["Location"], allow_redirects=False)
    assert (await follow(api, page.headers["Location"])).status == 303

    html = await (await api.get("/account")).text()
    assert "Your Google account is linked" in html
    assert 'action="/account/oauth/google/link"' not in html  # already linked
    identity_id = re.search(r"/account/oauth/identities/(\w+)/unlink", html).group(1)  # type: ignore[union-attr]
    unlinked = await api.client.post(
        f"/account/oauth/identities/{identity_id}/unlink",
        data={"csrf_token": api.csrf},
        allow_redirects=False,
    )
    assert unlinked.status == 303
    assert await api.get_json("/api/auth/oauth/identities") == []
    # Without the CSRF token the form is refused.
    forged = await api.client.post("/account/oauth/google/link", allow_redirects=False)
    assert forged.status == 403


async def test_sign_ins_links_and_unlinks_are_in_the_security_log(api: ApiClient, oidc):
    assert (await sign_in(api)).status == 303
    await use_page_csrf(api)
    assert (await link(api, "facebook")).status == 303
    [google, _] = await api.get_json("/api/auth/oauth/identities")
    assert (await api.delete(f"/api/auth/oauth/identities/{google['id']}")).status == 204
    oidc.fake.id_token_overrides = {"aud": "someone-else"}
    await sign_in(api)  # refused, and recorded

    events = (await api.get_json("/api/me/security-events"))["events"]
    seen = [
        (e["action"], e["details"].get("method") or e["details"].get("provider"))
        for e in reversed(events)
    ]
    assert seen[:4] == [
        ("auth.register", "google"),
        ("auth.login", "google"),
        ("oauth.linked", "facebook"),
        ("oauth.unlinked", "google"),
    ]
    # The refusal has no account to belong to; administrators see it in the audit log.
    failures = await api.get_json("/api/admin/audit?action=auth.login_failed")
    [failure] = failures["entries"]
    assert failure["details"] == {"method": "google", "reason": "oauth_invalid_token"}
