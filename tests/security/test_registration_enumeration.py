"""Registration does not tell which addresses have accounts: signing up with a taken address
is answered exactly like a new one (status, body shape, page), creates nothing, and mails the
address's owner that someone tried to sign up with it (with links to log in or reset the
password) instead of a verification link."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from multinotes.audit import AuditEntry
from multinotes.keys import DB
from multinotes.models import User
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, link_in

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

ATTEMPT_SUBJECT = "Someone tried to sign up with your address"
PASSWORD = "a different long passphrase 9"


async def users(api: ApiClient) -> int:
    async with api.app[DB].read() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def shape(body: dict[str, Any], email: str) -> dict[str, Any]:
    """The answer with what necessarily differs (the new id, the address asked for) masked."""
    return {**body, "id": len(body["id"]), "email": body["email"].replace(email, "<email>")}


async def test_the_api_answers_a_taken_address_like_a_new_one(
    api: ApiClient, mailbox: Mailbox
) -> None:
    await api.register("owner@example.com", name="Olive Owner")  # the install's admin
    await mailbox.wait_for("owner@example.com", subject="Verify")
    answers = []
    for email in ("newcomer@example.com", "owner@example.com"):
        response = await api.post(
            "/api/auth/register", {"email": email, "password": PASSWORD, "name": "Mallory"}
        )
        answers.append((response.status, shape(await response.json(), email)))
    assert answers[0] == answers[1], answers
    assert answers[0][0] == 201 and answers[0][1]["role"] == "user"
    assert await users(api) == 2  # the owner and the newcomer, no second "owner"

    # The owner is told, with links to log in or reset the password; no verification link.
    mail = await mailbox.wait_for("owner@example.com", subject=ATTEMPT_SUBJECT)
    assert "/login" in link_in(mail, "/login")
    assert "/password/forgot" in link_in(mail, "/password/forgot")
    await mailbox.settle()
    assert len(mailbox.to("owner@example.com", "Verify")) == 1
    # The attempt is in the audit log, against the owner's account, without the address.
    async with api.app[DB].read() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "auth.register_existing")
        )
    assert entry is not None and entry.actor_id is None
    assert "owner@example.com" not in str(entry.details)
    # The taken address still logs in with its own password only.
    assert (
        await api.post("/api/auth/login", {"email": "owner@example.com", "password": PASSWORD})
    ).status == 401


async def test_the_register_page_answers_a_taken_address_like_a_new_one(
    api: ApiClient, make_client: Any, mailbox: Mailbox
) -> None:
    await api.register("owner@example.com", name="Olive Owner")
    answers = []
    for email in ("newcomer@example.com", "owner@example.com"):
        browser = await make_client()
        page = await browser.client.get("/register")  # the form's CSRF cookie, as a browser
        assert page.status == 200
        response = await browser.client.post(
            "/register",
            data={"email": email, "password": PASSWORD, "name": "Mallory"},
            allow_redirects=False,
        )
        cookies = sorted(c.key for c in browser.client.session.cookie_jar)
        location = response.headers.get("Location", "")
        answers.append((response.status, location, cookies))
    assert answers[0] == answers[1], answers
    assert answers[0][0] == 303 and answers[0][1].startswith("/login")
    await mailbox.wait_for("owner@example.com", subject=ATTEMPT_SUBJECT)
    # The newcomer's account exists and logs in as usual.
    newcomer = await make_client()
    await newcomer.login("newcomer@example.com", PASSWORD)
