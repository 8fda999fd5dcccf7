"""Disputes through Stripe (issue #14, item 10; Razorpay's are in tests/test_billing_razorpay.py):
``charge.dispute.created`` freezes the order's grant, taking back its credits as far as they are
unspent (never below zero), once however often it is delivered; after a partial refund only the
rest; a disputed order cannot be refunded again from the console's API."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

from pypdf import PdfReader

from multinotes.testing import ApiClient
from tests import test_billing as paying
from tests.fakes.stripe_server import FakeStripe
from tests.test_billing import CREDITS, balance, buyer, checkout, entries, session_id

fake_stripe = paying.fake_stripe
plugins = paying.plugins
settings = paying.settings
stripe = paying.stripe
plan = paying.plan


def dispute_event(stripe: FakeStripe, sid: str) -> dict[str, Any]:
    """Stripe's ``charge.dispute.created``: its object is the Dispute, naming the payment."""
    session = stripe.sessions[sid]
    dispute = {
        "id": "dp_test_0001",
        "object": "dispute",
        "amount": session["amount_total"],
        "currency": session["currency"],
        "charge": "ch_test_disputed",
        "payment_intent": session["payment_intent"],
        "reason": "fraudulent",
        "status": "needs_response",
        "metadata": {},
    }
    return stripe.event("charge.dispute.created", dispute)


async def paid_order(stripe: FakeStripe, customer: ApiClient, plan_id: str) -> tuple[str, str]:
    started = await checkout(customer, plan_id)
    sid = session_id(started["url"])
    status, body = await stripe.deliver(
        stripe.event("checkout.session.completed", stripe.complete(sid))
    )
    assert (status, body["outcome"]) == (200, "applied")
    return str(started["order_id"]), sid


async def spend(admin: ApiClient, customer: ApiClient, amount: int) -> None:
    response = await admin.post(
        f"/api/admin/users/{customer.user['id']}/credits", {"amount": -amount, "reason": "spent"}
    )
    assert response.status == 201, await response.text()


async def test_a_dispute_takes_back_only_the_unspent_credits_once(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    customer = await buyer(make_client, "disputer@example.com")
    order_id, sid = await paid_order(stripe, customer, plan["id"])
    assert await balance(customer) == CREDITS
    await spend(admin, customer, 300_000)

    event = dispute_event(stripe, sid)
    results = await asyncio.gather(*(stripe.deliver(event) for _ in range(3)))
    assert sorted(body["outcome"] for _, body in results) == ["applied", "duplicate", "duplicate"]
    order = await customer.get_json(f"/api/billing/orders/{order_id}")
    assert order["status"] == "disputed"
    assert await balance(customer) == 0  # 200,000 unspent taken; the 300,000 spent stay spent
    frozen = [e.amount for e in await entries(customer, order_id) if e.kind == "dispute"]
    assert frozen == [-200_000]

    # A second dispute event about the same payment (another id) changes nothing more.
    _, later = await stripe.deliver(dispute_event(stripe, sid))
    assert later["outcome"] == "no_change"
    assert await balance(customer) == 0
    # Nothing left to refund through the backend; the receipt says what happened.
    refused = await admin.post(f"/api/admin/orders/{order_id}/refund", {"reason": "dispute"})
    assert refused.status == 409 and stripe.refunds == []
    receipt = await customer.get(f"/api/billing/orders/{order_id}/receipt")
    text = PdfReader(io.BytesIO(await receipt.read())).pages[0].extract_text()
    assert "This order was disputed." in text


async def test_a_dispute_after_a_partial_refund_takes_only_the_rest(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    customer = await buyer(make_client, "partly@example.com")
    order_id, sid = await paid_order(stripe, customer, plan["id"])
    refunded = await admin.post(
        f"/api/admin/orders/{order_id}/refund", {"reason": "half", "amount": 500}
    )
    assert refunded.status == 200, await refunded.text()
    assert await balance(customer) == CREDITS // 2

    _, body = await stripe.deliver(dispute_event(stripe, sid))
    assert body["outcome"] == "applied"
    assert await balance(customer) == 0
    taken = sorted(e.amount for e in await entries(customer, order_id) if e.kind == "dispute")
    assert taken == [-(CREDITS // 2)]  # the half the refund did not take already
