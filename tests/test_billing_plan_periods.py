"""Stacking, expiry and the grace period (issue #14, item 3; PRODUCT.md's business rules): a plan
bought while a paid plan is active (or within the 7 days of grace after it ended) stacks its
credits onto what is left; bought from the trial or after the grace period, the leftover expires
first, as a ledger entry naming the new order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from multinotes.billing.models import PlanPeriod
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet.models import LedgerEntry
from tests import test_billing as paying
from tests.fakes.stripe_server import FakeStripe
from tests.test_billing import CREDITS, balance, buyer, checkout, session_id

fake_stripe = paying.fake_stripe
plugins = paying.plugins
settings = paying.settings
stripe = paying.stripe
plan = paying.plan


async def buy(stripe: FakeStripe, customer: ApiClient, plan_id: str) -> str:
    started = await checkout(customer, plan_id)
    session = stripe.complete(session_id(started["url"]))
    _, body = await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert body["outcome"] == "applied"
    return str(started["order_id"])


async def expiries(api: ApiClient, order_id: str) -> list[int]:
    """What expired when ``order_id``'s plan started."""
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.kind == "expiry", LedgerEntry.reference == f"order:{order_id}"
            )
        )
        return list(rows)


async def period(api: ApiClient, user_id: str) -> PlanPeriod:
    async with api.app[DB].read() as session:
        found = await session.get(PlanPeriod, user_id)
    assert found is not None
    return found


async def plan_ended(api: ApiClient, user_id: str, days_ago: int) -> None:
    async with api.app[DB].transaction() as session:
        await session.execute(
            update(PlanPeriod)
            .where(PlanPeriod.user_id == user_id)
            .values(expires_at=utcnow() - timedelta(days=days_ago))
        )


async def test_plans_stack_while_active_and_in_grace_and_the_leftover_expires_after(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    customer = await buyer(make_client, "stacker@example.com")
    user_id = customer.user["id"]
    trial = await balance(customer)
    assert trial > 0

    # From the trial: the trial's credits expire, the plan's apply.
    first = await buy(stripe, customer, plan["id"])
    assert await expiries(customer, first) == [-trial]
    assert await balance(customer) == CREDITS
    ends = (await period(customer, user_id)).expires_at
    assert ends is not None and timedelta(days=29) < ends - utcnow() <= timedelta(days=30)

    # Bought while active: stacked onto what is left, nothing expires.
    spent = await admin.post(
        f"/api/admin/users/{user_id}/credits", {"amount": -100_000, "reason": "used"}
    )
    assert spent.status == 201
    second = await buy(stripe, customer, plan["id"])
    assert await expiries(customer, second) == []
    assert await balance(customer) == 2 * CREDITS - 100_000
    stacked = await period(customer, user_id)
    assert stacked.order_id == second and stacked.expires_at is not None
    assert stacked.expires_at >= ends

    # Ended three days ago: within the grace period, so it still stacks.
    await plan_ended(customer, user_id, 3)
    third = await buy(stripe, customer, plan["id"])
    assert await expiries(customer, third) == []
    assert await balance(customer) == 3 * CREDITS - 100_000

    # Ended ten days ago, past the grace (before the hourly sweep took it): the leftover
    # expires as the new plan starts.
    await plan_ended(customer, user_id, 10)
    fourth = await buy(stripe, customer, plan["id"])
    assert await expiries(customer, fourth) == [-(3 * CREDITS - 100_000)]
    assert await balance(customer) == CREDITS
    renewed = await period(customer, user_id)
    assert renewed.expires_at is not None and renewed.expires_at > utcnow() + timedelta(days=29)
