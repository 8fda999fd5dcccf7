"""Outgoing webhooks (plugin ``webhooks``, issue #16 items 2, 5, 6): endpoints a user owns,
deliveries signed as Standard Webhooks says and checked with its official library, retries with
their log, the SSRF guard on every attempt, and the robustness rules. Both runtime modes."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook

from multinotes.events import DISPATCH_TASK
from multinotes.keys import DB, SETTINGS, TASKS
from multinotes.plugin import plugin_context
from multinotes.plugins.integrations import webhooks
from multinotes.plugins.integrations.webhooks import reveal, service, signing
from multinotes.plugins.integrations.webhooks.tables import Delivery, Endpoint, utcnow
from multinotes.testing import ApiClient
from tests.fakes.webhook_receivers import WebhookReceiver
from tests.support.mail import read_outbox, text_of
from tests.support.waiting import eventually

FAST = {"retry_schedule_seconds": [0.05, 0.05, 0.05], "timeout_seconds": 1}


@pytest.fixture
def plugins() -> Any:
    return [("webhooks", webhooks)]


@pytest.fixture
async def receiver() -> Any:
    async with WebhookReceiver() as server:
        yield server


async def configure(admin: ApiClient, **settings: Any) -> None:
    response = await admin.patch("/api/admin/plugins/webhooks", {"settings": settings})
    assert response.status == 200, await response.json()


async def create(client: ApiClient, url: str, events: list[str] | None = None, **extra: Any) -> Any:
    response = await client.post(
        "/api/webhooks", {"url": url, "events": events or ["note.created"], **extra}
    )
    body = await response.json()
    assert response.status == 201, body
    return body


async def deliveries(client: ApiClient, endpoint_id: str) -> list[dict[str, Any]]:
    body = await client.get_json(f"/api/webhooks/{endpoint_id}/deliveries")
    return list(body["deliveries"])


async def another_user(make_client: Any, email: str) -> ApiClient:
    other: ApiClient = await make_client()
    await other.register_and_login(email, name=email.split("@")[0])
    return other


def test_signatures_match_the_specifications_test_vector() -> None:
    # The example of the Standard Webhooks specification and its reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_a_new_secret_has_the_standard_form() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(signing.secret_key(secret)) == 24
    assert secret != signing.new_secret()


async def test_a_test_event_arrives_signed_and_the_official_library_verifies_it(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    created = await create(admin, receiver.url("/verify"), description="CI hook")
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["note.created"] and created["enabled"] is True
    receiver.secrets = [created["secret"]]
    # Shown once: never in a read.
    listed = await admin.get_json("/api/webhooks")
    assert created["secret"] not in str(listed)
    assert "secret" not in await admin.get_json(f"/api/webhooks/{created['id']}")

    response = await admin.post(f"/api/webhooks/{created['id']}/test")
    assert response.status == 202
    await eventually(lambda: len(receiver.received) == 1)
    message = receiver.received[0]
    assert message.verified_with == created["secret"]
    assert message.headers["webhook-id"].startswith("msg_")
    assert abs(int(message.headers["webhook-timestamp"]) - time.time()) < 60
    assert message.json["type"] == "webhook.test"
    assert message.json["data"]["endpoint_id"] == created["id"]
    assert "timestamp" in message.json

    async def logged() -> bool:
        rows = await deliveries(admin, created["id"])
        return bool(rows) and rows[0]["status"] == "succeeded"

    await eventually(logged)
    [row] = await deliveries(admin, created["id"])
    assert row["webhook_id"] == message.headers["webhook-id"]
    [attempt] = row["attempts"]
    assert attempt["status_code"] == 204 and attempt["error"] is None
    assert attempt["latency_ms"] >= 0


async def test_events_reach_the_owners_endpoints_and_instance_wide_ones_only(
    admin: ApiClient, make_client: Any, receiver: WebhookReceiver
) -> None:
    alice = await another_user(make_client, "alice@example.com")
    bob = await another_user(make_client, "bob@example.com")
    alices = await create(alice, receiver.url("/verify"), ["generation.completed"])
    bobs = await create(bob, receiver.url("/verify"), ["generation.completed"])
    everything = await create(
        admin, receiver.url("/verify"), ["generation.completed"], scope="instance"
    )
    unrelated = await create(alice, receiver.url("/verify"), ["note.deleted"])
    receiver.secrets = [alices["secret"], bobs["secret"], everything["secret"]]

    # The core's hand-off to integrations, as a worker runs it.
    await admin.app[TASKS].enqueue(
        DISPATCH_TASK,
        name="generation.completed",
        user_id=alice.user["id"],
        data={"message_id": "m1", "model": "demo/echo"},
    )
    await eventually(lambda: len(receiver.received) == 2)
    await eventually(lambda: all(r.verified_with for r in receiver.received))
    assert {r.verified_with for r in receiver.received} == {alices["secret"], everything["secret"]}
    assert receiver.received[0].json["data"] == {"message_id": "m1", "model": "demo/echo"}
    assert await deliveries(bob, bobs["id"]) == []
    assert await deliveries(alice, unrelated["id"]) == []

    # A user may not ask for every event of the instance.
    refused = await alice.post(
        "/api/webhooks",
        {"url": receiver.url("/verify"), "events": ["note.created"], "scope": "instance"},
    )
    assert refused.status == 422
    assert "scope" in (await refused.json())["error"]["fields"]


async def test_a_receiver_that_fails_twice_gets_the_third_attempt_and_the_log_shows_all(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    await configure(admin, **FAST)
    receiver.fail_times = 2
    created = await create(admin, receiver.url("/flaky"))
    await admin.post(f"/api/webhooks/{created['id']}/test")

    async def done() -> bool:
        rows = await deliveries(admin, created["id"])
        return bool(rows) and rows[0]["status"] == "succeeded"

    await eventually(done, timeout=10)
    [row] = await deliveries(admin, created["id"])
    assert [a["status_code"] for a in row["attempts"]] == [500, 500, 200]
    assert row["attempts"][0]["response_excerpt"] == "receiver is down"
    assert "HTTP 500" in row["attempts"][0]["error"]
    # One message: every attempt carried the same webhook-id.
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


async def test_retries_stop_after_the_schedule_and_a_manual_retry_resends(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    await configure(admin, retry_schedule_seconds=[0.05], timeout_seconds=1)
    receiver.fail_times = 2
    created = await create(admin, receiver.url("/flaky"))
    await admin.post(f"/api/webhooks/{created['id']}/test")

    async def failed() -> bool:
        rows = await deliveries(admin, created["id"])
        return bool(rows) and rows[0]["status"] == "failed"

    await eventually(failed, timeout=10)
    [row] = await deliveries(admin, created["id"])
    assert len(row["attempts"]) == 2

    response = await admin.post(f"/api/webhooks/{created['id']}/deliveries/{row['id']}/retry")
    assert response.status == 202

    async def resent() -> bool:
        rows = await deliveries(admin, created["id"])
        return rows[0]["status"] == "succeeded"

    await eventually(resent, timeout=10)
    [row] = await deliveries(admin, created["id"])
    assert [(a["status_code"], a["trigger"]) for a in row["attempts"]] == [
        (500, "auto"),
        (500, "auto"),
        (200, "manual"),
    ]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


async def test_a_slow_receiver_times_out_in_the_background_without_slowing_the_request(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    await configure(admin, retry_schedule_seconds=[], timeout_seconds=0.5)
    receiver.delay = 3
    created = await create(admin, receiver.url("/slow"))
    started = time.monotonic()
    response = await admin.post(f"/api/webhooks/{created['id']}/test")
    assert response.status == 202
    assert time.monotonic() - started < 0.5

    async def failed() -> bool:
        rows = await deliveries(admin, created["id"])
        return bool(rows) and rows[0]["status"] == "failed"

    await eventually(failed, timeout=10)
    [row] = await deliveries(admin, created["id"])
    assert row["attempts"][0]["error"] == "No answer within 0.5 s."


async def test_a_redirect_to_a_private_address_is_not_followed(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    await configure(admin, retry_schedule_seconds=[], timeout_seconds=1)
    created = await create(admin, receiver.url("/redirect"))
    await admin.post(f"/api/webhooks/{created['id']}/test")

    async def failed() -> bool:
        rows = await deliveries(admin, created["id"])
        return bool(rows) and rows[0]["status"] == "failed"

    await eventually(failed, timeout=10)
    [row] = await deliveries(admin, created["id"])
    [attempt] = row["attempts"]
    assert attempt["status_code"] == 302
    assert "169.254.169.254" in attempt["error"] and "not followed" in attempt["error"]
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://10.0.0.5/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://127.0.0.2:9/hook", "loopback"),
        ("http://[::ffff:192.168.1.1]/hook", "private"),
    ],
)
async def test_an_endpoint_on_an_internal_address_is_refused(
    admin: ApiClient, url: str, problem: str
) -> None:
    response = await admin.post("/api/webhooks", {"url": url, "events": ["note.created"]})
    body = await response.json()
    assert response.status == 422, body
    assert problem in body["error"]["fields"]["url"]
    assert "MULTINOTES_OUTGOING_ALLOW" in body["error"]["fields"]["url"]


async def test_every_attempt_checks_the_address_again(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    """An endpoint accepted while its address was allowed is refused once it no longer is
    (a DNS answer that changed, an operator who narrowed the allowlist)."""
    from multinotes import outgoing

    await configure(admin, retry_schedule_seconds=[], timeout_seconds=1)
    created = await create(admin, receiver.url("/verify"))
    outgoing.install(outgoing.OutgoingPolicy.parse([]))
    await admin.post(f"/api/webhooks/{created['id']}/test")

    async def failed() -> bool:
        rows = await deliveries(admin, created["id"])
        return bool(rows) and rows[0]["status"] == "failed"

    await eventually(failed, timeout=10)
    [row] = await deliveries(admin, created["id"])
    assert "loopback" in row["attempts"][0]["error"]
    assert receiver.received == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x", "events": ["note.created"]}, "url"),
        ({"url": "https://user:pw@example.com/x", "events": ["note.created"]}, "url"),
        ({"url": "https:///nohost", "events": ["note.created"]}, "url"),
        ({"url": "https://example.com/x", "events": []}, "events"),
        ({"url": "https://example.com/x", "events": ["Not An Event"]}, "events"),
        ({"events": ["note.created"]}, "url"),
        ({"url": "https://example.com/x", "events": ["note.created"], "colour": 1}, "colour"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    admin: ApiClient, body: dict[str, Any], field: str
) -> None:
    response = await admin.post("/api/webhooks", body)
    answer = await response.json()
    assert response.status == 422, answer
    assert field in answer["error"]["fields"]


async def test_an_owner_sees_only_their_endpoints_and_an_admin_sees_all(
    admin: ApiClient, make_client: Any, receiver: WebhookReceiver
) -> None:
    alice = await another_user(make_client, "alice@example.com")
    bob = await another_user(make_client, "bob@example.com")
    alices = await create(alice, receiver.url("/verify"))
    assert [w["id"] for w in (await bob.get_json("/api/webhooks"))["webhooks"]] == []
    for method, path in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/test"),
        ("POST", "/disable"),
        ("POST", "/rotate-secret"),
        ("GET", "/deliveries"),
        ("POST", f"/deliveries/{'0' * 32}/retry"),
    ]:
        response = await bob.request(
            method, f"/api/webhooks/{alices['id']}{path}", json={"description": "x"}
        )
        assert response.status == 404, (method, path)
    # The admin sees and can switch off anyone's endpoint.
    everyone = await admin.get_json("/api/webhooks?all=1")
    assert alices["id"] in [w["id"] for w in everyone["webhooks"]]
    switched = await admin.post(f"/api/webhooks/{alices['id']}/disable")
    assert (await switched.json())["disabled_reason"] == "admin"
    assert (await alice.get_json(f"/api/webhooks/{alices['id']}"))["enabled"] is False
    # ... and it stays off until an admin switches it on.
    refused = await alice.post(f"/api/webhooks/{alices['id']}/enable")
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "disabled_by_admin"


async def test_update_disable_enable_and_delete(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    created = await create(admin, receiver.url("/verify"))
    response = await admin.patch(
        f"/api/webhooks/{created['id']}",
        {"events": ["note.created", "note.updated"], "description": "two"},
    )
    body = await response.json()
    assert response.status == 200, body
    assert body["events"] == ["note.created", "note.updated"] and body["description"] == "two"
    bad = await admin.patch(f"/api/webhooks/{created['id']}", {"url": "http://10.1.2.3/"})
    assert bad.status == 422 and "url" in (await bad.json())["error"]["fields"]
    off = await (await admin.post(f"/api/webhooks/{created['id']}/disable")).json()
    assert off["enabled"] is False and off["disabled_reason"] == "owner"
    on = await (await admin.post(f"/api/webhooks/{created['id']}/enable")).json()
    assert on["enabled"] is True and on["disabled_reason"] is None
    assert (await admin.delete(f"/api/webhooks/{created['id']}")).status == 204
    assert (await admin.get(f"/api/webhooks/{created['id']}")).status == 404


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_grace_period(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    created = await create(admin, receiver.url("/verify"))
    response = await admin.post(f"/api/webhooks/{created['id']}/rotate-secret", {"grace_hours": 1})
    rotated = await response.json()
    assert response.status == 200 and rotated["secret"] != created["secret"]
    assert rotated["previous_secret_until"] is not None

    receiver.secrets = [created["secret"]]  # a receiver not yet updated still verifies
    await admin.post(f"/api/webhooks/{created['id']}/test")
    await eventually(lambda: len(receiver.received) == 1)
    message = receiver.received[0]
    signatures = message.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert message.verified_with == created["secret"]
    Webhook(rotated["secret"]).verify(message.body, message.headers)

    # Without a grace period only the new secret signs.
    await admin.post(f"/api/webhooks/{created['id']}/rotate-secret", {"grace_hours": 0})
    await admin.post(f"/api/webhooks/{created['id']}/test")
    await eventually(lambda: len(receiver.received) == 2)
    assert len(receiver.received[1].headers["webhook-signature"].split(" ")) == 1
    assert receiver.received[1].verified_with is None  # neither old secret verifies it


async def test_an_endpoint_failing_for_days_is_disabled_and_its_owner_notified(
    admin: ApiClient, make_client: Any, receiver: WebhookReceiver
) -> None:
    await configure(admin, retry_schedule_seconds=[], timeout_seconds=1, disable_after_hours=48)
    alice = await another_user(make_client, "alice@example.com")
    receiver.fail_times = 100
    created = await create(alice, receiver.url("/flaky"))
    async with admin.app[DB].transaction() as session:  # failing since three days
        await session.execute(
            update(Endpoint)
            .where(Endpoint.id == created["id"])
            .values(failing_since=utcnow() - timedelta(days=3))
        )
    await alice.post(f"/api/webhooks/{created['id']}/test")

    async def disabled() -> bool:
        return (await alice.get_json(f"/api/webhooks/{created['id']}"))["enabled"] is False

    await eventually(disabled, timeout=10)
    endpoint = await alice.get_json(f"/api/webhooks/{created['id']}")
    assert endpoint["disabled_reason"] == "failing"
    notes = await alice.get_json("/api/notifications")
    [note] = notes["notifications"]
    assert "webhook" in note["title"].lower()
    assert note["url"] == f"/integrations/webhooks/{created['id']}"
    # And a mail, since nothing reaches the receiver until the owner acts.
    outbox = admin.app[SETTINGS].outbox_dir
    mails: list[Any] = []

    def mailed() -> bool:
        mails[:] = [
            m
            for m in read_outbox(outbox)
            if m["To"] == "alice@example.com" and "webhook" in m["Subject"]
        ]
        return bool(mails)

    await eventually(mailed, timeout=10)
    [mail] = mails
    assert mail["Subject"] == "A webhook was switched off: its receiver kept failing"
    text = text_of(mail)
    assert receiver.url("/flaky") in text and "Hi alice" in text
    assert f"/integrations/webhooks/{created['id']}" in text and "whsec_" not in text
    # Off means off: a new event makes no delivery.
    await admin.app[TASKS].enqueue(
        DISPATCH_TASK, name="note.created", user_id=alice.user["id"], data={"id": "n1"}
    )
    await admin.post(f"/api/webhooks/{'0' * 32}/test")  # lets the queue turn over
    assert len(await deliveries(alice, created["id"])) == 1


async def test_a_delivery_interrupted_by_a_crash_is_sent_again_with_the_same_id(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    created = await create(admin, receiver.url("/verify"))
    receiver.secrets = [created["secret"]]
    app = admin.app
    ctx = plugin_context(app, "webhooks")
    # A worker took the delivery (its lease set) and died before sending.
    delivery_id = await service._new_delivery(
        ctx, created["id"], "note.created", "event-1", service.message_body("note.created", {})
    )
    assert delivery_id is not None
    assert await service._claim(ctx, delivery_id, 0, due_only=False)
    assert await service.sweep(ctx) == 0  # its lease still runs
    assert not await service._claim(ctx, delivery_id, 0)  # nor can a second task take it
    async with app[DB].transaction() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert await service.sweep(ctx) == 1
    await eventually(lambda: len(receiver.received) == 1)
    assert receiver.received[0].headers["webhook-id"] == f"msg_{delivery_id}"
    assert receiver.received[0].verified_with == created["secret"]


async def test_the_same_event_handed_over_twice_is_delivered_once(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    from multinotes.plugin import Event

    created = await create(admin, receiver.url("/verify"), ["note.created"])
    ctx = plugin_context(admin.app, "webhooks")
    event = Event("note.created", admin.user["id"], {"id": "n1"})
    object.__setattr__(event, "id", "evt_1")  # the catalogue's events carry an id
    first = await service.dispatch(ctx, event)
    second = await service.dispatch(ctx, event)
    assert len(first) == 1 and second == []
    await eventually(lambda: len(receiver.received) == 1)
    assert len(await deliveries(admin, created["id"])) == 1


async def test_a_disabled_plugin_stops_delivering_at_once(
    admin: ApiClient, receiver: WebhookReceiver
) -> None:
    created = await create(admin, receiver.url("/verify"))
    response = await admin.patch("/api/admin/plugins/webhooks", {"enabled": False})
    assert response.status == 200
    assert (await admin.get(f"/api/webhooks/{created['id']}")).status == 404
    ctx = plugin_context(admin.app, "webhooks")
    delivery_id = await service._new_delivery(
        ctx, created["id"], "note.created", "event-2", service.message_body("note.created", {})
    )
    assert delivery_id is not None
    await admin.app[TASKS].enqueue(service.DELIVER_TASK, delivery_id=delivery_id)
    await admin.app[TASKS].enqueue(
        DISPATCH_TASK, name="note.created", user_id=admin.user["id"], data={"id": "n2"}
    )
    await admin.post("/api/auth/logout")  # lets the queue turn over
    assert receiver.received == []
    async with admin.app[DB].read() as session:
        rows = list(
            await session.scalars(select(Delivery).where(Delivery.endpoint_id == created["id"]))
        )
    assert [r.status for r in rows] == ["pending"]  # kept, sent when switched on again


async def test_deleting_a_user_deletes_their_endpoints(
    admin: ApiClient, make_client: Any, receiver: WebhookReceiver
) -> None:
    from multinotes.privacy.deletion import hard_delete

    alice = await another_user(make_client, "alice@example.com")
    created = await create(alice, receiver.url("/verify"))
    await alice.post(f"/api/webhooks/{created['id']}/test")
    await eventually(lambda: len(receiver.received) == 1)
    from multinotes.models import User

    async with admin.app[DB].transaction() as session:  # deactivated: its grace period is over
        await session.execute(
            update(User).where(User.id == alice.user["id"]).values(is_active=False)
        )
    assert await hard_delete(admin.app, alice.user["id"])
    async with admin.app[DB].read() as session:
        assert await session.get(Endpoint, created["id"]) is None
        left = await session.scalars(select(Delivery).where(Delivery.endpoint_id == created["id"]))
        assert list(left) == []


async def test_saving_a_note_delivers_note_created_signed_to_the_owners_webhook(
    admin: ApiClient, make_client: Any, receiver: WebhookReceiver
) -> None:
    """The issue's "done when": a webhook for note.created, a note saved, a delivery whose
    signature verifies with the Standard Webhooks algorithm; nobody else's note reaches it."""
    alice = await another_user(make_client, "alice@example.com")
    bob = await another_user(make_client, "bob@example.com")
    created = await create(alice, receiver.url("/verify"), ["note.created"])
    receiver.secrets = [created["secret"]]

    response = await bob.post("/api/documents", {"title": "Bob's", "content": "not for Alice"})
    assert response.status == 201
    response = await alice.post("/api/documents", {"title": "Plan", "content": "# Plan"})
    assert response.status == 201
    note_id = (await response.json())["id"]

    await eventually(lambda: len(receiver.received) == 1, timeout=10)
    message = receiver.received[0]
    assert message.verified_with == created["secret"]
    assert message.json["type"] == "note.created"
    assert message.json["data"]["note_id"] == note_id
    assert message.json["data"]["title"] == "Plan"
    await admin.post("/api/auth/logout")  # lets the queue turn over: Bob's note sent nothing
    assert len(receiver.received) == 1


