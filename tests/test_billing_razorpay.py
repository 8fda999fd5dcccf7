"""Money through Razorpay (issue #14): Orders and Subscriptions paid in Razorpay's Checkout,
signed webhooks, the payment signature, refunds and disputes.

The Razorpay plugin runs the official SDK (through the outgoing guard) against a local fake
Razorpay (tests/fakes/razorpay_server) that speaks its REST API with basic auth and signs
webhooks and payment signatures as Razorpay does. Credits arrive only from a verified webhook or
from a payment the server fetched from Razorpay itself, exactly once, in either order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from multinotes import outgoing
from multinotes.billing.models import ProviderEvent
from multinotes.domain_events import EVENTS, ORDER_PAID, DomainEvent
from multinotes.keys import DB
from multinotes.plugins.billing import razorpay as razorpay_plugin
from multinotes.plugins.billing import stripe as stripe_plugin
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from multinotes.wallet.models import LedgerEntry
from tests.fakes.razorpay_server import FakeRazorpay

CREDITS = 500_000


@pytest.fixture
async def fake_razorpay() -> AsyncIterator[tuple[FakeRazorpay, str]]:
    fake = FakeRazorpay()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def plugins() -> Any:
    return [("razorpay", razorpay_plugin)]


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], fake_razorpay: tuple[FakeRazorpay, str]
) -> Settings:
    fake, url = fake_razorpay
    return make_settings(
        plugins={
            "razorpay": {
                "key_id": fake.key_id,
                "key_secret": fake.key_secret,
                "webhook_secret": fake.webhook_secret,
                "api_base": url,
                "checkout_script": f"{url}/v1/checkout.js",
            }
        }
    )


@pytest.fixture
async def razorpay(api: ApiClient, fake_razorpay: tuple[FakeRazorpay, str]) -> FakeRazorpay:
    fake, _ = fake_razorpay
    fake.webhook_url = str(api.client.server.make_url("/api/billing/razorpay/webhook"))
    return fake


@pytest.fixture
def paid_events(api: ApiClient) -> list[DomainEvent]:
    received: list[DomainEvent] = []

    async def look(app: Any, event: DomainEvent) -> None:
        received.append(event)

    api.app[EVENTS].subscribe(ORDER_PAID, look)
    return received


async def make_plan(admin: ApiClient, interval: str = "once", price: int = 49_900) -> str:
    body: dict[str, Any] = {
        "name": "Starter" if interval == "once" else f"Pro {interval}ly",
        "kind": "credits",
        "credits": CREDITS,
        "price": price,
        "currency": "INR",
        "interval": interval,
    }
    if interval == "once":
        body["duration_days"] = 30
    response = await admin.post("/api/admin/plans", body)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


@pytest.fixture
async def plan(admin: ApiClient) -> str:
    return await make_plan(admin)


async def buyer(make_client: Callable[[], Any], email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email)
    return client


async def balance(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["balance"])


async def order_entries(api: ApiClient, order_id: str) -> list[LedgerEntry]:
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(LedgerEntry).where(LedgerEntry.reference == f"order:{order_id}")
        )
        return list(rows)


async def stored_events(api: ApiClient) -> int:
    async with api.app[DB].read() as session:
        return int(await session.scalar(select(func.count()).select_from(ProviderEvent)) or 0)


async def checkout(api: ApiClient, plan_id: str) -> tuple[str, str]:
    """``(core order id, Razorpay reference)`` of a new checkout."""
    response = await api.post("/api/billing/checkout", {"plan_id": plan_id})
    assert response.status == 201, await response.text()
    started = await response.json()
    url = urlsplit(started["url"])
    assert url.path == "/billing/razorpay/checkout"
    return started["order_id"], parse_qs(url.query)["ref"][0]


async def status_of(api: ApiClient, order_id: str) -> dict[str, Any]:
    return dict(await api.get_json(f"/api/billing/orders/{order_id}"))


# -- one-time orders ----------------------------------------------------------------------------


async def test_checkout_creates_a_razorpay_order_and_the_signed_webhook_grants_once(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str, paid_events: list[DomainEvent]
) -> None:
    before = await balance(admin)
    order_id, reference = await checkout(admin, plan)
    method, path, body = razorpay.requests[-1]
    assert (method, path) == ("POST", "/v1/orders")
    assert body["amount"] == 49_900 and body["currency"] == "INR"
    assert body["notes"]["order_id"] == order_id and body["receipt"] == order_id
    assert reference.startswith("order_") and reference in razorpay.orders
    assert (await status_of(admin, order_id))["status"] == "pending"
    assert await balance(admin) == before

    payment = razorpay.pay_order(reference)
    captured = razorpay.event("payment.captured", payment=payment)
    order_paid = razorpay.event("order.paid", payment=payment, order=razorpay.orders[reference])
    results = await asyncio.gather(
        *(razorpay.deliver(captured, event_id="evt_Same0001") for _ in range(5))
    )
    assert sorted(body["outcome"] for _, body in results) == ["applied"] + ["duplicate"] * 4
    # The same payment announced again by another event (order.paid) changes nothing.
    status, second = await razorpay.deliver(order_paid)
    assert (status, second["outcome"]) == (200, "no_change")

    order = await status_of(admin, order_id)
    assert order["status"] == "paid" and order["paid_at"]
    assert await balance(admin) == CREDITS  # the trial's leftover expires, the plan's arrive
    assert sorted(e.kind for e in await order_entries(admin, order_id)) == ["expiry", "purchase"]
    assert [e.payload["order_id"] for e in paid_events] == [order_id]  # order.paid, once
    assert paid_events[0].payload["backend"] == "razorpay"
    assert paid_events[0].payload["total"] == 49_900 and paid_events[0].user_id == admin.user["id"]


async def test_forged_unsigned_and_foreign_webhooks_are_refused_and_change_nothing(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    order_id, reference = await checkout(admin, plan)
    event = razorpay.event("payment.captured", payment=razorpay.pay_order(reference))
    status, body = await razorpay.deliver(event, secret="someone_elses_secret")
    assert status == 400 and body["error"]["code"] == "bad_signature"
    payload, headers = razorpay.signed(event)
    tampered = payload.replace(b'"captured"', b'"refunded"', 1)
    async with aiohttp.ClientSession() as anyone:
        async with anyone.post(razorpay.webhook_url, data=tampered, headers=headers) as sent:
            assert sent.status == 400
        async with anyone.post(razorpay.webhook_url, data=payload) as unsigned:
            assert unsigned.status == 400
    assert (await status_of(admin, order_id))["status"] == "pending"
    assert await order_entries(admin, order_id) == []
    assert await stored_events(admin) == 0


async def test_unknown_events_and_other_accounts_orders_are_acknowledged_and_ignored(
    admin: ApiClient, razorpay: FakeRazorpay
) -> None:
    status, body = await razorpay.deliver(razorpay.event("invoice.paid", invoice={"id": "inv_1"}))
    assert (status, body) == (200, {"received": True, "outcome": "ignored"})
    stranger = razorpay._payment(10_000, "INR", order_id="order_NotOneOfOurs1")
    _, body = await razorpay.deliver(razorpay.event("payment.captured", payment=stranger))
    assert body["outcome"] == "unknown_order"


async def test_a_payment_of_another_amount_grants_nothing(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    before = await balance(admin)
    order_id, reference = await checkout(admin, plan)
    payment = {**razorpay.pay_order(reference), "amount": 100}
    _, body = await razorpay.deliver(razorpay.event("payment.captured", payment=payment))
    assert body["outcome"] == "amount_mismatch"
    assert await balance(admin) == before
    assert (await status_of(admin, order_id))["status"] == "pending"


# -- the buyer's proof: the payment signature, then a server-side fetch -------------------------


async def test_the_payment_signature_confirms_with_razorpay_before_the_webhook(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str, paid_events: list[DomainEvent]
) -> None:
    order_id, reference = await checkout(admin, plan)
    payment = razorpay.pay_order(reference)
    proof = {
        "razorpay_payment_id": payment["id"],
        "razorpay_order_id": reference,
        "razorpay_signature": razorpay.signature(payment["id"], order_id=reference),
    }
    confirmed = await admin.post(f"/api/billing/orders/{order_id}/confirm", {"payment": proof})
    assert confirmed.status == 200, await confirmed.text()
    assert (await confirmed.json())["status"] == "paid"
    # The server asked Razorpay about the payment; it did not take the browser's word.
    assert ("GET", f"/v1/payments/{payment['id']}", None) in razorpay.requests
    assert await balance(admin) == CREDITS

    again = await admin.post(f"/api/billing/orders/{order_id}/confirm", {"payment": proof})
    assert again.status == 200
    _, late = await razorpay.deliver(razorpay.event("payment.captured", payment=payment))
    assert late["outcome"] == "no_change"
    assert await balance(admin) == CREDITS
    assert len(paid_events) == 1


async def test_the_buyers_confirmation_and_both_webhooks_at_once_grant_once(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str, paid_events: list[DomainEvent]
) -> None:
    order_id, reference = await checkout(admin, plan)
    payment = razorpay.pay_order(reference)
    proof = {
        "razorpay_payment_id": payment["id"],
        "razorpay_order_id": reference,
        "razorpay_signature": razorpay.signature(payment["id"], order_id=reference),
    }
    confirmed, captured, order_paid = await asyncio.gather(
        admin.post(f"/api/billing/orders/{order_id}/confirm", {"payment": proof}),
        razorpay.deliver(razorpay.event("payment.captured", payment=payment)),
        razorpay.deliver(
            razorpay.event("order.paid", payment=payment, order=razorpay.orders[reference])
        ),
    )
    assert confirmed.status == 200 and (await confirmed.json())["status"] == "paid"
    outcomes = sorted([captured[1]["outcome"], order_paid[1]["outcome"]])
    assert outcomes in (["no_change", "no_change"], ["applied", "no_change"])
    assert await balance(admin) == CREDITS
    purchases = [e for e in await order_entries(admin, order_id) if e.kind == "purchase"]
    assert [e.amount for e in purchases] == [CREDITS]
    assert len(paid_events) == 1


async def test_a_forged_or_borrowed_signature_is_a_400_and_changes_nothing(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str, make_client: Callable[[], Any]
) -> None:
    order_id, reference = await checkout(admin, plan)
    before = await balance(admin)
    payment = razorpay.pay_order(reference)
    path = f"/api/billing/orders/{order_id}/confirm"
    forged = {
        "razorpay_payment_id": payment["id"],
        "razorpay_order_id": reference,
        "razorpay_signature": "0" * 64,
    }
    refused = await admin.post(path, {"payment": forged})
    assert refused.status == 400
    assert (await refused.json())["error"]["code"] == "bad_signature"

    # A real, cheap payment of another order does not pay for this one.
    cheap_plan = await make_plan(admin, price=100)
    _, cheap = await checkout(admin, cheap_plan)
    cheap_payment = razorpay.pay_order(cheap)
    borrowed = {
        "razorpay_payment_id": cheap_payment["id"],
        "razorpay_order_id": cheap,
        "razorpay_signature": razorpay.signature(cheap_payment["id"], order_id=cheap),
    }
    assert (await admin.post(path, {"payment": borrowed})).status == 400
    # Signed for this order but naming another's payment: the fetched payment gives it away.
    mixed = {
        "razorpay_payment_id": cheap_payment["id"],
        "razorpay_order_id": reference,
        "razorpay_signature": razorpay.signature(cheap_payment["id"], order_id=reference),
    }
    assert (await admin.post(path, {"payment": mixed})).status == 400
    assert (await admin.post(path, {"payment": "nope"})).status == 422

    someone = await buyer(make_client, "nosy@example.com")
    proof = {
        "razorpay_payment_id": payment["id"],
        "razorpay_order_id": reference,
        "razorpay_signature": razorpay.signature(payment["id"], order_id=reference),
    }
    assert (await someone.post(path, {"payment": proof})).status == 404
    assert (await status_of(admin, order_id))["status"] == "pending"
    assert await balance(admin) == before
    assert await stored_events(admin) == 0


async def test_an_authorised_payment_is_captured_before_it_counts(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    razorpay.capture_automatically = False
    order_id, reference = await checkout(admin, plan)
    payment = razorpay.pay_order(reference)
    assert payment["status"] == "authorized"
    proof = {
        "razorpay_payment_id": payment["id"],
        "razorpay_order_id": reference,
        "razorpay_signature": razorpay.signature(payment["id"], order_id=reference),
    }
    confirmed = await admin.post(f"/api/billing/orders/{order_id}/confirm", {"payment": proof})
    assert confirmed.status == 200, await confirmed.text()
    capture = [r for r in razorpay.requests if r[1].endswith("/capture")]
    assert capture == [
        ("POST", f"/v1/payments/{payment['id']}/capture", {"amount": 49_900, "currency": "INR"})
    ]
    assert razorpay.payments[payment["id"]]["status"] == "captured"
    assert (await status_of(admin, order_id))["status"] == "paid"


# -- subscriptions -----------------------------------------------------------------------------


async def test_a_subscription_is_paid_renews_survives_a_failed_charge_and_cancels(
    admin: ApiClient, razorpay: FakeRazorpay, paid_events: list[DomainEvent]
) -> None:
    monthly = await make_plan(admin, "month", price=99_900)
    order_id, reference = await checkout(admin, monthly)
    assert reference.startswith("sub_")
    [plan] = razorpay.plans.values()
    assert (plan["period"], plan["interval"], plan["item"]["amount"]) == ("monthly", 1, 99_900)
    subscription = razorpay.subscriptions[reference]
    assert subscription["plan_id"] == plan["id"] and subscription["notes"]["order_id"] == order_id

    first = razorpay.charge_subscription(reference)
    proof = {
        "razorpay_payment_id": first["id"],
        "razorpay_subscription_id": reference,
        "razorpay_signature": razorpay.signature(first["id"], subscription_id=reference),
    }
    confirmed = await admin.post(f"/api/billing/orders/{order_id}/confirm", {"payment": proof})
    assert confirmed.status == 200, await confirmed.text()
    assert (await confirmed.json())["subscription_status"] == "active"
    charged = razorpay.event("subscription.charged", subscription=subscription, payment=first)
    _, same = await razorpay.deliver(charged)
    assert same["outcome"] == "no_change"  # the first charge, already confirmed
    assert await balance(admin) == CREDITS

    renewal = razorpay.charge_subscription(reference)
    renewed = razorpay.event("subscription.charged", subscription=subscription, payment=renewal)
    results = await asyncio.gather(
        *(razorpay.deliver(renewed, event_id="evt_Renewal00001") for _ in range(3))
    )
    assert sorted(body["outcome"] for _, body in results) == ["applied", "duplicate", "duplicate"]
    _, replayed_other_id = await razorpay.deliver(renewed)  # same payment, a new event id
    assert replayed_other_id["outcome"] == "no_change"
    assert await balance(admin) == 2 * CREDITS
    assert len(paid_events) == 1  # renewals are not new orders

    _, failed = await razorpay.deliver(
        razorpay.event("subscription.halted", subscription={**subscription, "status": "halted"})
    )
    assert failed["outcome"] == "applied"
    order = await status_of(admin, order_id)
    assert (order["status"], order["subscription_status"]) == ("paid", "past_due")
    assert await balance(admin) == 2 * CREDITS  # the credits stay for now

    cancelled = await admin.post(f"/api/billing/orders/{order_id}/cancel")
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["subscription_status"] == "cancelling"
    assert razorpay.requests[-1] == (
        "POST",
        f"/v1/subscriptions/{reference}/cancel",
        {"cancel_at_cycle_end": 1},
    )
    ended = {**subscription, "status": "cancelled"}
    _, outcome = await razorpay.deliver(
        razorpay.event("subscription.cancelled", subscription=ended)
    )
    assert outcome["outcome"] == "applied"
    assert (await status_of(admin, order_id))["subscription_status"] == "cancelled"


# -- refunds and disputes -----------------------------------------------------------------------


async def paid_order(admin: ApiClient, razorpay: FakeRazorpay, plan: str) -> tuple[str, str]:
    order_id, reference = await checkout(admin, plan)
    payment = razorpay.pay_order(reference)
    _, body = await razorpay.deliver(razorpay.event("payment.captured", payment=payment))
    assert body["outcome"] == "applied"
    return order_id, payment["id"]


async def test_an_admin_refund_goes_through_razorpay_and_takes_back_only_unspent_credits(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str, make_client: Callable[[], Any]
) -> None:
    order_id, payment_id = await paid_order(admin, razorpay, plan)
    spent = await admin.post(
        f"/api/admin/users/{admin.user['id']}/credits", {"amount": -400_000, "reason": "spent"}
    )
    assert spent.status == 201
    someone = await buyer(make_client, "mallory@example.com")
    path = f"/api/admin/orders/{order_id}/refund"
    assert (await someone.post(path, {"reason": "please"})).status == 403

    refunded = await admin.post(path, {"reason": "Customer asked"})
    assert refunded.status == 200, await refunded.text()
    assert (await refunded.json())["status"] == "refunded"
    [refund] = razorpay.refunds.values()
    assert (refund["payment_id"], refund["amount"]) == (payment_id, 49_900)
    assert refund["receipt"] and refund["notes"]["reason"] == "Customer asked"
    assert await balance(admin) == 0  # 100,000 were left; 400,000 had been spent
    async with admin.app[DB].read() as session:
        taken = await session.scalar(
            select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.user_id == admin.user["id"], LedgerEntry.kind == "refund"
            )
        )
    assert taken == -100_000

    # Razorpay's own notice of it changes nothing, and a second refund is refused.
    payment = razorpay.payments[payment_id]
    _, late = await razorpay.deliver(
        razorpay.event("refund.processed", refund=refund, payment=payment)
    )
    assert late["outcome"] == "no_change"
    assert (await admin.post(path, {"reason": "again"})).status == 409
    assert len(razorpay.refunds) == 1


async def test_a_retried_refund_with_the_same_key_refunds_once(
    admin: ApiClient,
    razorpay: FakeRazorpay,
    plan: str,
    fake_razorpay: tuple[FakeRazorpay, str],
) -> None:
    """Razorpay's refund API takes no idempotency key; the backend finds the refund an earlier
    try made (by its receipt) instead of refunding twice."""
    _, payment_id = await paid_order(admin, razorpay, plan)
    backend = razorpay_plugin.RazorpayBackend()
    config = razorpay_plugin.RazorpaySettings(
        key_id=razorpay.key_id,
        key_secret=razorpay.key_secret,
        api_base=fake_razorpay[1],
    )
    key = "refund-" + "x" * 32 + "-20000"  # longer than Razorpay's 40-character receipt
    first = await backend.refund(
        payment_reference=payment_id, amount=20_000, reason="r", idempotency_key=key, config=config
    )
    again = await backend.refund(
        payment_reference=payment_id, amount=20_000, reason="r", idempotency_key=key, config=config
    )
    other = await backend.refund(
        payment_reference=payment_id,
        amount=10_000,
        reason="r",
        idempotency_key=key + "0",
        config=config,
    )
    assert first == again != other
    assert sorted(r["amount"] for r in razorpay.refunds.values()) == [10_000, 20_000]


async def test_refunds_made_in_razorpays_dashboard_take_back_their_part_of_the_credits(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    order_id, payment_id = await paid_order(admin, razorpay, plan)
    payment = razorpay.payments[payment_id]

    def processed(refund_id: str, amount: int, refunded_total: int) -> dict[str, Any]:
        status = "full" if refunded_total == payment["amount"] else "partial"
        refund = {"id": refund_id, "entity": "refund", "amount": amount, "payment_id": payment_id}
        paid = {**payment, "amount_refunded": refunded_total, "refund_status": status}
        return razorpay.event("refund.processed", refund=refund, payment=paid)

    fifth = processed("rfnd_Partial0000001", 9_980, 9_980)  # a fifth of 499.00 INR
    _, body = await razorpay.deliver(fifth, event_id="evt_Refund0000001")
    _, again = await razorpay.deliver(fifth, event_id="evt_Refund0000002")  # re-sent, new id
    assert (body["outcome"], again["outcome"]) == ("applied", "no_change")
    assert (await status_of(admin, order_id))["status"] == "paid"
    assert await balance(admin) == CREDITS - CREDITS // 5

    _, body = await razorpay.deliver(processed("rfnd_Rest0000000001", 39_920, 49_900))
    assert body["outcome"] == "applied"
    assert (await status_of(admin, order_id))["status"] == "refunded"
    assert await balance(admin) == 0


async def test_an_admin_partial_refund_goes_through_razorpay_and_its_webhook_counts_once(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    order_id, payment_id = await paid_order(admin, razorpay, plan)
    path = f"/api/admin/orders/{order_id}/refund"
    part = await admin.post(path, {"reason": "Half a month unused", "amount": 9_980})
    assert part.status == 200, await part.text()
    assert (await part.json())["status"] == "paid"
    [refund] = razorpay.refunds.values()
    assert refund["amount"] == 9_980
    payment = razorpay.payments[payment_id]
    assert (payment["amount_refunded"], payment["refund_status"]) == (9_980, "partial")
    _, late = await razorpay.deliver(
        razorpay.event("refund.processed", refund=refund, payment=payment)
    )
    assert late["outcome"] == "no_change"
    assert await balance(admin) == CREDITS - CREDITS // 5

    rest = await admin.post(path, {"reason": "Closing the account"})
    assert rest.status == 200, await rest.text()
    assert (await rest.json())["status"] == "refunded"
    assert sorted(r["amount"] for r in razorpay.refunds.values()) == [9_980, 39_920]
    assert await balance(admin) == 0


async def test_a_dispute_freezes_the_orders_unspent_credits(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    order_id, payment_id = await paid_order(admin, razorpay, plan)
    await admin.post(
        f"/api/admin/users/{admin.user['id']}/credits", {"amount": -300_000, "reason": "spent"}
    )
    dispute = {
        "id": "disp_Fake000000001",
        "entity": "dispute",
        "payment_id": payment_id,
        "amount": 49_900,
        "currency": "INR",
        "reason_code": "chargeback",
        "phase": "chargeback",
        "status": "open",
    }
    event = razorpay.event(
        "payment.dispute.created", payment=razorpay.payments[payment_id], dispute=dispute
    )
    _, body = await razorpay.deliver(event, event_id="evt_Dispute00001")
    _, again = await razorpay.deliver(event, event_id="evt_Dispute00001")
    assert (body["outcome"], again["outcome"]) == ("applied", "duplicate")
    assert (await status_of(admin, order_id))["status"] == "disputed"
    assert await balance(admin) == 0
    frozen = [e for e in await order_entries(admin, order_id) if e.kind == "dispute"]
    assert [e.amount for e in frozen] == [-200_000]


# -- settings and the outgoing guard ------------------------------------------------------------


async def test_the_secrets_are_never_shown_and_a_wrong_key_is_a_clear_error(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    listed = await admin.get_json("/api/admin/plugins/razorpay")
    text = str(listed)
    assert razorpay.key_secret not in text and razorpay.webhook_secret not in text
    changed = await admin.patch(
        "/api/admin/plugins/razorpay", {"settings": {"key_secret": "not_the_right_one"}}
    )
    assert changed.status == 200, await changed.text()
    refused = await admin.post("/api/billing/checkout", {"plan_id": plan})
    assert refused.status in (400, 409, 502), await refused.text()
    assert "Razorpay refused the key" in (await refused.json())["error"]["message"]
    [order] = await admin.get_json("/api/billing/orders")
    assert order["status"] == "failed"  # void: it holds nothing


async def test_razorpay_calls_pass_the_outgoing_guard(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    outgoing.install(outgoing.OutgoingPolicy())  # production's policy, nothing allowed
    refused = await admin.post("/api/billing/checkout", {"plan_id": plan})
    assert refused.status == 502
    body = await refused.json()
    assert body["error"]["code"] == "outgoing_refused"
    assert "MULTINOTES_OUTGOING_ALLOW" in body["error"]["message"]
    assert razorpay.orders == {}


# -- the checkout page ------------------------------------------------------------------------


async def test_the_checkout_page_is_the_buyers_only_and_loads_razorpays_checkout(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str, make_client: Callable[[], Any]
) -> None:
    order_id, reference = await checkout(admin, plan)
    page = await admin.get(f"/billing/razorpay/checkout?ref={reference}")
    assert page.status == 200
    text = await page.text()
    assert f'data-order="{reference}"' in text and f'data-key="{razorpay.key_id}"' in text
    assert f'data-confirm-url="/api/billing/orders/{order_id}/confirm"' in text
    assert "499.00 INR" in text and razorpay.key_secret not in text
    policy = page.headers["Content-Security-Policy"]
    origin = razorpay.webhook_url.split("/api/")[0]
    assert (
        "script-src 'self' http://127.0.0.1:" in policy and "frame-src http://127.0.0.1:" in policy
    )
    assert origin not in policy  # Razorpay's origin, not this site's, is widened

    # The order page sends the buyer here.
    onward = await (await admin.get(f"/billing/pay?order={order_id}")).text()
    assert f"/billing/razorpay/checkout?ref={reference}" in onward

    other = await buyer(make_client, "other@example.com")
    assert (await other.get(f"/billing/razorpay/checkout?ref={reference}")).status == 404
    assert (await admin.get("/billing/razorpay/checkout?ref=../../v1/orders")).status == 404

    payment = razorpay.pay_order(reference)
    await razorpay.deliver(razorpay.event("payment.captured", payment=payment))
    async with admin.client.get(
        f"/billing/razorpay/checkout?ref={reference}", allow_redirects=False
    ) as done:
        assert (done.status, done.headers["Location"]) == (303, f"/billing/return?order={order_id}")


@pytest.mark.parametrize("plugins", [[("razorpay", razorpay_plugin), ("stripe", stripe_plugin)]])
async def test_with_two_backends_the_pricing_card_asks_which_one_pays(
    admin: ApiClient, razorpay: FakeRazorpay, plan: str
) -> None:
    pricing = await (await admin.get("/pricing")).text()
    assert "Pay with" in pricing
    stripe_choice = pricing.index('name="backend" value="stripe" checked')  # the default
    assert stripe_choice < pricing.index('name="backend" value="razorpay"')

    form = {"csrf_token": admin.csrf, "plan_id": plan, "backend": "razorpay"}
    async with admin.client.post("/billing/checkout", data=form, allow_redirects=False) as sent:
        assert sent.status == 303, await sent.text()
        order_id = sent.headers["Location"].removeprefix("/billing/pay?order=")
    [reference] = razorpay.orders
    assert (await status_of(admin, order_id))["backend"] == "razorpay"
    onward = await (await admin.get(f"/billing/pay?order={order_id}")).text()
    assert f"/billing/razorpay/checkout?ref={reference}" in onward

    unknown = {**form, "backend": "paypal"}
    async with admin.client.post("/billing/checkout", data=unknown) as refused:
        assert refused.status == 422
        assert "No enabled payment backend &#39;paypal&#39;." in await refused.text()
