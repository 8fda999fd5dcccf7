"""Support tickets: a user opens a ticket and follows its thread; only they (and the operator)
see it. The operator's queue filters by status and assignee; a reply makes the ticket pending,
notifies the user in the app and mails them a link to the thread; an internal note reaches no
one but staff; the user's answer opens the ticket again; close and reopen are audited. Bad input
is a 422 naming the field, with nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, link_in, text_of

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


@pytest.fixture
async def staff(api: ApiClient) -> ApiClient:
    """The operator (the install's first account is an administrator)."""
    await api.register_admin("staff@example.com")
    await api.mark_verified()
    return api


async def customer(make_client: Any, email: str = "sam@example.com") -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name="Sam Customer")
    await client.mark_verified()
    return client


async def open_ticket(client: ApiClient, subject: str = "Cannot export", body: str = "Help") -> Any:
    response = await client.post("/api/tickets", {"subject": subject, "body": body})
    assert response.status == 201, await response.text()
    return await response.json()


async def test_a_ticket_is_answered_and_the_user_is_told(
    staff: ApiClient, make_client: Any, mailbox: Mailbox
):
    sam = await customer(make_client)
    ticket = await open_ticket(sam, "Export **fails**", "My PDF export *fails*.")
    assert ticket["status"] == "open"
    assert [m["body"] for m in ticket["messages"]] == ["My PDF export *fails*."]
    assert [t["id"] for t in (await sam.get_json("/api/tickets"))["tickets"]] == [ticket["id"]]

    queue = (await staff.get_json("/api/admin/tickets?status=open"))["tickets"]
    assert [(t["id"], t["user_email"]) for t in queue] == [(ticket["id"], "sam@example.com")]

    note = await staff.post(
        f"/api/admin/tickets/{ticket['id']}/messages",
        {"body": "Probably the font bug", "internal": True},
    )
    assert note.status == 201
    replied = await staff.post(
        f"/api/admin/tickets/{ticket['id']}/messages", {"body": "Fixed, please **retry**."}
    )
    assert replied.status == 201
    thread = await replied.json()
    assert thread["status"] == "pending" and thread["assignee_id"] == staff.user["id"]
    assert [m["internal"] for m in thread["messages"]] == [False, True, False]

    mine = await sam.get_json(f"/api/tickets/{ticket['id']}")
    assert mine["status"] == "pending"
    assert [m["body"] for m in mine["messages"]] == [
        "My PDF export *fails*.",
        "Fixed, please **retry**.",
    ]
    assert mine["messages"][1]["from_staff"] is True

    notices = (await sam.get_json("/api/notifications"))["notifications"]
    [notice] = [n for n in notices if n["kind"] == "support"]
    assert notice["url"] == f"/support/{ticket['id']}" and notice["title"] == "Export **fails**"
    assert "Probably the font bug" not in str(notices)

    mail = await mailbox.wait_for("sam@example.com", subject="support")
    assert f"/support/{ticket['id']}" in link_in(mail, f"/support/{ticket['id']}")
    assert "Fixed, please **retry**." in text_of(mail)
    assert "font bug" not in text_of(mail)

    # Sam answers: the operator's turn again, and the assignee hears of it.
    answer = await sam.post(f"/api/tickets/{ticket['id']}/messages", {"body": "Works, thanks"})
    assert answer.status == 201 and (await answer.json())["status"] == "open"
    staff_notices = (await staff.get_json("/api/notifications"))["notifications"]
    assert [n["url"] for n in staff_notices if n["kind"] == "support"] == [
        f"/admin/support/{ticket['id']}"
    ]

    closed = await staff.patch(f"/api/admin/tickets/{ticket['id']}", {"status": "closed"})
    assert closed.status == 200 and (await closed.json())["status"] == "closed"
    audit = await staff.get_json(f"/api/admin/audit?target_id={ticket['id']}")
    actions = {e["action"] for e in audit["entries"]}
    assert {"support.replied", "support.note_added", "support.status_changed"} <= actions


async def test_people_see_only_their_own_tickets(staff: ApiClient, make_client: Any):
    sam = await customer(make_client)
    eve = await customer(make_client, "eve@example.com")
    ticket = await open_ticket(sam)
    assert (await eve.get(f"/api/tickets/{ticket['id']}")).status == 404
    reply = await eve.post(f"/api/tickets/{ticket['id']}/messages", {"body": "me too"})
    assert reply.status == 404
    assert (await eve.get_json("/api/tickets"))["tickets"] == []
    assert (await eve.get(f"/support/{ticket['id']}")).status == 404
    assert (await eve.get("/api/admin/tickets")).status == 403
    assert (await eve.get(f"/admin/support/{ticket['id']}")).status == 403
    still = await sam.get_json(f"/api/tickets/{ticket['id']}")
    assert len(still["messages"]) == 1


async def test_the_queue_filters_by_status_and_assignee(staff: ApiClient, make_client: Any):
    sam = await customer(make_client)
    first = await open_ticket(sam, "First")
    second = await open_ticket(sam, "Second")
    assigned = await staff.patch(
        f"/api/admin/tickets/{second['id']}", {"assignee_id": staff.user["id"]}
    )
    assert assigned.status == 200
    mine = (await staff.get_json(f"/api/admin/tickets?assignee={staff.user['id']}"))["tickets"]
    assert [t["id"] for t in mine] == [second["id"]]
    nobody = (await staff.get_json("/api/admin/tickets?assignee=none"))["tickets"]
    assert [t["id"] for t in nobody] == [first["id"]]
    assert (await staff.get_json("/api/admin/tickets?status=closed"))["tickets"] == []
    bad = await staff.get("/api/admin/tickets?status=lost")
    assert bad.status == 422 and "status" in (await bad.json())["error"]["fields"]
    not_staff = await staff.patch(
        f"/api/admin/tickets/{first['id']}", {"assignee_id": sam.user["id"]}
    )
    assert not_staff.status == 422
    assert "assignee_id" in (await not_staff.json())["error"]["fields"]


async def test_bad_input_is_refused_by_field_and_writes_nothing(staff: ApiClient, make_client: Any):
    sam = await customer(make_client)
    for body, field in (
        ({"subject": "   ", "body": "x"}, "subject"),
        ({"subject": "x" * 201, "body": "x"}, "subject"),
        ({"subject": "Hi", "body": ""}, "body"),
        ({"subject": "Hi"}, "body"),
    ):
        response = await sam.post("/api/tickets", body)
        assert response.status == 422, body
        assert field in (await response.json())["error"]["fields"]
    assert (await sam.get_json("/api/tickets"))["tickets"] == []
    missing = await staff.post("/api/admin/tickets/nope/messages", {"body": "hello"})
    assert missing.status == 404
