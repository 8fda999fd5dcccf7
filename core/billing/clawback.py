"""Refunds, full or partial, and the credits they take back.

A refund is known by the order's *refunded total* after it (Stripe's ``amount_refunded`` is
cumulative too), so the administrator's refund and the provider's webhook about it, in either
order, record it once: the second finds the total already there (a unique key on
``order_refunds (order_id, refunded_total)`` holds under concurrency as well).

The credits taken back are in proportion to the money: an order that granted ``G`` credits
(plan and coupon bonus) for ``T`` has ``G * refunded_total // T`` taken back in all (the last
refund takes exactly what is left of ``G``). Each refund takes only what is still available
(never below zero, nothing held for answers in flight); what was already spent is its
``shortfall``, recorded on the refund, not a debt: PRODUCT.md has no debt rule and the balance
never goes below zero. Once the refunded total reaches the order's total, the order is
``refunded``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.billing.models import Order
from multinotes.billing.refund_models import OrderRefund
from multinotes.db import Database
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.wallet import service as wallet


@dataclass(frozen=True)
class Refunded:
    """What ``record_refund`` did: ``applied`` or ``no_change`` (already recorded)."""

    outcome: str
    refund: OrderRefund | None = None


async def already_refunded(session: AsyncSession, order_id: str) -> tuple[int, int]:
    """``(money refunded, credits due so far)`` of the order."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.max(OrderRefund.refunded_total), 0),
                func.coalesce(func.sum(OrderRefund.credits_due), 0),
            ).where(OrderRefund.order_id == order_id)
        )
    ).one()
    return int(row[0]), int(row[1])


async def refunded_amount(db: Database, order_id: str) -> int:
    async with db.read() as session:
        return (await already_refunded(session, order_id))[0]


async def take_back_for(
    session: AsyncSession, order: Order, up_to: int, *, kind: str, reason: str, reference: str
) -> int:
    """Take back up to ``up_to`` of what ``order`` granted, from the wallet it credited: the
    buyer's, or the organisation's for an organisation plan."""
    if order.organisation_id is not None:
        return await wallet.take_back_organisation_in(
            session,
            order.organisation_id,
            order.user_id,
            up_to,
            kind=kind,
            reason=reason,
            reference=reference,
        )
    return await wallet.take_back_in(
        session, order.user_id, up_to, kind=kind, reason=reason, reference=reference
    )


async def record_refund_in(
    session: AsyncSession,
    order: Order,
    refunded_total: int,
    *,
    provider_refund_id: str | None = None,
    reason: str = "",
) -> Refunded:
    """Inside the transaction that holds the order row: the order's refunded money is now
    ``refunded_total`` (cumulative, in minor units); take back the credits that corresponds
    to, as far as they are unspent. A total not above what is recorded takes nothing; given a
    ``provider_refund_id``, it completes the record a webhook made of that total."""
    if order.status not in ("paid", "refunded") or order.total <= 0:
        return Refunded("no_change")
    refunded_total = min(int(refunded_total), order.total)
    before, due_before = await already_refunded(session, order.id)
    if refunded_total <= before:
        return Refunded(
            "no_change",
            await _complete_in(session, order.id, refunded_total, provider_refund_id, reason),
        )
    granted = order.credits + order.bonus_credits
    due = granted * refunded_total // order.total - due_before
    taken = await take_back_for(
        session,
        order,
        due,
        kind="refund",
        reason=f"Refund of {refunded_total - before} {order.currency} (minor units) "
        f"on order {order.id}",
        reference=f"refund:{order.id}:{refunded_total}",
    )
    refund = OrderRefund(
        order_id=order.id,
        user_id=order.user_id,
        amount=refunded_total - before,
        refunded_total=refunded_total,
        currency=order.currency,
        credits_due=due,
        credits_taken=taken,
        shortfall=due - taken,
        provider_refund_id=(provider_refund_id or None) and provider_refund_id[:255],
        reason=reason[:500],
    )
    session.add(refund)
    await session.flush()  # the unique key: a concurrent recording of this total stops here
    if refunded_total >= order.total:
        await session.execute(
            update(Order)
            .where(Order.id == order.id, Order.status == "paid")
            .values(status="refunded")
        )
    return Refunded("applied", refund)


async def record_refund(
    db: Database,
    order_id: str,
    refunded_total: int,
    *,
    provider_refund_id: str | None = None,
    reason: str = "",
) -> Refunded:
    """``record_refund_in`` in its own transaction, with the order row locked (after the
    provider accepted the refund; its webhook about the same refund then changes nothing).

    The provider may deliver that webhook before it answers the refund call: then the webhook
    recorded this total first (and took the credits back), and this call completes that record
    with what only it knows, the provider's refund id and the administrator's reason
    (``record_refund_in``)."""
    async with db.read() as session:
        owner = await session.scalar(select(Order.user_id).where(Order.id == order_id))
    if owner is None:
        raise NotFound("No such order.")
    await wallet.ensure_wallet(db, owner)
    # Twice at most: a webhook recording the same total at the same moment makes the first
    # attempt fail on the unique key; the second then finds that record and completes it.
    for _ in range(2):
        try:
            async with db.transaction() as session:
                lock = select(Order).where(Order.id == order_id)
                if not db.is_sqlite:
                    lock = lock.with_for_update()
                order = (await session.scalars(lock)).one()
                return await record_refund_in(
                    session,
                    order,
                    refunded_total,
                    provider_refund_id=provider_refund_id,
                    reason=reason,
                )
        except IntegrityError:
            continue
    return Refunded("no_change")


async def _complete_in(
    session: AsyncSession,
    order_id: str,
    refunded_total: int,
    provider_refund_id: str | None,
    reason: str,
) -> OrderRefund | None:
    """The record of ``refunded_total``, given the provider's refund id and the administrator's
    reason when a webhook made it (it knows neither); None without a refund id to give."""
    if not provider_refund_id:
        return None
    refund = await session.scalar(
        select(OrderRefund).where(
            OrderRefund.order_id == order_id, OrderRefund.refunded_total == refunded_total
        )
    )
    if refund is not None and refund.provider_refund_id is None:
        refund.provider_refund_id = provider_refund_id[:255]
        refund.reason = reason[:500]
    return refund


async def next_total(db: Database, order: Order, amount: int | None) -> int:
    """The order's refunded total after refunding ``amount`` more (None: all that is left);
    ``Invalid`` naming ``amount`` when that is more than is left, ``Conflict`` when nothing is
    left."""
    before = await refunded_amount(db, order.id)
    left = order.total - before
    if left <= 0:
        raise Conflict("This order has been refunded in full.", code="not_refundable")
    if amount is None:
        return order.total
    if amount > left:
        raise Invalid(
            fields={"amount": f"At most {left} (minor units) is left to refund on this order."}
        )
    return before + amount


async def refunds_of(db: Database, order_id: str) -> list[OrderRefund]:
    async with db.read() as session:
        rows = await session.scalars(
            select(OrderRefund)
            .where(OrderRefund.order_id == order_id)
            .order_by(OrderRefund.refunded_total)
        )
        return list(rows)
