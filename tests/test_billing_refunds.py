"""Partial refunds (issue #14 item 10): an administrator refunds part of an order through
Stripe, or Stripe reports a refund made in its dashboard; either way the order's credits
(plan and coupon bonus) are taken back in proportion to the money, only as far as they are
still unspent. The balance never goes below zero: what was already spent is the refund's
recorded shortfall (there is no debt rule). Each refund is one ledger entry with a reference,
and the same refund seen twice (the admin's call, then Stripe's ``charge.refunded``) counts once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from multinotes.billing import clawback
from multinotes.billing.models import ProviderEvent
from multinotes.billing.refund_models import OrderRefund
from multinotes.keys import DB
from multinotes.plugins.billing import stripe as stripe_plugin
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from multinotes.wallet.models import LedgerEntry
from tests.fakes.stripe_server import FakeStripe

CREDITS = 500_000
BONUS = 100_000


@pytest.fixture
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await fake.settled()
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
async def paid(admin: ApiClient, stripe: FakeStripe) -> dict[str, Any]:
    """A paid order: 500,000 credits plus a 100,000 coupon bonus for 9.00 USD."""
    plan = await (
        await admin.post(
            "/api/admin/plans",
            {
                "name": "Pack",
                "kind": "credits",
                "credits": CREDITS,
                "price": 1000,
                "currency": "USD",
            },
        )
    ).json()
    coupon = await admin.post(
        "/api/admin/coupons", {"code": "BONUS", "amount_off": 100, "bonus_credits": BONUS}
    )
    assert coupon.status == 201
    response = await admin.post(
        "/api/billing/checkout", {"plan_id": plan["id"], "coupon_code": "bonus"}
    )
    started = await response.json()
    sid = started["url"].rsplit("/", 1)[1]
    _, body = await stripe.deliver(stripe.event("checkout.session.completed", stripe.complete(sid)))
    assert body["outcome"] == "applied"
    return {"order_id": started["order_id"], "session": sid}


async def available(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["available"])


async def spend_down_to(api: ApiClient, left: int) -> None:
    assert api.user is not None
    spent = await available(api) - left
    response = await api.post(
        f"/api/admin/users/{api.user['id']}/credits", {"amount": -spent, "reason": "spent"}
    )
    assert response.status == 201


async def refund(api: ApiClient, order_id: str, **body: Any) -> Any:
    return await api.post(f"/api/admin/orders/{order_id}/refund", {"reason": "asked", **body})


async def refund_ledger(api: ApiClient, order_id: str) -> list[tuple[int, str]]:
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.kind == "refund", LedgerEntry.reference.like(f"refund:{order_id}:%"))
            .order_by(LedgerEntry.id)
        )
        return [(e.amount, e.reference or "") for e in rows]


async def test_partial_refunds_take_back_credits_in_proportion_never_below_zero(
    admin: ApiClient, stripe: FakeStripe, paid: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    order_id = paid["order_id"]
    granted = CREDITS + BONUS  # for a total of 900 cents
    await spend_down_to(admin, 250_000)
    stripe.hold_webhooks = True  # Stripe's own events come after (the next test: before)

    # A third of the money: a third of the credits, all still available.
    first = await refund(admin, order_id, amount=300)
    assert first.status == 200, await first.text()
    assert (await first.json())["status"] == "paid"  # partly refunded: still paid
    assert stripe.refunds[-1]["amount"] == 300
    assert await available(admin) == 250_000 - granted // 3

    # Half the money more: 500,000 due in all, 300,000 now; only 50,000 are left to take.
    second = await refund(admin, order_id, amount=450)
    assert second.status == 200, await second.text()
    assert await available(admin) == 0

    # More than is left to refund: refused before Stripe is asked.
    too_much = await refund(admin, order_id, amount=200)
    assert too_much.status == 422
    assert "amount" in (await too_much.json())["error"]["fields"]
    assert len(stripe.refunds) == 2

    # The rest: the order is refunded; nothing is left to take back, all of it a shortfall.
    last = await refund(admin, order_id)
    assert last.status == 200
    assert (await last.json())["status"] == "refunded"
    assert [r["amount"] for r in stripe.refunds] == [300, 450, 150]
    assert await available(admin) == 0

    refunds = await admin.get_json(f"/api/admin/orders/{order_id}/refunds")
    assert [
        (r["amount"], r["refunded_total"], r["credits_due"], r["credits_taken"], r["shortfall"])
        for r in refunds
    ] == [
        (300, 300, 200_000, 200_000, 0),
        (450, 750, 300_000, 50_000, 250_000),
        (150, 900, 100_000, 0, 100_000),
    ]
    assert [r["provider_refund_id"] for r in refunds] == [r["id"] for r in stripe.refunds]
    assert await refund_ledger(admin, order_id) == [
        (-200_000, f"refund:{order_id}:300"),
        (-50_000, f"refund:{order_id}:750"),
    ]
    assert (await refund(admin, order_id, amount=1)).status == 409

    # Stripe's own charge.refunded events (300, 750, 900 refunded so far) change nothing.
    await stripe.release_webhooks()
    async with admin.app[DB].read() as session:
        outcomes = list(
            await session.scalars(
                select(ProviderEvent.outcome).where(
                    ProviderEvent.provider_type == "charge.refunded"
                )
            )
        )
    assert outcomes == ["no_change"] * 3
    assert len(await refund_ledger(admin, order_id)) == 2
    assert len(await admin.get_json(f"/api/admin/orders/{order_id}/refunds")) == 3

    someone: ApiClient = await make_client()
    await someone.register_and_login("nosy@example.com")
    assert (await someone.get(f"/api/admin/orders/{order_id}/refunds")).status == 403
    assert (await refund(someone, order_id, amount=1)).status == 403


async def test_a_webhook_that_lands_before_the_refund_call_answers_leaves_the_admins_record(
    admin: ApiClient, stripe: FakeStripe, paid: dict[str, Any]
) -> None:
    """Stripe's charge.refunded can reach us before its answer to our refund call: the webhook
    records the refund and takes the credits back, and the administrator's call then adds its
    refund id and reason to that record instead of taking anything twice."""
    order_id = paid["order_id"]
    stripe.webhooks_first = True
    first = await refund(admin, order_id, amount=300, reason="Asked by the customer")
    assert first.status == 200, await first.text()
    assert await refund_ledger(admin, order_id) == [(-200_000, f"refund:{order_id}:300")]
    refunds = await admin.get_json(f"/api/admin/orders/{order_id}/refunds")
    assert [(r["amount"], r["provider_refund_id"], r["reason"]) for r in refunds] == [
        (300, stripe.refunds[0]["id"], "Asked by the customer")
    ]
    async with admin.app[DB].read() as session:
        outcomes = list(
            await session.scalars(
                select(ProviderEvent.outcome).where(
                    ProviderEvent.provider_type == "charge.refunded"
                )
            )
        )
    assert outcomes == ["applied"]  # the webhook came first
    audit = await admin.get_json(f"/api/admin/audit?target_id={order_id}")
    refunded = [e for e in audit["entries"] if e["action"] == "billing.order_refunded"]
    assert refunded[0]["details"]["credits_taken"] == 200_000


async def test_a_partial_refund_made_at_stripe_arrives_by_webhook(
    admin: ApiClient, stripe: FakeStripe, paid: dict[str, Any]
) -> None:
    order_id, sid = paid["order_id"], paid["session"]
    before = await available(admin)
    quarter = stripe.charge(sid, amount_refunded=225)  # a quarter of 900, from the dashboard
    _, body = await stripe.deliver(stripe.event("charge.refunded", quarter))
    assert body["outcome"] == "applied"
    _, again = await stripe.deliver(stripe.event("charge.refunded", quarter))
    assert again["outcome"] == "no_change"
    assert await available(admin) == before - (CREDITS + BONUS) // 4
    order = await admin.get_json(f"/api/billing/orders/{order_id}")
    assert order["status"] == "paid"

    _, full = await stripe.deliver(
        stripe.event("charge.refunded", stripe.charge(sid, refunded=True))
    )
    assert full["outcome"] == "applied"
    assert await available(admin) == before - (CREDITS + BONUS)
    order = await admin.get_json(f"/api/billing/orders/{order_id}")
    assert order["status"] == "refunded"


async def test_the_same_refund_recorded_twice_at_once_counts_once(
    admin: ApiClient, stripe: FakeStripe, paid: dict[str, Any]
) -> None:
    order_id, sid = paid["order_id"], paid["session"]
    before = await available(admin)
    half = stripe.charge(sid, amount_refunded=450)
    results = await asyncio.gather(
        clawback.record_refund(admin.app[DB], order_id, 450, reason="admin"),
        stripe.deliver(stripe.event("charge.refunded", half)),
        clawback.record_refund(admin.app[DB], order_id, 450, reason="admin again"),
    )
    recorded = [results[0].outcome, results[2].outcome]
    assert recorded.count("applied") <= 1
    async with admin.app[DB].read() as session:
        rows = list(
            await session.scalars(select(OrderRefund).where(OrderRefund.order_id == order_id))
        )
    assert [r.refunded_total for r in rows] == [450]
    assert await available(admin) == before - (CREDITS + BONUS) // 2
