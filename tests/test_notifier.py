"""Notifications react to events: sharing and comments only publish ``share.created``,
``comment.created`` and ``comment.edited``; the notifier (``multinotes.sharing.notifier``)
subscribes to them and writes the notification and queues the mail after the change committed,
so a notifier that fails costs the notification and never the share or the comment, and every
kind of shared object reaches the recipient the same way. An invitation's audit record follows
``share.created`` the same way (``multinotes.sharing.audit_trail``)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select
from structlog.testing import capture_logs

from multinotes.audit import AuditEntry
from multinotes.domain_events import EVENTS, DomainEvent
from multinotes.keys import DB
from multinotes.sharing import notifier
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support import people
from tests.support.mail import Mailbox, text_of

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox
ann = people.ann
bob = people.bob


def record(app: web.Application) -> list[DomainEvent]:
    seen: list[DomainEvent] = []

    async def remember(app: web.Application, event: DomainEvent) -> None:
        seen.append(event)

    app[EVENTS].subscribe_all(remember)
    return seen


async def posted(api: ApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, body)
    data: dict[str, Any] = await response.json()
    assert response.status == 201, data
    return data


async def notices(api: ApiClient, kind: str) -> list[dict[str, Any]]:
    page = await api.get_json("/api/notifications")
    return [n for n in page["notifications"] if n["kind"] == kind]


async def test_a_file_share_reaches_its_recipient_through_share_created(
    ann: ApiClient, bob: ApiClient, mailbox: Mailbox
):
    form = aiohttp.FormData()
    form.add_field("file", b"hello", filename="hello.txt", content_type="text/plain")
    file_id = (await (await ann.post("/api/files", data=form)).json())["id"]
    seen = record(ann.app)

    share = await posted(
        ann,
        "/api/shares",
        {"object_type": "file", "object_id": file_id, "email": bob.user["email"]},
    )

    # Not a note: no note.shared, but share.created says what was shared and with whom.
    assert [e.name for e in seen] == ["share.created"]
    assert seen[0].user_id == ann.user["id"]
    assert seen[0].payload == {
        "share_id": share["id"],
        "object_type": "file",
        "object_id": file_id,
        "role": "viewer",
        "kind": "user",
        "recipient_id": bob.user["id"],
    }
    [notice] = await notices(bob, "share")
    assert notice["url"] == f"/shared/files/{file_id}" and notice["title"] == "hello.txt"
    await mailbox.wait_for(bob.user["email"], subject="shared with you")


async def test_a_failing_notifier_costs_the_notification_never_the_share(
    ann: ApiClient, bob: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    doc = await posted(ann, "/api/documents", {"title": "Plan", "content": "v1"})

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the notifier is down")

    monkeypatch.setattr(notifier, "notify", broken)
    with capture_logs() as logs:
        await posted(
            ann,
            "/api/shares",
            {"object_type": "document", "object_id": doc["id"], "email": bob.user["email"]},
        )
    # The share committed before the notifier ran: Bob reads the note, only the bell is silent.
    assert (await bob.get_json(f"/api/documents/{doc['id']}"))["title"] == "Plan"
    assert await notices(bob, "share") == []
    failed = [e for e in logs if e.get("event") == "event_subscriber_failed"]
    assert [e["event_name"] for e in failed] == ["share.created"]


async def test_an_edit_publishes_comment_edited_naming_only_the_newly_mentioned(
    ann: ApiClient, bob: ApiClient, make_client: Any, mailbox: Mailbox
):
    doc = await posted(ann, "/api/documents", {"title": "Roadmap", "content": "v1"})
    for email in (bob.user["email"], "cy@example.com"):
        await posted(
            ann,
            "/api/shares",
            {"object_type": "document", "object_id": doc["id"], "email": email},
        )
    cy = await people.person(make_client, "cy@example.com", "Cy Viewer")
    said = await posted(
        ann, f"/api/documents/{doc['id']}/comments", {"body": "@Bob Colleague have a look"}
    )
    seen = record(ann.app)

    response = await ann.patch(
        f"/api/comments/{said['id']}", {"body": "@Bob Colleague and @Cy Viewer, a look"}
    )
    assert response.status == 200, await response.text()

    assert [e.name for e in seen] == ["comment.edited"]
    assert seen[0].user_id == ann.user["id"]  # the note's owner
    assert seen[0].payload == {
        "comment_id": said["id"],
        "note_id": doc["id"],
        "author_id": ann.user["id"],
        "mentioned_ids": [cy.user["id"]],
    }
    [mention] = await notices(cy, "mention")
    assert mention["url"] == f"/notes/{doc['id']}#comment-{said['id']}"
    assert len(await notices(bob, "mention")) == 1  # from the comment itself, not the edit
    mail = await mailbox.wait_for("cy@example.com", subject="mentioned you")
    assert "a look" in text_of(mail)


async def test_an_invitation_links_to_the_address_the_request_came_to(
    ann: ApiClient, mailbox: Mailbox
):
    """The notifier is handed only the app, yet its mail links to this server as the request
    that shared reached it (no public_url is set here), like every other mail."""
    doc = await posted(ann, "/api/documents", {"title": "Welcome", "content": "v1"})
    await posted(
        ann,
        "/api/shares",
        {"object_type": "document", "object_id": doc["id"], "email": "new@example.com"},
    )
    invite = await mailbox.wait_for("new@example.com", subject="shared with you")
    base = str(ann.client.make_url("")).rstrip("/")
    assert re.findall(r"https?://[^\s\"<>]+/register", text_of(invite)) == [f"{base}/register"]


async def test_an_invitation_is_audited_from_share_created_with_the_request_it_came_from(
    ann: ApiClient, bob: ApiClient
):
    doc = await posted(ann, "/api/documents", {"title": "Welcome", "content": "v1"})
    invited = await posted(
        ann,
        "/api/shares",
        {"object_type": "document", "object_id": doc["id"], "email": "new@example.com"},
    )
    # A person with an account is notified, not invited: no record.
    await posted(
        ann,
        "/api/shares",
        {"object_type": "document", "object_id": doc["id"], "email": bob.user["email"]},
    )
    async with ann.app[DB].read() as session:
        query = select(AuditEntry).where(AuditEntry.action == "share.invitation")
        [entry] = list(await session.scalars(query))
    assert (entry.actor_id, entry.target_type, entry.target_id) == (
        ann.user["id"],
        "share",
        invited["id"],
    )
    assert entry.ip == "127.0.0.1" and entry.user_agent  # the sharing request's, not blank
    assert entry.details is not None
    assert entry.details["email"] == "n***@example.com" and entry.details["email_hash"]
    assert (entry.details["object_type"], entry.details["object_id"]) == ("document", doc["id"])
