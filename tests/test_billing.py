"""Money: plans, quotes, coupons, Stripe checkout and its signed webhooks (issue #14).

The Stripe plugin runs the official SDK against a local fake Stripe (tests/fakes/stripe_server)
that speaks Stripe's form-encoded REST API and signs webhooks as Stripe does. Credits arrive only
through a verified webhook, exactly once, whatever the order or number of deliveries.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pypdf import PdfReader
from sqlalchemy import func, select

from multinotes.billing.models import PlanPeriod, ProviderEvent
from multinotes.billing.tasks import expire_plans
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.plugins.billing import stripe as stripe_plugin
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from multinotes.wallet.models import LedgerEntry
from tests.fakes.stripe_server import FakeStripe

CREDITS = 500_000


@pytest.fixture
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def plugins() -> Any:
    return [("stripe", stripe_plugin)]


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], fake_stripe: tuple[FakeStripe, str]
) -> Settings:
    fake, url = fake_stripe
    return make_settings(
        plugins={
            "stripe": {
                "secret_key": fake.secret_key,
                "webhook_secret": fake.webhook_secret,
                "api_base": url,
            }
        }
    )


@pytest.fixture
async def stripe(api: ApiClient, fake_stripe: tuple[FakeStripe, str]) -> FakeStripe:
    fake, _ = fake_stripe
    fake.webhook_url = str(api.client.server.make_url("/api/billing/stripe/webhook"))
    return fake


@pytest.fixture
async def plan(admin: ApiClient) -> dict[str, Any]:
    response = await admin.post(
        "/api/admin/plans",
        {
            "name": "Starter",
            "kind": "credits",
            "credits": CREDITS,
            "price": 1000,
            "currency": "usd",
            "interval": "once",
            "duration_days": 30,
        },
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def buyer(make_client: Callable[[], Any], email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email)
    return client


async def balance(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["balance"])


async def entries(api: ApiClient, order_id: str) -> list[LedgerEntry]:
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(LedgerEntry).where(LedgerEntry.reference == f"order:{order_id}")
        )
        return list(rows)


async def checkout(api: ApiClient, plan_id: str, coupon: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"plan_id": plan_id}
    if coupon:
        body["coupon_code"] = coupon
    response = await api.post("/api/billing/checkout", body)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def refund_entries(api: ApiClient, order_id: str) -> list[LedgerEntry]:
    """The ledger entries of an order's refunds (one per refund: refund:<order>:<total>)."""
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.kind == "refund", LedgerEntry.reference.like(f"refund:{order_id}:%"))
            .order_by(LedgerEntry.id)
        )
        return list(rows)


def session_id(url: str) -> str:
    return url.rsplit("/", 1)[1]


# -- plans --------------------------------------------------------------------------------------


async def test_admin_creates_plans_and_anyone_lists_them(
    admin: ApiClient, make_client: Callable[[], Any], plan: dict[str, Any]
) -> None:
    assert plan["id"] and plan["currency"] == "USD" and plan["credits"] == CREDITS
    anonymous: ApiClient = await make_client()
    listed = await anonymous.get_json("/api/billing/plans")
    assert [p["name"] for p in listed] == ["Starter"]

    missing = await admin.post(
        "/api/admin/plans", {"name": "X", "kind": "credits", "price": 100, "currency": "USD"}
    )
    assert missing.status == 422
    assert "credits" in str((await missing.json())["error"]["fields"])
    renamed = await admin.patch(f"/api/admin/plans/{plan['id']}", {"name": "Starter plus"})
    assert renamed.status == 200 and (await renamed.json())["name"] == "Starter plus"
    blanked = await admin.patch(f"/api/admin/plans/{plan['id']}", {"description": None})
    assert blanked.status == 422  # left out means unchanged; null is not a description
    assert "description" in str((await blanked.json())["error"]["fields"])
    assert (await admin.post(f"/api/admin/plans/{plan['id']}/archive")).status == 200
    assert await anonymous.get_json("/api/billing/plans") == []

    someone = await buyer(make_client, "someone@example.com")
    refused = await someone.post(
        "/api/admin/plans",
        {"name": "Free", "kind": "credits", "credits": 1, "price": 1, "currency": "USD"},
    )
    assert refused.status == 403