async def test_the_data_export_holds_the_users_endpoints_and_deliveries_but_no_secret(
    admin: ApiClient, make_client: Any, receiver: WebhookReceiver
) -> None:
    from tests.test_privacy import download, finished_export, read_json

    created = await create(admin, receiver.url("/verify"), description="CI hook")
    response = await admin.post(f"/api/webhooks/{created['id']}/rotate-secret", {"grace_hours": 1})
    rotated = await response.json()
    receiver.secrets = [rotated["secret"]]
    assert (await admin.post(f"/api/webhooks/{created['id']}/test")).status == 202

    async def logged() -> bool:
        rows = await deliveries(admin, created["id"])
        return bool(rows) and rows[0]["status"] == "succeeded"

    await eventually(logged)
    bob = await another_user(make_client, "bob@example.com")
    bobs = await create(bob, receiver.url("/verify"), description="Bob's")

    started = await admin.post("/api/me/export")
    assert started.status == 202, await started.text()
    done = await finished_export(admin, (await started.json())["id"])
    archive = await download(admin, done["download_url"])
    assert "plugins/webhooks/webhooks.json" in archive.read("README.txt").decode()
    [endpoint] = read_json(archive, "plugins/webhooks/webhooks.json")["endpoints"]
    assert endpoint["id"] == created["id"] and endpoint["description"] == "CI hook"
    assert endpoint["url"] == created["url"] and endpoint["events"] == ["note.created"]
    assert endpoint["previous_secret_until"] is not None  # the rotation shows, not the secret
    [delivery] = endpoint["deliveries"]
    assert delivery["type"] == "webhook.test" and delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [204]
    everything = b"".join(archive.read(name) for name in archive.namelist())
    for secret in (created["secret"], rotated["secret"]):
        assert secret.encode() not in everything
        assert secret.removeprefix("whsec_").encode() not in everything
    assert bobs["id"].encode() not in everything  # only one's own endpoints


