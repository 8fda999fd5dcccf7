"""Email verification: a single-use, expiring link mailed on sign-up; resend; unverified users
may log in but not generate where the install requires verification."""

from __future__ import annotations

import hashlib
import types
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from yarl import URL

from multinotes import hookimpl
from multinotes.app import create_app
from multinotes.db import utcnow
from multinotes.identity import service as identity
from multinotes.identity.actor import require_verified
from multinotes.keys import DB
from multinotes.models import AuthSession, User, UserToken
from multinotes.testing import ApiClient, app_client, embedded_settings
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, html_of, link_in, text_of, token_in

# Production mode mails through a real local SMTP server, sent by an in-process task worker.
smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


async def backdate_tokens(api: ApiClient, email: str, **age: float) -> None:
    """Make the account's links older (past the resend cooldown, or expired)."""
    async with api.app[DB].transaction() as session:
        user_id = await session.scalar(select(User.id).where(User.email == email))
        tokens = list(await session.scalars(select(UserToken).where(UserToken.user_id == user_id)))
        for token in tokens:
            token.created_at -= timedelta(**age)
            token.expires_at -= timedelta(**age)


async def test_sign_up_mails_a_link_that_verifies_the_address(api: ApiClient, mailbox: Mailbox):
    user = await api.register_and_login("ada@example.com", name="Ada")
    assert user["email_verified"] is False
    mail = await mailbox.wait_for("ada@example.com")
    assert "Verify your email address" in mail["Subject"]
    assert mail["Message-ID"] and mail["Date"] and mail["From"]
    assert "Hi Ada" in text_of(mail) and "48 hours" in text_of(mail)
    link = link_in(mail, "/verify?token=")
    assert link in html_of(mail).replace("&amp;", "&")  # the HTML part carries the same link
    assert link.startswith(str(api.client.make_url("/verify")))

    response = await api.post("/api/auth/verify", {"token": token_in(mail, "/verify")})
    assert response.status == 200
    assert await response.json() == {"email": "ada@example.com", "email_verified": True}
    assert (await api.get_json("/api/me"))["email_verified"] is True


async def test_a_link_works_once_and_opening_it_again_still_says_verified(
    api: ApiClient, mailbox: Mailbox, make_client
):
    await api.register("bo@example.com")
    token = token_in(await mailbox.wait_for("bo@example.com"), "/verify")
    anonymous = await make_client()  # the link works without being logged in
    first = await anonymous.post("/api/auth/verify", {"token": token})
    again = await anonymous.post("/api/auth/verify", {"token": token})
    assert first.status == again.status == 200
    async with api.app[DB].read() as session:
        record = await session.scalar(select(UserToken))
    assert record is not None and record.used_at is not None


async def test_unknown_tampered_and_expired_links_are_refused(api: ApiClient, mailbox: Mailbox):
    await api.register("cy@example.com")
    token = token_in(await mailbox.wait_for("cy@example.com"), "/verify")
    for bad in ("nope", token[:-2] + "xx", ""):
        response = await api.post("/api/auth/verify", {"token": bad})
        assert response.status == 422
        body = await response.json()
        assert body["error"]["code"] in ("invalid_token", "invalid")
        assert "token" in body["error"]["fields"]

    await backdate_tokens(api, "cy@example.com", hours=49)
    expired = await api.post("/api/auth/verify", {"token": token})
    assert expired.status == 422
    error = (await expired.json())["error"]
    assert error["code"] == "invalid_token" and "expired" in error["message"]
    await api.login("cy@example.com")
    assert (await api.get_json("/api/me"))["email_verified"] is False


async def test_only_a_hash_of_the_token_is_stored(api: ApiClient, mailbox: Mailbox):
    await api.register("dee@example.com")
    token = token_in(await mailbox.wait_for("dee@example.com"), "/verify")
    async with api.app[DB].read() as session:
        record = await session.scalar(select(UserToken))
    assert record is not None
    assert record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(vars(record))
    assert record.purpose == "verify_email" and record.email == "dee@example.com"
    assert timedelta(hours=47) < record.expires_at - record.created_at <= timedelta(hours=48)