async def test_quote_applies_a_capped_percentage_coupon_with_bonus_credits(
    admin: ApiClient, plan: dict[str, Any]
) -> None:
    created = await admin.post(
        "/api/admin/coupons",
        {"code": "launch", "percent_off": 50, "max_discount": 300, "bonus_credits": 1000},
    )
    assert created.status == 201, await created.text()
    quote = await (
        await admin.post("/api/billing/quote", {"plan_id": plan["id"], "coupon_code": "LAUNCH"})
    ).json()
    assert quote == {
        "plan_id": plan["id"],
        "currency": "USD",
        "subtotal": 1000,
        "discount": 300,
        "total": 700,
        "credits": CREDITS,
        "bonus_credits": 1000,
        "coupon_code": "LAUNCH",
        "seats": 1,
    }
    await admin.post("/api/admin/coupons", {"code": "BIG", "amount_off": 100, "min_order": 5000})
    too_small = await admin.post(
        "/api/billing/quote", {"plan_id": plan["id"], "coupon_code": "big"}
    )
    assert too_small.status == 422
    assert "coupon_code" in (await too_small.json())["error"]["fields"]
    unknown = await admin.post("/api/billing/quote", {"plan_id": "nope"})
    assert (await unknown.json())["error"]["fields"] == {"plan_id": unknown_plan_message()}


def unknown_plan_message() -> str:
    return "No such plan (or it is no longer sold)."


# -- checkout and webhooks ----------------------------------------------------------------------


