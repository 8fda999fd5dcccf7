"""Notifications: the recipient of a share is told in the app and by mail (sent by a background
task, after the share is saved); the list is newest first with an unread count and a cursor;
notifications are marked read one by one or all at once; the bell shows the count; nobody sees or
changes anyone else's."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support import people
from tests.support.mail import Mailbox, html_of, text_of

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


ann = people.ann
eve = people.eve
person = people.person
bob = people.bob


async def note(api: ApiClient, title: str) -> str:
    response = await api.post("/api/documents", {"title": title, "content": "text"})
    return str((await response.json())["id"])


async def share_with_bob(ann: ApiClient, object_type: str, object_id: str, **extra: Any) -> None:
    response = await ann.post(
        "/api/shares",
        {"object_type": object_type, "object_id": object_id, "email": "bob@example.com", **extra},
    )
    assert response.status == 201, await response.text()


async def test_a_share_notifies_the_recipient_in_the_app_and_by_mail(
    ann: ApiClient, bob: ApiClient, mailbox: Mailbox
):
    doc = await note(ann, "Quarterly <plan>")
    await share_with_bob(ann, "document", doc, role="editor")

    page = await bob.get_json("/api/notifications")
    assert page["unread"] == 1 and page["next_cursor"] is None
    [notice] = page["notifications"]
    assert notice["kind"] == "share" and notice["read"] is False
    assert notice["actor"] == {"id": ann.user["id"], "name": "Ann Owner"}
    assert notice["title"] == "Quarterly <plan>"
    assert notice["object_type"] == "document" and notice["object_id"] == doc
    assert notice["url"] == f"/notes/{doc}"

    mail = await mailbox.wait_for("bob@example.com", subject="A note was shared with you")
    assert mail["Subject"] == "A note was shared with you on MultinotesAI"
    text = text_of(mail)
    assert 'the note "Quarterly <plan>" with you' in text and "as an editor" in text
    assert f"/notes/{doc}" in text and text.count("http") >= 1
    assert "Quarterly &lt;plan&gt;" in html_of(mail)  # the title is escaped in HTML
    # The sharer hears nothing about their own share.
    assert (await ann.get_json("/api/notifications"))["unread"] == 0
    assert mailbox.to("ann@example.com", "shared") == []


async def test_sharing_again_does_not_notify_twice(
    ann: ApiClient, bob: ApiClient, mailbox: Mailbox
):
    doc = await note(ann, "Once")
    await share_with_bob(ann, "document", doc)
    await share_with_bob(ann, "document", doc, role="editor")
    await mailbox.wait_for("bob@example.com")
    await mailbox.settle()
    assert len(mailbox.to("bob@example.com", "shared")) == 1
    assert (await bob.get_json("/api/notifications"))["unread"] == 1


async def test_the_list_is_newest_first_with_a_cursor_and_an_unread_filter(
    ann: ApiClient, bob: ApiClient
):
    titles = ["First", "Second", "Third"]
    for title in titles:
        await share_with_bob(ann, "document", await note(ann, title))
    first = await bob.get_json("/api/notifications?limit=2")
    assert [n["title"] for n in first["notifications"]] == ["Third", "Second"]
    assert first["unread"] == 3 and first["next_cursor"]
    rest = await bob.get_json(f"/api/notifications?limit=2&before={first['next_cursor']}")
    assert [n["title"] for n in rest["notifications"]] == ["First"]
    assert rest["next_cursor"] is None

    newest = first["notifications"][0]["id"]
    marked = await bob.post("/api/notifications/read", {"ids": [newest]})
    assert marked.status == 200 and await marked.json() == {"marked": 1, "unread": 2}
    unread = await bob.get_json("/api/notifications?unread=true")
    assert [n["title"] for n in unread["notifications"]] == ["Second", "First"]
    # Marking it again changes nothing.
    assert await (await bob.post("/api/notifications/read", {"ids": [newest]})).json() == {
        "marked": 0,
        "unread": 2,
    }
    everything = await bob.post("/api/notifications/read", {"all": True})
    assert await everything.json() == {"marked": 2, "unread": 0}
    assert all(n["read"] for n in (await bob.get_json("/api/notifications"))["notifications"])


async def test_nobody_reads_or_marks_anyone_elses_notifications(
    ann: ApiClient, bob: ApiClient, make_client: Any
):
    await share_with_bob(ann, "document", await note(ann, "Private"))
    notice = (await bob.get_json("/api/notifications"))["notifications"][0]["id"]
    eve = await person(make_client, "eve@example.com", "Eve")
    assert (await eve.get_json("/api/notifications"))["notifications"] == []
    marked = await eve.post("/api/notifications/read", {"ids": [notice]})
    assert await marked.json() == {"marked": 0, "unread": 0}
    assert (await bob.get_json("/api/notifications"))["unread"] == 1
    assert (await eve.get(f"/notifications/{notice}/open", allow_redirects=False)).status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, ""),
        ({"ids": ["a"], "all": True}, ""),
        ({"ids": []}, "ids"),
        ({"ids": ["not/an id"]}, ""),
        ({"all": True, "user_id": "x"}, "user_id"),
    ],
)
async def test_bad_read_requests_are_422(bob: ApiClient, body: dict[str, Any], field: str):
    response = await bob.post("/api/notifications/read", body)
    data = await response.json()
    assert response.status == 422, data
    if field:
        assert field in data["error"]["fields"]


async def test_bad_list_queries_are_422(bob: ApiClient):
    for query in ("limit=0", "limit=101", "before=../x", "unread=maybe"):
        assert (await bob.get(f"/api/notifications?{query}")).status == 422, query


async def test_the_page_checks_its_cursor_with_the_apis_query_model(bob: ApiClient):
    for path in ("/notifications?before=../x", "/api/notifications?before=../x"):
        response = await bob.get(path)
        assert response.status == 422, path
        assert "before" in await response.text(), path


async def test_the_bell_and_the_notifications_page(ann: ApiClient, bob: ApiClient):
    badge = await (await bob.get("/notifications/badge")).text()
    assert "notification-count" not in badge
    empty = await (await bob.get("/notifications")).text()
    assert "No notifications." in empty

    doc = await note(ann, "Agenda")
    await share_with_bob(ann, "document", doc)
    badge = await (await bob.get("/notifications/badge")).text()
    assert 'id="notification-count">1<' in badge
    listing = await (await bob.get("/notifications")).text()
    notice = (await bob.get_json("/api/notifications"))["notifications"][0]["id"]
    assert "<strong>Ann Owner</strong> shared “Agenda” with you" in listing
    assert f'href="/notifications/{notice}/open"' in listing

    opened = await bob.get(f"/notifications/{notice}/open", allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"] == f"/notes/{doc}"
    assert (await bob.get_json("/api/notifications"))["unread"] == 0

    await share_with_bob(ann, "document", await note(ann, "Another"))
    read_all = await bob.client.post(
        "/notifications/read", data={"csrf_token": bob.csrf}, allow_redirects=False
    )
    assert read_all.status == 303
    assert (await bob.get_json("/api/notifications"))["unread"] == 0
    refused = await bob.client.post("/notifications/read", data={}, allow_redirects=False)
    assert refused.status == 403  # no CSRF token
