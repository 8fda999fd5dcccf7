"""Payments made outside any provider (a bank transfer), recorded by an administrator.

The operator finds the buyer's transfer in the bank account and records it on the order: the
amount received (exactly the order's total), the bank's reference and a note. Core then pays the
order through the same state machine as a verified webhook (``service.pay_in``: the credits with
the ledger reference ``order:<id>``, the coupon use, a referral bonus, the plan period,
``OrderPaid`` and so its receipt), once: the record is stored as a provider event of the backend
``manual`` keyed by the order, so a second click, two administrators at once or a retried request
grant nothing more. An order its provider has paid meanwhile (or refunded, disputed) is refused
with 409 and nothing is written; the audit log records who recorded what.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from multinotes import audit
from multinotes.billing import referrals
from multinotes.billing import service as billing
from multinotes.billing.models import Order, Plan, ProviderEvent
from multinotes.billing.pages import money
from multinotes.billing.schemas import ManualPaymentIn
from multinotes.db import Database
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.identity.actor import require_admin
from multinotes.keys import DB
from multinotes.wallet import service as wallet

#: The ``backend`` of the provider event that records a manual payment.
MANUAL_BACKEND = "manual"
#: What the event is called in the order's events (``provider_type``).
BANK_TRANSFER = "bank_transfer"
#: Statuses an offline payment may settle (``expired`` is a pending order past its checkout).
PAYABLE = ("pending", "failed", "expired")


@dataclass(frozen=True)
class ManualPayment:
    """What the operator saw arrive: ``amount`` in the order currency's minor unit."""

    amount: int
    reference: str
    note: str
    recorded_by: str


def event_id(order_id: str) -> str:
    """One manual payment per order: the provider event's unique key."""
    return f"order:{order_id}"


def payable(order: Order, plan: Plan | None) -> bool:
    """Whether an offline payment can be recorded for the order: nothing paid it yet, and it is
    a one-time plan (a subscription's renewals come from its provider, which would not know
    of one paid by bank transfer)."""
    return order.status in PAYABLE and plan is not None and plan.interval == "once"


async def plan_of(db: Database, order: Order) -> Plan | None:
    async with db.read() as session:
        return await session.get(Plan, order.plan_id)


async def paid_manually(db: Database, order: Order) -> bool:
    """Whether an administrator's record paid the order (not its backend)."""
    async with db.read() as session:
        outcome = await session.scalar(
            select(ProviderEvent.outcome).where(
                ProviderEvent.backend == MANUAL_BACKEND,
                ProviderEvent.event_id == event_id(order.id),
            )
        )
    return outcome == "applied"


def amount_error(order: Order, amount: int) -> dict[str, str]:
    """The ``amount`` field's error when it is not the order's total (else empty): a transfer
    of another amount is settled with the buyer first, not recorded here."""
    if amount == order.total:
        return {}
    return {
        "amount": f"This order's total is {money(order.total, order.currency)}; "
        "record a transfer of exactly that amount."
    }


async def record(db: Database, order_id: str, payment: ManualPayment) -> str:
    """Pay ``order_id`` with an offline payment; ``applied``, or ``duplicate`` when a manual
    payment was recorded for it already (nothing changes). Raises ``NotFound``, ``Invalid``
    (``amount`` is not the order's total) or ``Conflict`` (``order_not_payable``: a provider
    paid, refunded or disputed it, or it is a subscription's)."""
    async with db.read() as session:
        order = await session.get(Order, order_id)
        recorded = await session.scalar(
            select(ProviderEvent.id).where(
                ProviderEvent.backend == MANUAL_BACKEND,
                ProviderEvent.event_id == event_id(order_id),
            )
        )
    if order is None:
        raise NotFound("No such order.")
    if recorded is not None:
        return "duplicate"
    plan = await plan_of(db, order)
    if plan is not None and plan.interval != "once":
        raise Conflict(
            "A subscription is paid through its payment provider; only a one-time plan's "
            "order can be paid by bank transfer.",
            code="order_not_payable",
        )
    if not payable(order, plan):
        raise _not_payable(order.status)
    wrong_amount = amount_error(order, payment.amount)
    if wrong_amount:
        raise Invalid("The amount received must be the order's total.", fields=wrong_amount)
    # Wallet rows are created outside the paying transaction, as webhooks do (service.apply_event).
    await wallet.ensure_wallet(db, order.user_id)
    referrer = await referrals.referrer_of(db, order.user_id)
    if referrer is not None:
        await wallet.ensure_wallet(db, referrer)
    raw = {
        "amount": payment.amount,
        "currency": order.currency,
        "reference": payment.reference,
        "note": payment.note,
        "recorded_by": payment.recorded_by,
    }
    for attempt in range(3):
        try:
            async with db.transaction() as session:
                event = ProviderEvent(
                    backend=MANUAL_BACKEND,
                    event_id=event_id(order.id),
                    type="payment.succeeded",
                    provider_type=BANK_TRANSFER,
                    order_id=order.id,
                    outcome="received",
                    raw=json.dumps(raw, separators=(",", ":")),
                )
                session.add(event)
                await session.flush()  # the unique key: a second record stops here
                lock = select(Order).where(Order.id == order.id)
                if not db.is_sqlite:
                    lock = lock.with_for_update()
                locked = (await session.scalars(lock)).one()
                if await billing.pay_in(session, db, locked) != "applied":
                    # Paid by its provider since the check above: roll the record back too.
                    raise _not_payable("paid")
                event.outcome = "applied"
            return "applied"
        except IntegrityError:
            return "duplicate"
        except OperationalError as exc:  # a MariaDB deadlock with a webhook: try again
            if attempt == 2 or "1213" not in str(exc.orig):
                raise
    raise RuntimeError("unreachable")  # pragma: no cover


def _not_payable(status: str) -> Conflict:
    return Conflict(
        f"This order is {status}: only an unpaid order can be marked paid.",
        code="order_not_payable",
    )


async def mark_paid(request: web.Request, order_id: str, payment_in: ManualPaymentIn) -> str:
    """The administrator's action, shared by the JSON API and the console's order page: record
    the payment and, when it paid the order, write the audit entry."""
    admin = require_admin(request)
    payment = ManualPayment(
        amount=payment_in.amount,
        reference=payment_in.reference,
        note=payment_in.note,
        recorded_by=admin.user_id,
    )
    outcome = await record(request.app[DB], order_id, payment)
    if outcome == "applied":
        await audit.record(
            request.app,
            request,
            "billing.order_marked_paid",
            target_type="order",
            target_id=order_id,
            details={"amount": payment.amount, "reference": payment.reference},
        )
    return outcome
