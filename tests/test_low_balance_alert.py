"""Low balance (issue #14, item 12): when available credits fall below the administrator's
threshold, the user gets an in-app notification and a mail, once per crossing, both pointing at
/pricing to top up (``multinotes.sharing.low_balance``, reacting to ``credits.low``)."""

from __future__ import annotations

from typing import Any

from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support import people
from tests.support.mail import Mailbox, link_in, text_of
from tests.support.waiting import eventually

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox
ann = people.ann
bob = people.bob

SUBJECT = "credits are running low"


async def adjust(admin: ApiClient, user_id: str, amount: int) -> None:
    response = await admin.post(
        f"/api/admin/users/{user_id}/credits", {"amount": amount, "reason": "test"}
    )
    assert response.status == 201, await response.text()


async def low_notices(api: ApiClient) -> list[dict[str, Any]]:
    page = await api.get_json("/api/notifications")
    return [n for n in page["notifications"] if n["kind"] == "low_balance"]


async def test_crossing_the_threshold_notifies_and_mails_once_per_crossing(
    ann: ApiClient, bob: ApiClient, mailbox: Mailbox
) -> None:
    balance = int((await bob.get_json("/api/wallet"))["balance"])
    threshold = balance - 100
    assert (await ann.patch("/api/admin/pricing", {"low_balance_credits": threshold})).status == 200
    bob_id, address = bob.user["id"], bob.user["email"]

    await adjust(ann, bob_id, -50)  # still above the mark: nothing
    await mailbox.settle()
    assert await low_notices(bob) == [] and mailbox.to(address, SUBJECT) == []

    await adjust(ann, bob_id, -100)  # crosses it
    left = balance - 150

    async def notified() -> bool:
        return len(await low_notices(bob)) == 1

    await eventually(notified)
    (notice,) = await low_notices(bob)
    assert notice["title"] == "Your credits are running low"
    assert f"{left:,} credits left" in notice["excerpt"]
    opened = await bob.client.get(f"/notifications/{notice['id']}/open", allow_redirects=False)
    assert opened.headers["Location"] == "/pricing"
    mail = await mailbox.wait_for(address, subject=SUBJECT)
    assert f"{left:,} credits left" in text_of(mail)
    assert link_in(mail, "/pricing").endswith("/pricing")

    await adjust(ann, bob_id, -10)  # still low: no second notice
    await mailbox.settle()
    assert len(await low_notices(bob)) == 1 and len(mailbox.to(address, SUBJECT)) == 1

    # Topped up above the mark, then below it again: a second crossing, a second notice.
    await adjust(ann, bob_id, 500)
    await adjust(ann, bob_id, -500)

    async def twice() -> bool:
        return len(await low_notices(bob)) == 2

    await eventually(twice)
    await mailbox.wait_for(address, 2, subject=SUBJECT)
    # The notifications page shows it with its link to top up.
    page = await (await bob.get("/notifications")).text()
    assert "Your credits are running low" in page