def shown_secrets(html: str) -> list[str]:
    return re.findall(r'value="(whsec_[^"]+)"', html)


async def test_the_page_form_redirects_and_shows_the_new_secret_once(
    admin: ApiClient, make_client: Any, receiver: WebhookReceiver
) -> None:
    """Post/redirect/get: a reload after adding a webhook adds no second one, and the secret,
    carried across the redirect in an encrypted cookie, is on the next page only."""
    form = {"url": receiver.url("/verify"), "events": "note.created", "description": "Form"}
    posted = await admin.post("/integrations/webhooks", data=form, allow_redirects=False)
    assert posted.status == 303 and posted.headers["Location"].startswith("/integrations")
    cookie = posted.cookies[reveal.COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert "whsec_" not in cookie.value and "whsec_" not in posted.headers["Location"]

    bob = await another_user(make_client, "bob@example.com")  # a stolen cookie shows him nothing
    bob.client.session.cookie_jar.update_cookies({reveal.COOKIE: cookie.value})
    stolen = await bob.get("/integrations")
    assert stolen.request_info.headers["Cookie"].count(reveal.COOKIE) == 1
    assert shown_secrets(await stolen.text()) == []

    first = await (await admin.get("/integrations")).text()
    [secret] = shown_secrets(first)
    [endpoint] = (await admin.get_json("/api/webhooks"))["webhooks"]
    receiver.secrets = [secret]
    assert (await admin.post(f"/api/webhooks/{endpoint['id']}/test")).status == 202
    await eventually(lambda: len(receiver.received) == 1)
    assert receiver.received[0].verified_with == secret  # the secret shown is the real one

    reloaded = await (await admin.get("/integrations")).text()
    assert shown_secrets(reloaded) == [] and secret not in reloaded
    assert len((await admin.get_json("/api/webhooks"))["webhooks"]) == 1

    # Rotating redirects too: a reload neither rotates again nor shows the secret again.
    rotated = await admin.post(
        f"/integrations/webhooks/{endpoint['id']}/rotate", data={}, allow_redirects=False
    )
    assert rotated.status == 303
    page = f"/integrations/webhooks/{endpoint['id']}"
    before = await admin.get_json(f"/api/webhooks/{endpoint['id']}")
    [new_secret] = shown_secrets(await (await admin.get(page)).text())
    assert new_secret != secret
    assert shown_secrets(await (await admin.get(page)).text()) == []
    after = await admin.get_json(f"/api/webhooks/{endpoint['id']}")
    assert after["previous_secret_until"] == before["previous_secret_until"]


async def test_a_tampered_or_expired_secret_cookie_shows_nothing(admin: ApiClient) -> None:
    ctx = plugin_context(admin.app, service.PLUGIN)
    user_id = (await admin.get_json("/api/me"))["id"]
    expired = ctx.encrypt(
        json.dumps(
            {
                "user": user_id,
                "endpoint": "e" * 32,
                "secret": "whsec_old",
                "kind": "created",
                "until": int(time.time()) - 1,
            }
        )
    )
    for value in (expired, "not-a-token", expired[:-4] + "AAAA"):
        admin.client.session.cookie_jar.update_cookies({reveal.COOKIE: value})
        page = await admin.get("/integrations")
        assert page.status == 200 and shown_secrets(await page.text()) == []
    # The same way of handing over a cookie, with a fresh one: shown (the checks above count).
    fresh = json.loads(ctx.decrypt(expired)) | {"until": int(time.time()) + 60}
    admin.client.session.cookie_jar.update_cookies({reveal.COOKIE: ctx.encrypt(json.dumps(fresh))})
    assert shown_secrets(await (await admin.get("/integrations")).text()) == ["whsec_old"]


def test_the_default_schedule_retries_within_seconds_then_for_about_a_day() -> None:
    schedule = service.WebhooksSettings().retry_schedule_seconds
    assert schedule[0] <= 10
    assert schedule == sorted(schedule)  # growing
    assert 20 * 3600 <= sum(schedule) <= 36 * 3600
    delays = [service.retry_delay(schedule, 1) for _ in range(200)]
    assert all(d is not None and 0.8 * schedule[0] <= d <= 1.2 * schedule[0] for d in delays)
    assert len({round(d or 0, 3) for d in delays}) > 50  # jittered, not one fixed delay
    assert service.retry_delay(schedule, len(schedule)) is not None
    assert service.retry_delay(schedule, len(schedule) + 1) is None  # used up: failed