async def test_checkout_pays_on_stripe_and_only_the_signed_webhook_grants_credits(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    before = await balance(admin)
    started = await checkout(admin, plan["id"])
    assert started["url"].endswith("/pay/" + session_id(started["url"]))
    method, path, params, key = stripe.requests[-1]
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert key == f"checkout-{started['order_id']}"
    assert params["line_items"][0]["price_data"]["unit_amount"] == "1000"
    assert params["metadata"]["order_id"] == started["order_id"]

    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert order["status"] == "pending" and await balance(admin) == before
    # Coming back from the payment page proves nothing: still pending, no credits.
    assert (await admin.get(f"/billing/return?order={started['order_id']}")).status in (200, 404)
    assert await balance(admin) == before

    async with admin.client.session.post(
        started["url"], allow_redirects=False
    ) as paid:  # the buyer presses Pay; the fake sends the signed webhook
        assert paid.status == 303
    assert stripe.sent[-1][1] == 200
    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert order["status"] == "paid" and order["paid_at"]
    # Bought from the trial: the trial's leftover expires and the plan's credits apply.
    assert await balance(admin) == CREDITS
    by_kind = {e.kind: e.amount for e in await entries(admin, started["order_id"])}
    assert by_kind == {"expiry": -before, "purchase": CREDITS}

    other = await buyer(make_client, "other@example.com")
    assert (await other.get(f"/api/billing/orders/{started['order_id']}")).status == 404
    assert await other.get_json("/api/billing/orders") == []
    assert [o["id"] for o in await admin.get_json("/api/billing/orders")] == [started["order_id"]]


async def test_forged_and_stale_webhooks_are_refused_and_change_nothing(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    started = await checkout(admin, plan["id"])
    session = stripe.complete(session_id(started["url"]))
    forged = stripe.event("checkout.session.completed", session)
    status, _ = await stripe.deliver(forged, secret="whsec_someone_else_entirely")
    assert status == 400
    stale = stripe.event("checkout.session.completed", session)
    status, _ = await stripe.deliver(stale, timestamp=int(time.time()) - 301)
    assert status == 400
    async with (
        aiohttp.ClientSession() as anyone,
        anyone.post(stripe.webhook_url, data=b'{"id": "evt_1", "type": "x"}') as unsigned,
    ):
        assert unsigned.status == 400
    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert order["status"] == "pending"
    assert await entries(admin, started["order_id"]) == []
    async with admin.app[DB].read() as db:
        assert await db.scalar(select(func.count()).select_from(ProviderEvent)) == 0


async def test_the_same_event_ten_times_at_once_grants_once(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    started = await checkout(admin, plan["id"])
    event = stripe.event("checkout.session.completed", stripe.complete(session_id(started["url"])))
    results = await asyncio.gather(*(stripe.deliver(event) for _ in range(10)))
    assert [status for status, _ in results] == [200] * 10
    outcomes = sorted(body["outcome"] for _, body in results)
    assert outcomes == ["applied"] + ["duplicate"] * 9
    assert await balance(admin) == CREDITS
    kinds = sorted(e.kind for e in await entries(admin, started["order_id"]))
    assert kinds == ["expiry", "purchase"]
    async with admin.app[DB].read() as db:
        stored = list(await db.scalars(select(ProviderEvent)))
    assert len(stored) == 1 and '"checkout.session.completed"' in stored[0].raw


async def test_events_in_any_order_reach_the_same_end_state(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    started = await checkout(admin, plan["id"])
    sid = session_id(started["url"])
    session = stripe.complete(sid)
    # The payment intent's event lands before the session's: both mean the same payment.
    status, first = await stripe.deliver(
        stripe.event("payment_intent.succeeded", stripe.payment_intent(sid))
    )
    assert (status, first["outcome"]) == (200, "applied")
    status, second = await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert (status, second["outcome"]) == (200, "no_change")
    assert await balance(admin) == CREDITS
    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert order["status"] == "paid"
    # An expiry notice arriving late does not undo a payment.
    _, late = await stripe.deliver(stripe.event("checkout.session.expired", session))
    assert late["outcome"] == "no_change"
    assert (await admin.get_json(f"/api/billing/orders/{started['order_id']}"))["status"] == "paid"


async def test_unknown_event_types_are_acknowledged_and_ignored(
    admin: ApiClient, stripe: FakeStripe
) -> None:
    status, body = await stripe.deliver(stripe.event("customer.created", {"id": "cus_1"}))
    assert (status, body) == (200, {"received": True, "outcome": "ignored"})


async def test_a_payment_of_the_wrong_amount_grants_nothing(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    before = await balance(admin)
    started = await checkout(admin, plan["id"])
    session = {**stripe.complete(session_id(started["url"])), "amount_total": 1}
    _, body = await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert body["outcome"] == "amount_mismatch"
    assert await balance(admin) == before


async def test_a_coupon_at_its_limit_goes_to_one_of_two_buyers(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    await admin.post(
        "/api/admin/coupons", {"code": "ONCE", "percent_off": 10, "max_uses": 1, "bonus_credits": 7}
    )
    ann = await buyer(make_client, "ann@example.com")
    bob = await buyer(make_client, "bob@example.com")
    body = {"plan_id": plan["id"], "coupon_code": "once"}
    responses = await asyncio.gather(
        ann.post("/api/billing/checkout", body), bob.post("/api/billing/checkout", body)
    )
    assert sorted(r.status for r in responses) == [201, 422]
    refused = next(r for r in responses if r.status == 422)
    assert "used up" in (await refused.json())["error"]["fields"]["coupon_code"]
    winner = ann if responses[0].status == 201 else bob
    started = await next(r for r in responses if r.status == 201).json()
    coupons = await admin.get_json("/api/admin/coupons")
    assert coupons[0]["uses"] == 0  # counted when the payment succeeds, not before
    session = stripe.complete(session_id(started["url"]))
    assert session["amount_total"] == 900
    await stripe.deliver(stripe.event("checkout.session.completed", session))
    await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert (await admin.get_json("/api/admin/coupons"))[0]["uses"] == 1
    assert await balance(winner) == CREDITS + 7


async def test_a_refund_takes_back_only_the_unspent_credits(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    started = await checkout(admin, plan["id"])
    sid = session_id(started["url"])
    await stripe.deliver(stripe.event("checkout.session.completed", stripe.complete(sid)))
    held = await balance(admin)
    spend = held - 200_000  # all but 200,000 credits are spent
    deducted = await admin.post(
        f"/api/admin/users/{admin.user['id']}/credits", {"amount": -spend, "reason": "spent"}
    )
    assert deducted.status == 201
    refunded = stripe.charge(sid, refunded=True)
    _, body = await stripe.deliver(stripe.event("charge.refunded", refunded))
    assert body["outcome"] == "applied"
    assert await balance(admin) == 0  # 200,000 taken back, never below zero
    refund = await refund_entries(admin, started["order_id"])
    assert [(e.amount, e.reference) for e in refund] == [
        (-200_000, f"refund:{started['order_id']}:1000")
    ]
    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert order["status"] == "refunded"


# -- pages --------------------------------------------------------------------------------------


async def test_pages_pricing_to_return_page_confirming_then_paid(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    await admin.post("/api/admin/coupons", {"code": "TEN", "amount_off": 100})
    anonymous: ApiClient = await make_client()
    pricing = await (await anonymous.get("/pricing")).text()
    assert "Starter" in pricing and "10.00 USD" in pricing and "Log in to buy" in pricing
    quote = await (await admin.get(f"/pricing/quote?plan_id={plan['id']}&coupon_code=ten")).text()
    assert "\u2212 1.00 USD" in quote and "9.00 USD" in quote
    bad = await (await admin.get(f"/pricing/quote?plan_id={plan['id']}&coupon_code=nope")).text()
    assert "No such coupon." in bad

    form = {"csrf_token": admin.csrf, "plan_id": plan["id"], "coupon_code": "ten"}
    async with admin.client.post("/billing/checkout", data=form, allow_redirects=False) as sent:
        assert sent.status == 303
        order_id = sent.headers["Location"].removeprefix("/billing/pay?order=")
    # The form lands on our own page, which sends the browser on to Stripe's.
    onward = await (await admin.get(f"/billing/pay?order={order_id}")).text()
    [session] = stripe.sessions.values()
    assert f'href="{session["url"]}"' in onward and session["amount_total"] == 900
    assert session["metadata"]["order_id"] == order_id

    waiting = await (await admin.get(f"/billing/return?order={order_id}")).text()
    assert "Confirming your payment" in waiting
    other = await buyer(make_client, "nosy@example.com")
    assert (await other.get(f"/billing/return?order={order_id}")).status == 404

    await stripe.deliver(stripe.event("checkout.session.completed", stripe.complete(session["id"])))
    done = await (await admin.get(f"/billing/return/status?order={order_id}")).text()
    assert "Paid." in done and "500,000" in done
    billing_page = await (await admin.get("/billing")).text()
    assert "Starter" in billing_page and "9.00 USD" in billing_page and ">paid<" in billing_page


# -- subscriptions and refunds ------------------------------------------------------------------


async def test_a_subscription_renews_survives_a_failed_renewal_and_cancels(
    admin: ApiClient, stripe: FakeStripe
) -> None:
    monthly = await (
        await admin.post(
            "/api/admin/plans",
            {
                "name": "Monthly",
                "kind": "credits",
                "credits": CREDITS,
                "price": 1500,
                "currency": "USD",
                "interval": "month",
            },
        )
    ).json()
    started = await checkout(admin, monthly["id"])
    _, _, params, _ = stripe.requests[-1]
    assert params["mode"] == "subscription"
    assert params["line_items"][0]["price_data"]["recurring"] == {"interval": "month"}
    sid = session_id(started["url"])
    session = stripe.complete(sid)

    # The first invoice lands before the session's event: the same payment, granted once.
    _, first = await stripe.deliver(
        stripe.event("invoice.paid", stripe.invoice(sid, "subscription_create"))
    )
    _, again = await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert (first["outcome"], again["outcome"]) == ("applied", "no_change")
    assert await balance(admin) == CREDITS
    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert (order["status"], order["subscription_status"]) == ("paid", "active")

    renewal = stripe.invoice(sid, "subscription_cycle")
    _, renewed = await stripe.deliver(stripe.event("invoice.paid", renewal))
    _, twice = await stripe.deliver(stripe.event("invoice.payment_succeeded", renewal))
    assert (renewed["outcome"], twice["outcome"]) == ("applied", "no_change")
    assert await balance(admin) == 2 * CREDITS
    async with admin.app[DB].read() as db:
        period = await db.get(PlanPeriod, admin.user["id"])
    assert period is not None and period.expires_at is not None
    assert period.expires_at - utcnow() > timedelta(days=59)  # two months paid

    failed = stripe.invoice(sid, "subscription_cycle", paid=False)
    _, outcome = await stripe.deliver(stripe.event("invoice.payment_failed", failed))
    assert outcome["outcome"] == "applied"
    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert order["subscription_status"] == "past_due"  # the credits stay for now
    assert await balance(admin) == 2 * CREDITS

    cancelled = await admin.post(f"/api/billing/orders/{started['order_id']}/cancel")
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["subscription_status"] == "cancelling"
    assert stripe.subscriptions[session["subscription"]]["cancel_at_period_end"] is True
    deleted = {**stripe.subscriptions[session["subscription"]], "status": "canceled"}
    await stripe.deliver(stripe.event("customer.subscription.deleted", deleted))
    order = await admin.get_json(f"/api/billing/orders/{started['order_id']}")
    assert order["subscription_status"] == "cancelled"
    assert (await admin.post(f"/api/billing/orders/{started['order_id']}/cancel")).status == 409

    portal = await admin.post("/api/billing/portal")
    assert portal.status == 200
    assert (await portal.json())["url"].endswith(f"/portal/{session['customer']}")
    assert stripe.portal_sessions[-1]["return_url"].endswith("/billing")


async def test_an_admin_refund_goes_through_stripe_and_takes_back_only_unspent_credits(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    started = await checkout(admin, plan["id"])
    sid = session_id(started["url"])
    await stripe.deliver(stripe.event("checkout.session.completed", stripe.complete(sid)))
    spent = await admin.post(
        f"/api/admin/users/{admin.user['id']}/credits", {"amount": -400_000, "reason": "spent"}
    )
    assert spent.status == 201
    someone = await buyer(make_client, "mallory@example.com")
    path = f"/api/admin/orders/{started['order_id']}/refund"
    assert (await someone.post(path, {"reason": "please"})).status == 403
    assert (await admin.post(path, {})).status == 422

    refunded = await admin.post(path, {"reason": "Customer asked"})
    assert refunded.status == 200, await refunded.text()
    assert (await refunded.json())["status"] == "refunded"
    [refund] = stripe.refunds
    assert refund["amount"] == 1000
    assert refund["payment_intent"] == stripe.sessions[sid]["payment_intent"]
    assert await balance(admin) == 0  # 100,000 were left; 400,000 had been spent
    _, late = await stripe.deliver(
        stripe.event("charge.refunded", stripe.charge(sid, refunded=True))
    )
    assert late["outcome"] == "no_change"
    assert (await admin.post(path, {"reason": "again"})).status == 409
    assert len(stripe.refunds) == 1


async def test_billing_page_cancels_a_subscription_and_opens_the_portal(
    admin: ApiClient, stripe: FakeStripe
) -> None:
    yearly = await (
        await admin.post(
            "/api/admin/plans",
            {
                "name": "Yearly",
                "kind": "credits",
                "credits": CREDITS,
                "price": 9900,
                "currency": "EUR",
                "interval": "year",
            },
        )
    ).json()
    started = await checkout(admin, yearly["id"])
    session = stripe.complete(session_id(started["url"]))
    await stripe.deliver(stripe.event("checkout.session.completed", session))
    page = await (await admin.get("/billing")).text()
    assert "Yearly" in page and "99.00 EUR" in page and "subscription active" in page
    assert "Cancel subscription" in page

    form = {"csrf_token": admin.csrf}
    async with admin.client.post(
        f"/billing/orders/{started['order_id']}/cancel", data=form, allow_redirects=False
    ) as sent:
        assert (sent.status, sent.headers["Location"]) == (303, "/billing")
    assert stripe.subscriptions[session["subscription"]]["cancel_at_period_end"] is True
    page = await (await admin.get("/billing")).text()
    assert "subscription cancelling" in page and "Cancel subscription" not in page

    async with admin.client.post("/billing/portal", data=form) as portal:
        assert portal.status == 200
        assert f"/portal/{session['customer']}" in await portal.text()


async def test_a_paid_order_has_a_pdf_receipt_with_the_seller_and_tax_line(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    seller = {
        "name": "Multinotes Ĝmbh",
        "address": "1 Rue de l'Été\n75001 Paris",
        "tax_id": "FR123",
        "tax_label": "VAT",
        "tax_percent": 20,
    }
    saved = await admin.request("PUT", "/api/admin/billing/seller", json=seller)
    assert saved.status == 200, await saved.text()
    await admin.post("/api/admin/coupons", {"code": "HALF", "percent_off": 50})
    started = await checkout(admin, plan["id"], "HALF")
    receipt_path = f"/api/billing/orders/{started['order_id']}/receipt"
    assert (await admin.get(receipt_path)).status == 404  # not paid yet
    await stripe.deliver(
        stripe.event("checkout.session.completed", stripe.complete(session_id(started["url"])))
    )

    response = await admin.get(receipt_path)
    assert response.status == 200
    assert response.content_type == "application/pdf"
    text = "".join(
        page.extract_text() for page in PdfReader(io.BytesIO(await response.read())).pages
    )
    for expected in (
        "Receipt",
        started["order_id"],
        "Multinotes Ĝmbh",
        "Rue de l'Été",
        "FR123",
        "Starter: 500,000 credits",
        "10.00 USD",
        "-5.00 USD",
        "5.00 USD",
        "of which VAT 20%",
        "0.83 USD",
        "admin@example.com",
    ):
        assert expected in text, expected
    other = await buyer(make_client, "peeker@example.com")
    assert (await other.get(receipt_path)).status == 404
    page = await (await admin.get("/billing")).text()
    assert f'href="{receipt_path}"' in page


# -- referrals ----------------------------------------------------------------------------------


async def test_a_referral_pays_both_once_on_the_referees_first_paid_order(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    page = await (await admin.get("/billing")).text()
    link = re.search(r'id="referral-url" value="([^"]+)"', page)
    assert link is not None
    path = link.group(1).split("://", 1)[1].split("/", 1)[1]
    referrer_before = await balance(admin)

    friend: ApiClient = await make_client()
    async with friend.client.get("/" + path, allow_redirects=False) as followed:
        assert (followed.status, followed.headers["Location"]) == (303, "/register")
    await friend.register_and_login("friend@example.com")
    # The referrer's own link does nothing for them.
    async with admin.client.get("/" + path, allow_redirects=False):
        pass

    for _ in range(2):  # the bonus comes with the first paid order only
        started = await checkout(friend, plan["id"])
        session = stripe.complete(session_id(started["url"]))
        event = stripe.event("checkout.session.completed", session)
        await asyncio.gather(stripe.deliver(event), stripe.deliver(event))
    assert await balance(friend) == 2 * CREDITS + 50_000
    assert await balance(admin) == referrer_before + 50_000
    async with admin.app[DB].read() as db:
        bonuses = list(
            await db.scalars(select(LedgerEntry).where(LedgerEntry.reason == "Referral bonus"))
        )
    assert sorted(e.reference for e in bonuses) == sorted(
        [f"referral-referee:{friend.user['id']}", f"referral-referrer:{friend.user['id']}"]
    )


async def test_leftover_credits_expire_after_the_grace_period_as_a_ledger_entry(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    started = await checkout(admin, plan["id"])
    session = stripe.complete(session_id(started["url"]))
    await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert await balance(admin) == CREDITS
    db = admin.app[DB]

    async def plan_ended(days_ago: int) -> None:
        async with db.transaction() as s:
            period = await s.get(PlanPeriod, admin.user["id"])
            assert period is not None
            period.expires_at = utcnow() - timedelta(days=days_ago)

    await plan_ended(6)  # within the 7-day grace period: still usable
    assert await expire_plans(admin.app) == 0
    assert await balance(admin) == CREDITS
    await plan_ended(8)
    assert await expire_plans(admin.app) == 1
    assert await expire_plans(admin.app) == 0  # once
    assert await balance(admin) == 0
    async with db.read() as s:
        [expired] = list(
            await s.scalars(
                select(LedgerEntry).where(
                    LedgerEntry.user_id == admin.user["id"],
                    LedgerEntry.reason == "Plan credits expired (after the grace period)",
                )
            )
        )
        assert (expired.kind, expired.amount) == ("expiry", -CREDITS)
        period = await s.get(PlanPeriod, admin.user["id"])
        assert period is not None and period.plan_id is None