async def test_a_link_for_an_address_the_account_no_longer_has_is_refused(
    api: ApiClient, mailbox: Mailbox
):
    await api.register("old@example.com")
    token = token_in(await mailbox.wait_for("old@example.com"), "/verify")
    async with api.app[DB].transaction() as session:
        await session.execute(
            update(User).where(User.email == "old@example.com").values(email="new@example.com")
        )
    response = await api.post("/api/auth/verify", {"token": token})
    assert response.status == 422


async def test_resend_mails_a_new_link_at_most_once_a_minute(api: ApiClient, mailbox: Mailbox):
    await api.register_and_login("eve@example.com")
    first = await mailbox.wait_for("eve@example.com")

    # Right after sign-up: answered, but no second mail (cooldown).
    response = await api.post("/api/auth/resend-verification")
    assert response.status == 202
    assert "eve@example.com" in (await response.json())["message"]
    await mailbox.settle()
    assert len(mailbox.to("eve@example.com")) == 1

    await backdate_tokens(api, "eve@example.com", minutes=2)
    assert (await api.post("/api/auth/resend-verification")).status == 202
    second = await mailbox.wait_for("eve@example.com", count=2)
    assert token_in(first, "/verify") != token_in(second, "/verify")
    # Both links stay valid until one is used: people click the first mail after the second.
    verified = await api.post("/api/auth/verify", {"token": token_in(first, "/verify")})
    assert verified.status == 200

    done = await api.post("/api/auth/resend-verification")
    assert done.status == 200
    assert (await done.json())["message"] == "Your email address is already verified."


