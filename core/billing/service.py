"""The money state machine: plans, coupons, quotes, orders and the provider events applied.

* A price is computed here only (``quote``); a checkout stores it on a pending order before the
  buyer is sent to the provider.
* A coupon's limits are checked at quote time and again at checkout, under a lock on the coupon
  row: a pending, unexpired order holds one use, so two buyers racing for its last use cannot
  both get it. The use is *counted* (``coupons.uses``) when the payment succeeds.
* Credits move only in ``apply_event``, for a verified webhook: the event row's unique key
  (backend, event id) makes a delivery count once, and the order's conditional status UPDATE
  makes two events about the same payment (in any order) grant once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.billing import BillingEvent, clawback, referrals, storage_plans
from multinotes.billing.models import Coupon, Order, Plan, PlanPeriod, ProviderEvent
from multinotes.db import Database, utcnow
from multinotes.domain_events import ORDER_PAID, OrderPaid, stage
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.wallet import service as wallet

#: After a plan expires its leftover credits stay usable this long; a purchase within it stacks.
GRACE = timedelta(days=7)
#: How long a checkout may stay open (Stripe accepts 30 minutes to 24 hours).
CHECKOUT_LIFETIME = timedelta(hours=1)


# -- plans --------------------------------------------------------------------------------------


async def list_plans(db: Database, *, include_archived: bool = False) -> list[Plan]:
    query = select(Plan)
    if not include_archived:
        query = query.where(Plan.archived_at.is_(None))
    async with db.read() as session:
        return list(await session.scalars(query.order_by(Plan.kind, Plan.price, Plan.id)))


async def get_plan(db: Database, plan_id: str, *, field: str | None = None) -> Plan:
    async with db.read() as session:
        plan = await session.get(Plan, plan_id)
    if plan is None or plan.archived_at is not None:
        if field:
            raise Invalid(fields={field: "No such plan (or it is no longer sold)."})
        raise NotFound("No such plan.")
    return plan


async def create_plan(db: Database, values: dict[str, Any]) -> Plan:
    plan = Plan(**values)
    async with db.transaction() as session:
        session.add(plan)
    return plan


async def update_plan(db: Database, plan_id: str, changes: dict[str, Any]) -> Plan:
    async with db.transaction() as session:
        plan = await session.get(Plan, plan_id)
        if plan is None:
            raise NotFound("No such plan.")
        for key, value in changes.items():
            setattr(plan, key, value)
        plan.updated_at = utcnow()
    return plan


async def archive_plan(db: Database, plan_id: str) -> Plan:
    return await update_plan(db, plan_id, {"archived_at": utcnow()})


# -- coupons ------------------------------------------------------------------------------------


def normal_code(code: str) -> str:
    return code.strip().upper()


async def create_coupon(db: Database, values: dict[str, Any]) -> Coupon:
    coupon = Coupon(**{**values, "code": normal_code(values["code"])})
    try:
        async with db.transaction() as session:
            session.add(coupon)
    except IntegrityError:
        raise Conflict(
            "A coupon with this code exists.", code="coupon_exists", fields={"code": "Taken."}
        ) from None
    return coupon


async def list_coupons(db: Database) -> list[Coupon]:
    async with db.read() as session:
        return list(await session.scalars(select(Coupon).order_by(Coupon.created_at.desc())))


async def archive_coupon(db: Database, coupon_id: str) -> Coupon:
    async with db.transaction() as session:
        coupon = await session.get(Coupon, coupon_id)
        if coupon is None:
            raise NotFound("No such coupon.")
        coupon.archived_at = utcnow()
    return coupon


@dataclass(frozen=True)
class Quote:
    plan_id: str
    currency: str
    subtotal: int
    discount: int
    total: int
    credits: int
    bonus_credits: int
    coupon_code: str | None
    #: An organisation plan's seats (the price and credits are per seat); 1 for other plans.
    seats: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bad_coupon(message: str) -> Invalid:
    return Invalid(message, code="coupon_invalid", fields={"coupon_code": message})


async def _coupon_holds(session: AsyncSession, coupon: Coupon, user_id: str) -> tuple[int, int]:
    """Uses of ``coupon`` that count against its limits: paid orders plus pending ones still
    open, in total and for ``user_id``."""
    holding = or_(
        Order.status.in_(("paid", "refunded", "disputed")),
        (Order.status == "pending") & (Order.expires_at > utcnow()),
    )
    base = select(func.count()).select_from(Order).where(Order.coupon_id == coupon.id, holding)
    total = int(await session.scalar(base) or 0)
    mine = int(await session.scalar(base.where(Order.user_id == user_id)) or 0)
    return total, mine


async def _price(
    session: AsyncSession, plan: Plan, code: str | None, user_id: str, seats: int = 1
) -> tuple[Quote, Coupon | None]:
    subtotal = plan.price * seats
    credits = plan.credits * seats
    if not code or not code.strip():
        quote = Quote(plan.id, plan.currency, subtotal, 0, subtotal, credits, 0, None, seats)
        return quote, None
    coupon = await session.scalar(select(Coupon).where(Coupon.code == normal_code(code)))
    now = utcnow()
    if coupon is None or coupon.archived_at is not None:
        raise _bad_coupon("No such coupon.")
    if coupon.starts_at and now < coupon.starts_at:
        raise _bad_coupon("This coupon is not valid yet.")
    if coupon.ends_at and now >= coupon.ends_at:
        raise _bad_coupon("This coupon has expired.")
    if coupon.min_order and subtotal < coupon.min_order:
        raise _bad_coupon(
            f"This coupon needs an order of at least {coupon.min_order / 100:.2f} {plan.currency}."
        )
    total_uses, my_uses = await _coupon_holds(session, coupon, user_id)
    if coupon.max_uses is not None and total_uses >= coupon.max_uses:
        raise _bad_coupon("This coupon has been used up.")
    if coupon.max_uses_per_user is not None and my_uses >= coupon.max_uses_per_user:
        raise _bad_coupon("You have already used this coupon.")
    if coupon.percent_off:
        discount = subtotal * coupon.percent_off // 100
        if coupon.max_discount is not None:
            discount = min(discount, coupon.max_discount)
    else:
        discount = coupon.amount_off or 0
    discount = max(0, min(discount, subtotal))
    total = subtotal - discount
    if total < 1:
        raise _bad_coupon("This coupon would make the order free; it cannot be used for it.")
    quote = Quote(
        plan.id,
        plan.currency,
        subtotal,
        discount,
        total,
        credits,
        coupon.bonus_credits,
        coupon.code,
        seats,
    )
    return quote, coupon


@dataclass(frozen=True)
class Buyer:
    """Who an order buys for: ``organisation_id`` and ``seats`` for an organisation plan
    (checked by ``multinotes.organisations.seats.buyer``), else none and 1."""

    organisation_id: str | None = None
    seats: int = 1


PERSONAL = Buyer()


def check_buyer(plan: Plan, buyer: Buyer) -> None:
    """An organisation plan is bought for an organisation, other plans for oneself (422)."""
    if plan.kind == "organisation" and buyer.organisation_id is None:
        raise Invalid(
            "An organisation plan is bought for an organisation: name it.",
            code="organisation_required",
            fields={"org_id": "required for an organisation plan"},
        )
    if plan.kind != "organisation" and (buyer.organisation_id is not None or buyer.seats != 1):
        raise Invalid(
            "Only an organisation plan is bought for an organisation, per seat.",
            code="not_an_organisation_plan",
            fields={"org_id": "only for an organisation plan"},
        )


async def quote(
    db: Database,
    user_id: str,
    plan_id: str,
    coupon_code: str | None,
    buyer: Buyer = PERSONAL,
) -> Quote:
    plan = await get_plan(db, plan_id, field="plan_id")
    check_buyer(plan, buyer)
    async with db.read() as session:
        priced, _ = await _price(session, plan, coupon_code, user_id, buyer.seats)
    return priced


# -- orders -------------------------------------------------------------------------------------


async def open_order(
    db: Database,
    user_id: str,
    plan_id: str,
    coupon_code: str | None,
    backend: str,
    buyer: Buyer = PERSONAL,
) -> tuple[Order, Plan]:
    """A pending order at the server's price (an organisation plan's: per seat, for the
    organisation ``buyer`` names). The coupon row is locked while its holds are counted and the
    order inserted, so its last use goes to one buyer only."""
    plan = await get_plan(db, plan_id, field="plan_id")
    check_buyer(plan, buyer)
    async with db.transaction() as session:
        if coupon_code and not db.is_sqlite:  # SQLite's write transaction locks everything
            await session.execute(
                select(Coupon.id).where(Coupon.code == normal_code(coupon_code)).with_for_update()
            )
        priced, coupon = await _price(session, plan, coupon_code, user_id, buyer.seats)
        order = Order(
            user_id=user_id,
            plan_id=plan.id,
            backend=backend,
            status="pending",
            subtotal=priced.subtotal,
            discount=priced.discount,
            total=priced.total,
            currency=plan.currency,
            credits=priced.credits,
            organisation_id=buyer.organisation_id,
            seats=buyer.seats if buyer.organisation_id else None,
            bonus_credits=priced.bonus_credits,
            coupon_id=coupon.id if coupon else None,
            expires_at=utcnow() + CHECKOUT_LIFETIME,
        )
        session.add(order)
    return order, plan


async def attach_checkout(db: Database, order_id: str, reference: str, url: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Order).where(Order.id == order_id).values(reference=reference, url=url)
        )


async def fail_order(db: Database, order_id: str) -> None:
    """The checkout could not be started: the order is void and holds nothing."""
    async with db.transaction() as session:
        await session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending")
            .values(status="failed")
        )


async def list_orders(db: Database, user_id: str | None, *, limit: int = 100) -> list[Order]:
    query = select(Order)
    if user_id is not None:
        query = query.where(Order.user_id == user_id)
    async with db.read() as session:
        return list(await session.scalars(query.order_by(Order.created_at.desc()).limit(limit)))


async def order_for(db: Database, order_id: str, user_id: str, *, is_admin: bool) -> Order:
    """The order as ``user_id`` may see it: their own, or any for an admin; else 404."""
    async with db.read() as session:
        order = await session.get(Order, order_id)
    if order is None or (order.user_id != user_id and not is_admin):
        raise NotFound("No such order.")
    return order


def shown_status(order: Order) -> str:
    if order.status == "pending" and order.expires_at <= utcnow():
        return "expired"
    return order.status


async def current_period(db: Database, user_id: str) -> PlanPeriod | None:
    async with db.read() as session:
        return await session.get(PlanPeriod, user_id)


# -- provider events ----------------------------------------------------------------------------


async def apply_event(db: Database, backend: str, event: BillingEvent) -> str:
    """Apply one verified provider event exactly once; returns what it did (also stored with
    the raw event): ``applied``, ``no_change``, ``duplicate``, ``ignored``, ``unknown_order``
    or ``amount_mismatch``."""
    order_id = await _find_order_id(db, backend, event)
    if order_id is not None:
        async with db.read() as session:
            owner = await session.scalar(select(Order.user_id).where(Order.id == order_id))
        if owner is not None:
            await wallet.ensure_wallet(db, owner)
            referrer = await referrals.referrer_of(db, owner)
            if referrer is not None:
                await wallet.ensure_wallet(db, referrer)
    for attempt in range(3):
        try:
            async with db.transaction() as session:
                record = ProviderEvent(
                    backend=backend,
                    event_id=event.id[:255],
                    type=event.type,
                    provider_type=event.provider_type[:100],
                    order_id=order_id,
                    outcome="received",
                    raw=json.dumps(event.raw, separators=(",", ":"), default=str),
                )
                session.add(record)
                await session.flush()  # the unique key: a repeat delivery stops here
                record.outcome = await _apply(session, db, order_id, event)
                return record.outcome
        except IntegrityError:
            return "duplicate"
        except OperationalError as exc:  # a MariaDB deadlock between two events: try again
            if attempt == 2 or "1213" not in str(exc.orig):
                raise
    raise RuntimeError("unreachable")  # pragma: no cover


async def _find_order_id(db: Database, backend: str, event: BillingEvent) -> str | None:
    async with db.read() as session:
        if event.order_id:
            found = await session.scalar(
                select(Order.id).where(Order.id == event.order_id[:32], Order.backend == backend)
            )
            if found:
                return str(found)
        for column, value in (
            (Order.reference, event.reference),
            (Order.payment_reference, event.payment_reference),
            (Order.subscription_reference, event.subscription_reference),
        ):
            if value:
                found = await session.scalar(
                    select(Order.id).where(column == value, Order.backend == backend)
                )
                if found:
                    return str(found)
    return None


async def _apply(
    session: AsyncSession, db: Database, order_id: str | None, event: BillingEvent
) -> str:
    if event.type == "ignored":
        return "ignored"
    if order_id is None:
        return "unknown_order"
    lock = select(Order).where(Order.id == order_id)
    if not db.is_sqlite:
        lock = lock.with_for_update()
    order = (await session.scalars(lock)).one()
    references = {
        key: value
        for key, value in (
            ("payment_reference", event.payment_reference),
            ("customer_reference", event.customer_reference),
            ("subscription_reference", event.subscription_reference),
        )
        if value and not getattr(order, key)
    }
    if references:
        await session.execute(update(Order).where(Order.id == order.id).values(**references))
    if event.type == "payment.succeeded":
        if event.amount is not None and (
            event.amount != order.total
            or (event.currency or order.currency).upper() != order.currency.upper()
        ):
            return "amount_mismatch"
        return await _paid(session, db, order)
    if event.type == "subscription.renewed":
        return await _renewed(session, db, order, event)
    if event.type == "subscription.cancelled":
        return await _subscription_status(session, order, "cancelled")
    if event.type == "payment.failed" and order.status == "paid":
        # A renewal that failed: the credits stay until the period ends, then the grace period.
        return await _subscription_status(session, order, "past_due")
    if event.type in ("payment.failed", "checkout.expired"):
        status = "failed" if event.type == "payment.failed" else "expired"
        changed = await (await session.connection()).execute(
            update(Order)
            .where(Order.id == order.id, Order.status == "pending")
            .values(status=status)
        )
        return "applied" if changed.rowcount == 1 else "no_change"
    if event.type == "refunded":  # full or partial: ``amount`` is the refunded total so far
        refunded_total = order.total if event.amount is None else event.amount
        recorded = await clawback.record_refund_in(
            session,
            order,
            refunded_total,
            reason=f"Refunded at {order.backend} (its webhook)",
        )
        return recorded.outcome
    if event.type == "disputed":
        return await _disputed(session, order)
    return "ignored"


async def pay_in(session: AsyncSession, db: Database, order: Order) -> str:
    """Mark ``order`` (locked by the caller in ``session``) paid and grant what it bought, as a
    verified ``payment.succeeded`` does: ``applied``, or ``no_change`` when it was paid
    already. For payments that do not come as a provider event (an operator's record of a bank
    transfer, ``multinotes.billing.manual_payments``)."""
    return await _paid(session, db, order)


async def _paid(session: AsyncSession, db: Database, order: Order) -> str:
    now = utcnow()
    changed = await (await session.connection()).execute(
        update(Order)
        .where(Order.id == order.id, Order.status.in_(("pending", "failed", "expired")))
        .values(status="paid", paid_at=now)
    )
    if changed.rowcount != 1:
        return "no_change"
    plan = await session.get(Plan, order.plan_id)
    assert plan is not None
    if plan.interval != "once":
        await (await session.connection()).execute(
            update(Order).where(Order.id == order.id).values(subscription_status="active")
        )
    if order.coupon_id:
        await session.execute(
            update(Coupon).where(Coupon.id == order.coupon_id).values(uses=Coupon.uses + 1)
        )
    if plan.kind == "organisation":
        await _organisation_paid(session, order, plan, f"order:{order.id}", f"Bought {plan.name}")
        _stage_paid(session, order, plan)
        return "applied"
    lock = select(PlanPeriod).where(PlanPeriod.user_id == order.user_id)
    if not db.is_sqlite:
        lock = lock.with_for_update()
    period = (await session.scalars(lock)).one_or_none()
    if period is None:
        period = PlanPeriod(user_id=order.user_id)
        session.add(period)
    if plan.kind == "storage":
        storage_plans.start_storage(period, plan, order.id)
    else:
        active = period.plan_id is not None and (
            period.expires_at is None or period.expires_at + GRACE > now
        )
        if not active:  # from the trial or after expiry: the leftover expires first
            await wallet.take_back_in(
                session,
                order.user_id,
                2**62,
                kind="expiry",
                reason="Leftover credits expire when a new plan starts",
                reference=f"order:{order.id}",
            )
        recurring = plan.interval != "once"
        ends = now + timedelta(days=period_days(plan)) if plan.duration_days or recurring else None
        if active and period.expires_at is not None and ends is not None:
            ends = max(ends, period.expires_at)
        period.plan_id = plan.id
        period.order_id = order.id
        period.expires_at = ends
    await wallet.credit_in(
        session,
        order.user_id,
        order.credits,
        kind="purchase",
        reason=f"Bought {plan.name}",
        reference=f"order:{order.id}",
    )
    await wallet.credit_in(
        session,
        order.user_id,
        order.bonus_credits,
        kind="bonus",
        reason=f"Coupon bonus on {plan.name}",
        reference=f"order:{order.id}",
    )
    await referrals.reward_in(session, order)
    _stage_paid(session, order, plan)
    return "applied"


async def _organisation_paid(
    session: AsyncSession, order: Order, plan: Plan, reference: str, reason: str
) -> bool:
    """An organisation plan's payment (or renewal): its credits (per seat, with a coupon's
    bonus) to the organisation's wallet, and the organisation keeps the seats paid for."""
    if order.organisation_id is None:
        return False
    granted = await wallet.credit_organisation_in(
        session,
        order.organisation_id,
        order.user_id,
        order.credits,
        kind="purchase",
        reason=reason,
        reference=reference,
    )
    if granted and reference.startswith("order:"):
        await wallet.credit_organisation_in(
            session,
            order.organisation_id,
            order.user_id,
            order.bonus_credits,
            kind="bonus",
            reason=f"Coupon bonus on {plan.name}",
            reference=reference,
        )
    if granted and order.seats:
        from multinotes.organisations.models import Organisation

        await (await session.connection()).execute(
            update(Organisation)
            .where(Organisation.id == order.organisation_id)
            .values(seats=order.seats)
        )
    return granted


