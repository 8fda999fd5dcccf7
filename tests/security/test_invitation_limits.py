"""Sharing is not a mail relay. Sharing with an address that has no account mails a stranger, so an
account may send only so many invitations a day (fewer while it is on the free trial, having
never bought credits, and fewer still while its own address is not verified); subjects carry no
text the sharer chose, and the sharer's name and the title lose their links in the body; every
invitation is in the audit log for abuse review."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from multinotes.audit import AuditEntry
from multinotes.keys import DB
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from tests.fakes.smtp_server import FakeSMTP
from tests.support import mail as mail_fixtures
from tests.support import people
from tests.support.mail import Mailbox, text_of

smtp_server = mail_fixtures.smtp_server
mailbox = mail_fixtures.mailbox
bob = people.bob

SPAMMY = "Win a FREE prize at http://spam.example"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mode: str, smtp_server: FakeSMTP) -> Settings:
    values: dict[str, Any] = {
        "invitations_per_day": 3,
        "invitations_per_day_trial": 2,
        "invitations_per_day_unverified": 1,
        "email_verification_required": False,
    }
    if mode == "production":
        values.update(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    return make_settings(**values)


async def a_note(api: ApiClient, title: str = "Read me") -> str:
    response = await api.post("/api/documents", {"title": title, "content": "x"})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def share(api: ApiClient, note: str, email: str) -> Any:
    return await api.post(
        "/api/shares", {"object_type": "document", "object_id": note, "email": email}
    )


async def buy_credits(api: ApiClient) -> None:
    """What a paid order leaves in the ledger (billing's tests pay through the backends)."""
    assert api.user is not None
    await wallet.ensure_wallet(api.app[DB], api.user["id"])
    async with api.app[DB].transaction() as session:
        await wallet.credit_in(
            session,
            api.user["id"],
            1000,
            kind="purchase",
            reason="Bought",
            reference=f"order:{api.user['id']}",
        )


async def invitations(api: ApiClient) -> list[AuditEntry]:
    async with api.app[DB].read() as session:
        query = select(AuditEntry).where(AuditEntry.action == "share.invitation")
        return list(await session.scalars(query))


async def test_a_verified_account_invites_a_limited_number_a_day(
    api: ApiClient, bob: ApiClient, mailbox: Mailbox
) -> None:
    await api.register_and_login("ann@example.com", name="Ann Owner")
    await api.mark_verified()
    await buy_credits(api)
    note = await a_note(api)
    for index in range(3):
        response = await share(api, note, f"stranger{index}@example.com")
        assert response.status == 201, await response.text()
    refused = await share(api, note, "stranger3@example.com")
    body = await refused.json()
    assert refused.status == 429, body
    assert body["error"]["code"] == "invitation_limit"
    assert "Retry-After" in refused.headers
    # People with an account are not invitations: still shared with, and notified.
    assert (await share(api, note, "bob@example.com")).status == 201
    # Sharing again with someone already invited mails no one and counts nothing.
    assert (await share(api, note, "stranger0@example.com")).status == 201

    await mailbox.settle()
    assert mailbox.to("stranger3@example.com") == []
    entries = await invitations(api)
    assert len(entries) == 3
    assert api.user is not None
    assert {e.actor_id for e in entries} == {api.user["id"]}
    assert all(e.target_type == "share" and e.ip for e in entries)
    assert all("stranger" not in str(e.details) for e in entries)  # masked, fingerprinted
    assert {e.details["object_id"] for e in entries if e.details} == {note}


async def test_an_account_on_the_free_trial_invites_fewer_until_it_buys_credits(
    api: ApiClient, mailbox: Mailbox
) -> None:
    await api.register_and_login("trial@example.com", name="Trial User")
    await api.mark_verified()
    note = await a_note(api)
    for index in range(2):
        assert (await share(api, note, f"stranger{index}@example.com")).status == 201
    refused = await share(api, note, "stranger2@example.com")
    body = await refused.json()
    assert refused.status == 429, body
    assert body["error"]["code"] == "invitation_limit"
    assert "Buying credits raises the limit" in body["error"]["message"]
    await mailbox.settle()
    assert mailbox.to("stranger2@example.com") == []

    await buy_credits(api)
    assert (await share(api, note, "stranger2@example.com")).status == 201
    assert (await share(api, note, "stranger3@example.com")).status == 429
    assert len(await invitations(api)) == 3


async def test_an_unverified_account_invites_fewer(api: ApiClient, mailbox: Mailbox) -> None:
    await api.register_and_login("new@example.com", name="Newcomer")
    note = await a_note(api)
    assert (await share(api, note, "one@example.com")).status == 201
    refused = await share(api, note, "two@example.com")
    assert refused.status == 429
    assert "Verify your address" in (await refused.json())["error"]["message"]


async def test_invitations_carry_no_sharer_chosen_text_in_subjects_nor_links(
    api: ApiClient, mailbox: Mailbox
) -> None:
    await api.register_and_login("ann@example.com", name=SPAMMY)
    await api.mark_verified()
    note = await a_note(api, "Cheap pills at www.pills.example today")
    assert (await share(api, note, "victim@example.com")).status == 201
    mail = await mailbox.wait_for("victim@example.com")
    assert mail["Subject"] == "A note was shared with you on MultinotesAI"
    text = text_of(mail)
    assert "spam.example" not in mail.as_string() and "pills.example" not in text
    assert "Win a FREE prize at [link removed]" in text
