"""An administrator marks an order paid by bank transfer (issue #14, item 13).

The buyer opened an order (through the fake Stripe, as in tests/test_billing.py) and paid it
outside Stripe; the operator records the transfer: amount (exactly the order's total), the bank's
reference and a note. The order is then paid through core's state machine like a webhook would
pay it: credits once with the ledger reference ``order:<id>``, the coupon use counted, a
provider event ``manual`` kept with the record, an audit entry. Repeating it, or two
administrators at once, grants nothing more; a webhook about the same order afterwards neither.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select

from multinotes.audit import AuditEntry
from multinotes.billing.models import ProviderEvent
from multinotes.keys import DB
from multinotes.testing import ApiClient
from tests import test_billing as paying
from tests.fakes.stripe_server import FakeStripe
from tests.test_billing import CREDITS, balance, buyer, checkout, entries, session_id
from tests.test_billing_console import page_text, post_form

fake_stripe = paying.fake_stripe
plugins = paying.plugins
settings = paying.settings
stripe = paying.stripe
plan = paying.plan


def mark_paid_path(order_id: str) -> str:
    return f"/api/admin/orders/{order_id}/mark-paid"


async def manual_events(api: ApiClient, order_id: str) -> list[ProviderEvent]:
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(ProviderEvent).where(
                ProviderEvent.order_id == order_id, ProviderEvent.backend == "manual"
            )
        )
        return list(rows)


async def audit_entries(api: ApiClient, order_id: str) -> list[AuditEntry]:
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "billing.order_marked_paid", AuditEntry.target_id == order_id
            )
        )
        return list(rows)


async def test_an_admin_marks_a_bank_transfer_paid_once_and_the_buyer_gets_the_credits(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    await admin.post("/api/admin/coupons", {"code": "WIRE", "amount_off": 100, "bonus_credits": 9})
    customer = await buyer(make_client, "wire@example.com")
    started = await checkout(customer, plan["id"], "wire")
    order_id = started["order_id"]

    # Only an administrator records payments; the buyer cannot pay their own order this way.
    body = {"amount": 900, "reference": "BANK-2026-0042", "note": "Seen on the statement"}
    assert (await customer.post(mark_paid_path(order_id), body)).status == 403

    # Not the order's total (1000 less the 100 coupon): refused, nothing written.
    wrong = await admin.post(mark_paid_path(order_id), {**body, "amount": 1000})
    assert wrong.status == 422
    error = (await wrong.json())["error"]
    assert "9.00 USD" in error["fields"]["amount"]
    for bad in ({**body, "reference": "  "}, {**body, "amount": 0}, {**body, "extra": 1}):
        assert (await admin.post(mark_paid_path(order_id), bad)).status == 422
    assert (await admin.post(mark_paid_path("nosuchorder"), body)).status == 404
    assert (await customer.get_json(f"/api/billing/orders/{order_id}"))["status"] == "pending"
    assert await manual_events(admin, order_id) == []

    paid = await admin.post(mark_paid_path(order_id), body)
    assert paid.status == 200, await paid.text()
    order = await paid.json()
    assert (order["status"], order["id"]) == ("paid", order_id) and order["paid_at"]
    assert await balance(customer) == CREDITS + 9  # the plan's credits and the coupon's bonus
    granted = await entries(customer, order_id)
    assert sorted((e.kind, e.amount) for e in granted if e.amount > 0) == [
        ("bonus", 9),
        ("purchase", CREDITS),
    ]
    assert (await admin.get_json("/api/admin/coupons"))[0]["uses"] == 1
    (event,) = await manual_events(admin, order_id)
    assert (event.type, event.provider_type, event.outcome) == (
        "payment.succeeded",
        "bank_transfer",
        "applied",
    )
    raw = json.loads(event.raw)
    assert (raw["amount"], raw["currency"], raw["reference"], raw["note"]) == (
        900,
        "USD",
        "BANK-2026-0042",
        "Seen on the statement",
    )
    assert raw["recorded_by"] == admin.user["id"]
    (entry,) = await audit_entries(admin, order_id)
    assert entry.actor_id == admin.user["id"]
    assert entry.details["reference"] == "BANK-2026-0042"

    # Again (a double click, a retried request): the paid order, nothing more granted.
    again = await admin.post(mark_paid_path(order_id), body)
    assert again.status == 200 and (await again.json())["status"] == "paid"
    # The buyer also finishes the Stripe checkout later: its webhook grants nothing either.
    session = stripe.complete(session_id(started["url"]))
    status, late = await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert (status, late["outcome"]) == (200, "no_change")
    assert await balance(customer) == CREDITS + 9
    assert len(await audit_entries(admin, order_id)) == 1
    assert (await admin.get_json("/api/admin/coupons"))[0]["uses"] == 1
    # The receipt says how it was paid.
    receipt = await customer.get(f"/api/billing/orders/{order_id}/receipt")
    assert receipt.status == 200
    text = PdfReader(io.BytesIO(await receipt.read())).pages[0].extract_text()
    assert "Bank transfer" in text and "9.00 USD" in text and "Stripe" not in text


async def test_two_admins_recording_the_same_transfer_at_once_grant_once(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    customer = await buyer(make_client, "twice@example.com")
    order_id = (await checkout(customer, plan["id"]))["order_id"]
    body = {"amount": 1000, "reference": "TRX-1"}
    answers = await asyncio.gather(*(admin.post(mark_paid_path(order_id), body) for _ in range(5)))
    assert [a.status for a in answers] == [200] * 5
    assert await balance(customer) == CREDITS
    assert [e.kind for e in await entries(customer, order_id) if e.amount > 0] == ["purchase"]
    assert len(await manual_events(admin, order_id)) == 1
    assert len(await audit_entries(admin, order_id)) == 1


async def test_an_order_its_provider_paid_cannot_be_marked_paid_and_nothing_is_written(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    customer = await buyer(make_client, "card@example.com")
    started = await checkout(customer, plan["id"])
    session = stripe.complete(session_id(started["url"]))
    await stripe.deliver(stripe.event("checkout.session.completed", session))
    refused = await admin.post(
        mark_paid_path(started["order_id"]), {"amount": 1000, "reference": "TRX-2"}
    )
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "order_not_payable"
    assert await balance(customer) == CREDITS
    assert await manual_events(admin, started["order_id"]) == []
    assert await audit_entries(admin, started["order_id"]) == []


async def test_the_console_order_page_records_a_bank_transfer(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    customer = await buyer(make_client, "console-wire@example.com")
    order_id = (await checkout(customer, plan["id"]))["order_id"]
    path = f"/admin/billing/orders/{order_id}"
    before = await balance(customer)
    text = await page_text(admin, path)
    assert 'id="mark-paid-form"' in text and "data-confirm=" in text
    assert 'placeholder="10.00"' in text

    # Every field in error at once; what was typed stays; nothing paid.
    bad = await post_form(admin, f"{path}/mark-paid", {"amount": "12.00", "reference": ""})
    assert bad.status == 422
    page = await bad.text()
    assert 'id="paid-amount-error"' in page and "10.00 USD" in page
    assert 'id="paid-reference-error"' in page and 'value="12.00"' in page
    typo = await post_form(admin, f"{path}/mark-paid", {"amount": "ten", "reference": "X"})
    assert typo.status == 422 and "Enter an amount such as 10.00." in await typo.text()
    assert await balance(customer) == before and await manual_events(admin, order_id) == []

    sent = await post_form(
        admin,
        f"{path}/mark-paid",
        {"amount": "10.00", "reference": "IBAN-REF-7", "note": "Arrived Monday"},
    )
    assert (sent.status, sent.headers["Location"]) == (303, path)
    shown = await page_text(admin, path)
    assert "Marked paid: 10.00 USD by bank transfer (IBAN-REF-7)" in shown
    assert 'class="badge order-paid"' in shown
    assert "bank_transfer" in shown and "IBAN-REF-7" in shown  # the record, in the events
    assert 'id="mark-paid-form"' not in shown  # a paid order offers no second payment
    assert await balance(customer) == CREDITS  # the trial's leftover expired as the plan began

    # The form posted again (a second tab): nothing more.
    again = await post_form(
        admin, f"{path}/mark-paid", {"amount": "10.00", "reference": "IBAN-REF-7"}
    )
    assert again.status == 303
    assert "already recorded" in await page_text(admin, path)
    assert [e.kind for e in await entries(customer, order_id) if e.amount > 0] == ["purchase"]

    # Only administrators reach it.
    assert (await post_form(customer, f"{path}/mark-paid", {"amount": "10.00"})).status == 403


async def test_a_subscription_order_cannot_be_paid_by_bank_transfer(
    admin: ApiClient, stripe: FakeStripe, make_client: Callable[[], Any]
) -> None:
    monthly = await (
        await admin.post(
            "/api/admin/plans",
            {
                "name": "Monthly",
                "kind": "credits",
                "credits": CREDITS,
                "price": 500,
                "currency": "usd",
                "interval": "month",
            },
        )
    ).json()
    customer = await buyer(make_client, "monthly@example.com")
    order_id = (await checkout(customer, monthly["id"]))["order_id"]
    refused = await admin.post(mark_paid_path(order_id), {"amount": 500, "reference": "TRX-3"})
    assert refused.status == 409
    error = (await refused.json())["error"]
    assert error["code"] == "order_not_payable" and "subscription" in error["message"]
    assert (await customer.get_json(f"/api/billing/orders/{order_id}"))["status"] == "pending"
    assert await manual_events(admin, order_id) == []
    # The console offers no form for it.
    assert 'id="mark-paid-form"' not in await page_text(admin, f"/admin/billing/orders/{order_id}")