def _stage_paid(session: AsyncSession, order: Order, plan: Plan) -> None:
    # Staged in this transaction: published once, after the commit that made the order paid.
    stage(
        session,
        ORDER_PAID.of(
            order.user_id,
            OrderPaid(
                order_id=order.id,
                plan_id=plan.id,
                plan_name=plan.name,
                backend=order.backend,
                total=order.total,
                currency=order.currency,
                credits=order.credits,
                bonus_credits=order.bonus_credits,
                interval=plan.interval,
            ),
        ),
    )


async def _subscription_status(session: AsyncSession, order: Order, status: str) -> str:
    if not order.subscription_reference and status != "cancelled":
        return "no_change"
    changed = await (await session.connection()).execute(
        update(Order)
        .where(Order.id == order.id, Order.subscription_status.is_distinct_from(status))
        .values(subscription_status=status)
    )
    return "applied" if changed.rowcount == 1 else "no_change"


def period_days(plan: Plan) -> int:
    if plan.duration_days:
        return plan.duration_days
    return 365 if plan.interval == "year" else 30


async def _renewed(session: AsyncSession, db: Database, order: Order, event: BillingEvent) -> str:
    """A paid renewal invoice: the plan's credits again, the period moved on by one interval
    (a storage plan's end, for a storage subscription)."""
    if order.status != "paid" or not event.reference:
        return "no_change"
    plan = await session.get(Plan, order.plan_id)
    assert plan is not None
    if plan.kind == "storage":
        return await _storage_renewed(session, db, order, plan, event.reference)
    if plan.kind == "organisation":
        renewed = await _organisation_paid(
            session, order, plan, f"renewal:{event.reference}"[:100], f"Renewed {plan.name}"
        )
        if renewed:
            await (await session.connection()).execute(
                update(Order).where(Order.id == order.id).values(subscription_status="active")
            )
        return "applied" if renewed else "no_change"
    granted = await wallet.credit_in(
        session,
        order.user_id,
        order.credits,
        kind="purchase",
        reason=f"Renewed {plan.name}",
        reference=f"renewal:{event.reference}"[:100],
    )
    if not granted:
        return "no_change"
    lock = select(PlanPeriod).where(PlanPeriod.user_id == order.user_id)
    if not db.is_sqlite:
        lock = lock.with_for_update()
    period = (await session.scalars(lock)).one_or_none()
    now = utcnow()
    if period is None:
        period = PlanPeriod(user_id=order.user_id)
        session.add(period)
    start = max(period.expires_at or now, now)
    period.plan_id = plan.id
    period.order_id = order.id
    period.expires_at = start + timedelta(days=period_days(plan))
    await (await session.connection()).execute(
        update(Order).where(Order.id == order.id).values(subscription_status="active")
    )
    return "applied"


