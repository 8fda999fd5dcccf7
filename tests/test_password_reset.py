"""Passwords: reset by a mailed link, change with the current one, the rules a new one must meet,
and argon2 parameters upgraded on login."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from sqlalchemy import select, update
from yarl import URL

from multinotes.identity import passwords
from multinotes.keys import DB
from multinotes.logs import configure_logging
from multinotes.models import User, UserToken
from multinotes.testing import DEFAULT_PASSWORD, ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, html_of, link_in, text_of, token_in

# Production mode mails through a real local SMTP server, sent by an in-process task worker.
smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

NEW_PASSWORD = "a brand new passphrase 42"
RESET_SUBJECT = "Reset your MultinotesAI password"


async def reset_token(api: ApiClient, mailbox: Mailbox, email: str, count: int = 1) -> str:
    response = await api.post("/api/auth/password/forgot", {"email": email})
    assert response.status == 202, await response.text()
    mail = await mailbox.wait_for(email, count=count, subject=RESET_SUBJECT)
    return token_in(mail, "/password/reset")


async def backdate_tokens(api: ApiClient, **age: float) -> None:
    async with api.app[DB].transaction() as session:
        for token in await session.scalars(select(UserToken)):
            token.created_at -= timedelta(**age)
            token.expires_at -= timedelta(**age)


async def test_forgot_answers_the_same_whether_or_not_the_account_exists(
    api: ApiClient, mailbox: Mailbox
):
    await api.register("kim@example.com", name="Kim")
    answers = []
    for address in ("kim@example.com", "nobody@example.com"):
        response = await api.post("/api/auth/password/forgot", {"email": address})
        body = await response.json()
        answers.append((response.status, body["message"].replace(address, "<email>")))
    assert answers[0] == answers[1] and answers[0][0] == 202

    mail = await mailbox.wait_for("kim@example.com", subject=RESET_SUBJECT)
    assert "Hi Kim" in text_of(mail) and "1 hour" in text_of(mail)
    link = link_in(mail, "/password/reset?token=")
    assert link in html_of(mail).replace("&amp;", "&")
    await mailbox.settle()
    assert mailbox.to("nobody@example.com") == []


async def test_a_reset_sets_the_password_and_logs_out_everywhere_without_logging_in(
    api: ApiClient, mailbox: Mailbox, make_client
):
    await api.register_and_login("lee@example.com")
    laptop = await make_client()
    await laptop.login("lee@example.com")
    key = await (await api.post("/api/keys", {"name": "script"})).json()

    token = await reset_token(await make_client(), mailbox, "lee@example.com")
    stranger = await make_client()
    response = await stranger.post(
        "/api/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
    )
    assert response.status == 200
    assert "Log in with your new password" in (await response.json())["message"]
    assert "mn_session" not in response.headers.get("Set-Cookie", "")  # no automatic login

    for client in (api, laptop):
        assert (await client.get("/api/me")).status == 401
    old = await stranger.post(
        "/api/auth/login", {"email": "lee@example.com", "password": DEFAULT_PASSWORD}
    )
    assert old.status == 401
    await stranger.login("lee@example.com", NEW_PASSWORD)
    # API keys are not sessions: they keep working (revoke them from the account page).
    keyed = await make_client()
    keyed.use_key(key["key"])
    assert (await keyed.get("/api/me")).status == 200


async def test_a_reset_link_works_once(api: ApiClient, mailbox: Mailbox):
    await api.register("max@example.com")
    token = await reset_token(api, mailbox, "max@example.com")
    first = await api.post("/api/auth/password/reset", {"token": token, "password": NEW_PASSWORD})
    assert first.status == 200
    again = await api.post(
        "/api/auth/password/reset", {"token": token, "password": "yet another passphrase"}
    )
    assert again.status == 422
    assert (await again.json())["error"]["code"] == "invalid_token"
    await api.login("max@example.com", NEW_PASSWORD)


async def test_a_reset_link_expires_after_one_hour(api: ApiClient, mailbox: Mailbox):
    await api.register("ned@example.com")
    token = await reset_token(api, mailbox, "ned@example.com")
    async with api.app[DB].read() as session:
        record = await session.scalar(select(UserToken).where(UserToken.purpose != "verify_email"))
    assert record is not None
    assert record.expires_at - record.created_at == timedelta(hours=1)
    await backdate_tokens(api, minutes=61)
    response = await api.post(
        "/api/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
    )
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_token"


async def test_a_new_reset_link_replaces_the_previous_one(api: ApiClient, mailbox: Mailbox):
    await api.register("oli@example.com")
    first = await reset_token(api, mailbox, "oli@example.com")
    await backdate_tokens(api, minutes=2)  # past the one-mail-a-minute cooldown
    second = await reset_token(api, mailbox, "oli@example.com", count=2)
    stale = await api.post("/api/auth/password/reset", {"token": first, "password": NEW_PASSWORD})
    assert stale.status == 422
    fresh = await api.post("/api/auth/password/reset", {"token": second, "password": NEW_PASSWORD})
    assert fresh.status == 200


async def test_asking_again_within_a_minute_sends_no_second_mail(api: ApiClient, mailbox: Mailbox):
    await api.register("pam@example.com")
    await reset_token(api, mailbox, "pam@example.com")
    again = await api.post("/api/auth/password/forgot", {"email": "pam@example.com"})
    assert again.status == 202
    await mailbox.settle()
    assert len(mailbox.to("pam@example.com", RESET_SUBJECT)) == 1


async def test_a_refused_password_does_not_use_up_the_link(api: ApiClient, mailbox: Mailbox):
    await api.register("quinn@example.com")
    token = await reset_token(api, mailbox, "quinn@example.com")
    for weak in ("short", "Password123", "quinn-is-the-best"):
        response = await api.post("/api/auth/password/reset", {"token": token, "password": weak})
        assert response.status == 422
        assert "password" in (await response.json())["error"]["fields"]
    ok = await api.post("/api/auth/password/reset", {"token": token, "password": NEW_PASSWORD})
    assert ok.status == 200


async def test_a_blocked_account_gets_no_reset_mail_and_its_links_stop_working(
    api: ApiClient, mailbox: Mailbox
):
    await api.register("rex@example.com")
    token = await reset_token(api, mailbox, "rex@example.com")
    async with api.app[DB].transaction() as session:
        await session.execute(update(User).values(is_active=False))
    await backdate_tokens(api, minutes=2)
    assert (await api.post("/api/auth/password/forgot", {"email": "rex@example.com"})).status == 202
    await mailbox.settle()
    assert len(mailbox.to("rex@example.com", RESET_SUBJECT)) == 1
    response = await api.post(
        "/api/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
    )
    assert response.status == 422


async def test_a_reset_also_verifies_the_address(api: ApiClient, mailbox: Mailbox):
    await api.register("sue@example.com")
    token = await reset_token(api, mailbox, "sue@example.com")
    await api.post("/api/auth/password/reset", {"token": token, "password": NEW_PASSWORD})
    assert (await api.login("sue@example.com", NEW_PASSWORD))["email_verified"] is True


# -- password rules -----------------------------------------------------------------------------


async def test_common_passwords_are_refused_whatever_their_case(api: ApiClient):
    for common in ("qwertyuiop", "BasketBall", "PASSWORD12", "1q2w3e4r5t"):
        response = await api.post(
            "/api/auth/register", {"email": "tom@example.com", "password": common, "name": "T"}
        )
        assert response.status == 422, common
        assert "common" in (await response.json())["error"]["fields"]["password"]


def test_the_common_password_list_ships_with_the_package():
    common = passwords.common_passwords()
    assert len(common) > 10_000
    assert {"password", "123456", "iloveyou"} <= common
    assert passwords.password_problem(DEFAULT_PASSWORD) is None


# -- change -------------------------------------------------------------------------------------


async def test_changing_the_password_needs_the_current_one_and_logs_out_other_sessions(
    api: ApiClient, make_client
):
    await api.register_and_login("uma@example.com")
    phone = await make_client()
    await phone.login("uma@example.com")

    wrong = await api.post(
        "/api/auth/password/change",
        {"current_password": "not it at all", "new_password": NEW_PASSWORD},
    )
    assert wrong.status == 422
    error = (await wrong.json())["error"]
    assert error["code"] == "wrong_password" and "current_password" in error["fields"]
    weak = await api.post(
        "/api/auth/password/change",
        {"current_password": DEFAULT_PASSWORD, "new_password": "iloveyou12"},
    )
    assert weak.status == 422
    assert "new_password" in (await weak.json())["error"]["fields"]
    assert (await phone.get("/api/me")).status == 200  # nothing changed yet

    changed = await api.post(
        "/api/auth/password/change",
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status == 200
    assert (await changed.json())["sessions_revoked"] == 1
    assert (await api.get("/api/me")).status == 200  # this session stays
    assert (await phone.get("/api/me")).status == 401
    await phone.login("uma@example.com", NEW_PASSWORD)


async def test_changing_the_password_needs_a_login(api: ApiClient):
    response = await api.post(
        "/api/auth/password/change",
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status == 401


async def test_the_account_page_changes_the_password(api: ApiClient):
    await api.register_and_login("val@example.com")
    form = {
        "csrf_token": api.csrf,
        "current_password": "wrong wrong wrong",
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    refused = await api.client.post("/account/password", data=form, allow_redirects=False)
    assert refused.status == 422
    page = await refused.text()
    assert 'id="current-password-error"' in page and "not your current password" in page

    form["current_password"] = DEFAULT_PASSWORD
    form["new_password_confirm"] = "something else entirely"
    differ = await api.client.post("/account/password", data=form, allow_redirects=False)
    assert differ.status == 422
    assert 'id="new-password-confirm-error"' in await differ.text()

    form["new_password_confirm"] = NEW_PASSWORD
    done = await api.client.post("/account/password", data=form, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == "/account#security"
    await api.login("val@example.com", NEW_PASSWORD)


# -- argon2 parameters --------------------------------------------------------------------------


async def test_login_rehashes_a_password_when_the_argon2_parameters_change(
    api: ApiClient, monkeypatch
):
    await api.register("wes@example.com")
    async with api.app[DB].read() as session:
        before = await session.scalar(select(User.password_hash))
    assert before is not None and "m=8,t=1" in before  # the suite's cheap cost

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=2, memory_cost=32768))
    await api.login("wes@example.com")
    async with api.app[DB].read() as session:
        after = await session.scalar(select(User.password_hash))
    assert after is not None and "m=32768,t=2" in after and after != before
    await api.login("wes@example.com")  # the new hash verifies


# -- pages --------------------------------------------------------------------------------------


async def test_the_forgot_and_reset_pages_work_without_javascript(
    api: ApiClient, mailbox: Mailbox, make_client
):
    await api.register("xia@example.com")
    browser = await make_client()
    login = await (await browser.get("/login")).text()
    assert 'href="/password/forgot"' in login

    sent = await browser.client.post("/password/forgot", data={"email": "xia@example.com"})
    assert sent.status == 200
    assert "If an account uses xia@example.com" in await sent.text()
    mail = await mailbox.wait_for("xia@example.com", subject=RESET_SUBJECT)
    link = link_in(mail, "/password/reset?token=")

    form_page = await browser.client.get(URL(link).path_qs)
    assert form_page.status == 200
    html = await form_page.text()
    assert 'name="token"' in html and '<meta name="referrer" content="same-origin">' in html
    token = URL(link).query["token"]

    mismatch = await browser.client.post(
        "/password/reset",
        data={"token": token, "password": NEW_PASSWORD, "password_confirm": "other"},
    )
    assert mismatch.status == 422
    done = await browser.client.post(
        "/password/reset",
        data={"token": token, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
        allow_redirects=False,
    )
    assert done.status == 303 and done.headers["Location"] == "/login"
    used = await browser.client.get(URL(link).path_qs)
    assert used.status == 400 and "does not work" in await used.text()
    await browser.login("xia@example.com", NEW_PASSWORD)


async def test_the_forgot_page_shows_field_errors(api: ApiClient):
    response = await api.client.post("/password/forgot", data={"email": "not-an-address"})
    assert response.status == 422
    assert 'id="email-error"' in await response.text()


# -- secrets stay out of the logs ---------------------------------------------------------------


async def test_no_token_or_password_reaches_the_logs(
    api: ApiClient, mailbox: Mailbox, settings, capfd
):
    configure_logging("DEBUG", settings.log_format)  # the most talkative the app can be
    try:
        await api.register_and_login("yan@example.com")
        token = await reset_token(api, mailbox, "yan@example.com")
        await api.post("/api/auth/password/reset", {"token": token, "password": NEW_PASSWORD})
        await api.login("yan@example.com", NEW_PASSWORD)
    finally:
        configure_logging(settings.log_level, settings.log_format)
    logs = capfd.readouterr().err
    assert "mail_sent" in logs and "password_reset" in logs  # the logs were captured
    for secret in (token, NEW_PASSWORD, DEFAULT_PASSWORD):
        assert secret not in logs


# -- housekeeping -------------------------------------------------------------------------------


async def test_old_links_are_purged_a_day_after_they_expired_or_were_used(api: ApiClient):
    from multinotes.core_tasks import purge_user_tokens
    from multinotes.db import utcnow

    await api.register("zoe@example.com")
    old, later = utcnow() - timedelta(days=2), utcnow() + timedelta(hours=1)
    rows = {"expired": (old, None), "used": (later, old), "live": (later, None)}
    async with api.app[DB].transaction() as session:
        user_id = await session.scalar(select(User.id))
        assert user_id is not None
        for name, (expires, used) in rows.items():
            session.add(
                UserToken(
                    user_id=user_id,
                    purpose="reset_password",
                    token_hash=name.ljust(64, "0"),
                    email="zoe@example.com",
                    expires_at=expires,
                    used_at=used,
                    created_at=old,
                )
            )
    assert await purge_user_tokens(api.app) == 2
    async with api.app[DB].read() as session:
        left = set(await session.scalars(select(UserToken.token_hash)))
    assert "live".ljust(64, "0") in left
    assert not {"expired".ljust(64, "0"), "used".ljust(64, "0")} & left