async def test_anonymous_resend_reveals_nothing_about_accounts(
    api: ApiClient, mailbox: Mailbox, make_client
):
    await api.register("known@example.com")
    await mailbox.wait_for("known@example.com")
    await backdate_tokens(api, "known@example.com", minutes=2)
    stranger = await make_client()
    answers = []
    for address in ("known@example.com", "unknown@example.com"):
        response = await stranger.post("/api/auth/resend-verification", {"email": address})
        body = await response.json()
        answers.append((response.status, body["message"].replace(address, "<email>")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 202
    await mailbox.wait_for("known@example.com", count=2)
    await mailbox.settle()
    assert mailbox.to("unknown@example.com") == []

    missing = await stranger.post("/api/auth/resend-verification", {})
    assert missing.status == 422
    assert "email" in (await missing.json())["error"]["fields"]


# -- the gate: unverified users cannot generate where verification is required ------------------


async def _generate(request: web.Request) -> web.Response:
    actor = require_verified(request)
    return web.json_response({"generated_for": actor.email})


gate_plugin = types.ModuleType("gate_plugin")


@hookimpl
def _register_routes(register: Any) -> None:
    register("POST", "/api/plugins/gate/generate", _generate, access="user")


gate_plugin.register_routes = _register_routes  # type: ignore[attr-defined]


async def test_unverified_users_log_in_but_cannot_generate_when_verification_is_required(
    make_settings,
):
    app = create_app(
        make_settings(email_verification_required=True), plugins=[("gate", gate_plugin)]
    )
    async with app_client(app) as api:
        await api.register_and_login("fay@example.com")
        refused = await api.post("/api/plugins/gate/generate")
        assert refused.status == 403
        error = (await refused.json())["error"]
        assert error["code"] == "email_unverified"
        assert "fay@example.com" in error["message"]
        assert "/api/auth/resend-verification" in error["message"]

        async with app[DB].transaction() as session:
            await session.execute(update(User).values(email_verified_at=utcnow()))
        allowed = await api.post("/api/plugins/gate/generate")
        assert allowed.status == 200


async def test_unverified_users_can_generate_when_verification_is_not_required(make_settings):
    app = create_app(
        make_settings(email_verification_required=False), plugins=[("gate", gate_plugin)]
    )
    async with app_client(app) as api:
        await api.register_and_login("gus@example.com")
        assert (await api.post("/api/plugins/gate/generate")).status == 200


def test_verification_is_required_in_production_and_not_in_embedded_mode_by_default(tmp_path):
    assert embedded_settings(tmp_path).requires_email_verification is False
    production = embedded_settings(tmp_path, mode="production")
    assert production.requires_email_verification is True
    assert embedded_settings(tmp_path, email_verification_required=True).requires_email_verification
    assert not embedded_settings(
        tmp_path, mode="production", email_verification_required=False
    ).requires_email_verification


async def test_accounts_made_by_admin_create_are_verified(api: ApiClient):
    user = await identity.create_admin(
        api.app[DB], email="Root@Example.com", password="correct horse battery staple", name="R"
    )
    assert user.role == "admin" and user.email_verified_at is not None
    me = await api.login("root@example.com")
    assert me["email_verified"] is True


async def test_promoting_an_account_to_admin_ends_its_sessions(api: ApiClient, make_client):
    await api.register_admin()
    pat = await make_client()
    await pat.register_and_login("pat@example.com")
    await identity.create_admin(api.app[DB], email="pat@example.com", password="", name="")
    assert (await pat.get("/api/me")).status == 401  # the role changed: log in again
    assert (await api.get("/api/me")).status == 200  # nobody else is affected
    me = await pat.login("pat@example.com")
    assert me["role"] == "admin" and me["email_verified"] is True
    async with api.app[DB].read() as session:
        live = await session.scalars(select(AuthSession).where(AuthSession.revoked_at.is_(None)))
        assert len(list(live)) == 2  # the first admin's and pat's new one


# -- pages --------------------------------------------------------------------------------------


async def test_the_verify_page_verifies_and_shows_the_result(api: ApiClient, mailbox: Mailbox):
    await api.register("hal@example.com")
    link = link_in(await mailbox.wait_for("hal@example.com"), "/verify?token=")
    page = await api.client.get(URL(link).path_qs)
    assert page.status == 200
    text = await page.text()
    assert "Your email address hal@example.com is verified." in text
    assert '<meta name="referrer" content="same-origin">' in text  # the URL holds the token

    bad = await api.client.get("/verify?token=made-up")
    assert bad.status == 400
    assert "does not work" in await bad.text()


async def test_unverified_users_see_a_banner_with_a_resend_button(make_settings):
    app = create_app(make_settings(email_verification_required=True))
    async with app_client(app) as api:
        await api.register_and_login("ida@example.com")
        home = await (await api.get("/")).text()
        assert "Verify your email address." in home
        assert 'action="/account/verification/resend"' in home

        response = await api.client.post(
            "/account/verification/resend",
            data={"csrf_token": api.csrf, "next": "/account"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert response.headers["Location"] == "/account"

        async with app[DB].transaction() as session:
            await session.execute(update(User).values(email_verified_at=utcnow()))
        assert "Verify your email address." not in await (await api.get("/")).text()


async def test_no_banner_where_verification_is_not_required(make_settings):
    app = create_app(make_settings(email_verification_required=False))
    async with app_client(app) as api:
        await api.register_and_login("jo@example.com")
        assert "Verify your email address." not in await (await api.get("/")).text()


async def test_the_mail_says_what_verifying_unlocks_as_this_install_requires_it(
    api: ApiClient, mailbox: Mailbox, settings: Any
):
    """Embedded mode lets an unverified account generate: its mail must not say otherwise."""
    await api.register_and_login("vera@example.com", name="Vera")
    mail = await mailbox.wait_for("vera@example.com")
    words = " ".join(text_of(mail).split())
    html = " ".join(html_of(mail).split())
    if settings.requires_email_verification:
        assert "not generate answers" in words and "not generate answers" in html
    else:
        assert "generate" not in words and "generate" not in html
        assert "recover your account" in words and "recover your account" in html