async def _storage_renewed(
    session: AsyncSession, db: Database, order: Order, plan: Plan, invoice: str
) -> str:
    lock = select(PlanPeriod).where(PlanPeriod.user_id == order.user_id)
    if not db.is_sqlite:
        lock = lock.with_for_update()
    period = (await session.scalars(lock)).one_or_none()
    if period is None:
        period = PlanPeriod(user_id=order.user_id)
        session.add(period)
    if not storage_plans.renew_storage(period, plan, f"renewal:{invoice}"):
        return "no_change"
    await (await session.connection()).execute(
        update(Order).where(Order.id == order.id).values(subscription_status="active")
    )
    return "applied"


async def _disputed(session: AsyncSession, order: Order) -> str:
    """A dispute freezes the grant: the order's credits go back (what a partial refund did
    not take already), but only what is still unspent."""
    changed = await (await session.connection()).execute(
        update(Order).where(Order.id == order.id, Order.status == "paid").values(status="disputed")
    )
    if changed.rowcount != 1:
        return "no_change"
    _, due_before = await clawback.already_refunded(session, order.id)
    await clawback.take_back_for(
        session,
        order,
        order.credits + order.bonus_credits - due_before,
        kind="dispute",
        reason=f"Order {order.id} disputed",
        reference=f"order:{order.id}",
    )
    return "applied"


async def events_for_order(db: Database, order_id: str) -> list[ProviderEvent]:
    async with db.read() as session:
        rows = await session.scalars(
            select(ProviderEvent)
            .where(ProviderEvent.order_id == order_id)
            .order_by(ProviderEvent.received_at)
        )
        return list(rows)


async def set_subscription_status(db: Database, order_id: str, status: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Order).where(Order.id == order_id).values(subscription_status=status)
        )


async def customer_reference(db: Database, user_id: str, backend: str) -> str | None:
    """The provider's customer for this user: from their latest paid order there."""
    async with db.read() as session:
        found = await session.scalar(
            select(Order.customer_reference)
            .where(
                Order.user_id == user_id,
                Order.backend == backend,
                Order.customer_reference.is_not(None),
            )
            .order_by(Order.created_at.desc())
            .limit(1)
        )
    return str(found) if found else None
