"""Auto-reload: when a user's available credits fall below their threshold, buy their chosen
one-time plan with the payment method their first payment saved, off-session.

It reacts to the wallet's domain events (``generation.completed``/``failed`` after an answer was
settled, ``credits.low`` after any other deduction) instead of the wallet calling billing: the
subscriber only looks and queues ``billing.auto_reload``; the task opens the order under a lock
on the user's ``auto_reloads`` row and charges outside any transaction.

Guards against reload storms, all checked under that lock: at most one pending reload order per
user, at most ``billing.auto_reload_max_per_day`` attempts in 24 hours (declines included), and
a decline switches auto-reload off (the user is told by mail) until they switch it on again.
Credits come only from the provider's verified ``payment.succeeded`` webhook, like any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes import user_sets
from multinotes.app_settings import get_setting
from multinotes.billing import BillingBackend, PaymentDeclined
from multinotes.billing.models import Order, Plan
from multinotes.billing.reload_models import AutoReload, AutoReloadCharge
from multinotes.billing.service import CHECKOUT_LIFETIME, customer_reference
from multinotes.db import Database, rows_affected, utcnow
from multinotes.domain_events import (
    CREDITS_LOW,
    GENERATION_COMPLETED,
    GENERATION_FAILED,
    DomainEvent,
    EventBus,
)
from multinotes.errors import AppError, Conflict, Invalid
from multinotes.identity import service as identity
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS, SETTINGS, TASKS
from multinotes.mail import queue_mail
from multinotes.plugin_host import TaskDef
from multinotes.user_sets import UserSet
from multinotes.wallet.models import Wallet

log = structlog.get_logger("multinotes.billing.auto_reload")

TASK = "billing.auto_reload"
#: Attempts per user in any 24 hours, unless an admin set ``billing.auto_reload_max_per_day``.
MAX_PER_DAY_SETTING = "billing.auto_reload_max_per_day"
DEFAULT_MAX_PER_DAY = 3
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class ReloadState:
    """Auto-reload as its owner sees it."""

    enabled: bool
    threshold: int | None
    plan_id: str | None
    disabled_reason: str | None
    has_payment_method: bool
    reloads_last_24h: int
    max_per_day: int


async def max_per_day(db: Database) -> int:
    stored = await get_setting(db, MAX_PER_DAY_SETTING)
    return DEFAULT_MAX_PER_DAY if stored is None else int(stored)


def default_backend(app: web.Application) -> str | None:
    """The backend a new auto-reload charges through: of the enabled ones that can charge a
    saved method off-session, Stripe, else the first."""
    able = sorted(
        backend_id
        for backend_id, (_, backend) in app[PLUGINS].registries.billing.items()
        if type(backend).charge_off_session is not BillingBackend.charge_off_session
    )
    if not able:
        return None
    return "stripe" if "stripe" in able else able[0]


async def _attempts_since(session: AsyncSession, user_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(AutoReloadCharge)
            .where(
                AutoReloadCharge.user_id == user_id,
                AutoReloadCharge.created_at > utcnow() - DAY,
            )
        )
        or 0
    )


async def state(app: web.Application, user_id: str) -> ReloadState:
    db = app[DB]
    async with db.read() as session:
        row = await session.get(AutoReload, user_id)
        attempts = await _attempts_since(session, user_id)
    backend = row.backend if row else default_backend(app)
    saved = bool(backend) and await customer_reference(db, user_id, str(backend)) is not None
    return ReloadState(
        enabled=bool(row and row.enabled),
        threshold=row.threshold if row else None,
        plan_id=row.plan_id if row else None,
        disabled_reason=row.disabled_reason if row else None,
        has_payment_method=saved,
        reloads_last_24h=attempts,
        max_per_day=await max_per_day(db),
    )


def reload_plans(plans: list[Plan]) -> list[Plan]:
    """The plans an auto-reload can buy: one-time credit plans on sale."""
    return [p for p in plans if p.kind == "credits" and p.interval == "once" and not p.archived_at]


async def configure(
    app: web.Application, user_id: str, *, enabled: bool, threshold: int, plan_id: str
) -> ReloadState:
    """Save the user's choice. Switching it on needs a saved payment method (a first payment
    through the backend) and clears the reason of an earlier switch-off."""
    db = app[DB]
    async with db.read() as session:
        plan = await session.get(Plan, plan_id)
    if plan is None or plan not in reload_plans([plan]):
        raise Invalid(
            fields={"plan_id": "Choose a one-time credits plan that is on sale."},
        )
    backend = default_backend(app)
    if enabled and (backend is None or await customer_reference(db, user_id, backend) is None):
        raise Conflict(
            "Auto-reload needs a saved payment method: buy a plan once first.",
            code="no_saved_payment_method",
        )
    async with db.transaction() as session:
        row = await session.get(AutoReload, user_id)
        if row is None:
            row = AutoReload(user_id=user_id)
            session.add(row)
        row.enabled = enabled
        row.threshold = threshold
        row.plan_id = plan.id
        row.backend = backend or row.backend or ""
        if enabled:
            row.disabled_reason = None
    return await state(app, user_id)


# -- reacting to the wallet ---------------------------------------------------------------------


#: The users with auto-reload switched on, from memory (``multinotes.user_sets``): the check
#: after every answer reads nothing for the others.
RELOADERS = UserSet(
    "billing.auto_reload", select(AutoReload.user_id).where(AutoReload.enabled.is_(True))
)


def subscribe(bus: EventBus) -> None:
    for event_type in (GENERATION_COMPLETED, GENERATION_FAILED, CREDITS_LOW):
        bus.subscribe(event_type, on_credits_spent)


async def below_threshold(db: Database, user_id: str) -> bool:
    """Whether the user has auto-reload on and their available credits are under its
    threshold (a cheap look; the task checks again under the lock)."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(AutoReload.threshold, Wallet.balance - Wallet.reserved)
                .join(Wallet, Wallet.user_id == AutoReload.user_id)
                .where(AutoReload.user_id == user_id, AutoReload.enabled.is_(True))
            )
        ).one_or_none()
    return row is not None and int(row[1]) < int(row[0])


async def on_credits_spent(app: web.Application, event: DomainEvent) -> None:
    """After credits were taken: queue a reload when the balance is under the user's
    threshold. Answers that cost nothing change nothing."""
    if event.user_id is None:
        return
    if event.name != CREDITS_LOW.name and not event.payload.get("cost"):
        return
    if not await user_sets.contains(app, RELOADERS, event.user_id):
        return
    if await below_threshold(app[DB], event.user_id):
        await app[TASKS].enqueue(TASK, user_id=event.user_id)


# -- the charge ---------------------------------------------------------------------------------


async def open_reload(db: Database, user_id: str) -> Order | None:
    """The pending order of a reload that is due, or None (nothing due, one pending, the
    daily cap reached, no saved method). Runs under a lock on the user's auto-reload row, so
    two tasks for the same user cannot both open one."""
    cap = await max_per_day(db)
    async with db.transaction() as session:
        lock = select(AutoReload).where(AutoReload.user_id == user_id)
        if not db.is_sqlite:
            lock = lock.with_for_update()
        auto = (await session.scalars(lock)).one_or_none()
        if auto is None or not auto.enabled:
            return None
        available = await session.scalar(
            select(Wallet.balance - Wallet.reserved).where(Wallet.user_id == user_id)
        )
        if available is None or int(available) >= auto.threshold:
            return None
        pending = await session.scalar(
            select(func.count())
            .select_from(AutoReloadCharge)
            .join(Order, Order.id == AutoReloadCharge.order_id)
            .where(
                AutoReloadCharge.user_id == user_id,
                Order.status == "pending",
                Order.expires_at > utcnow(),
            )
        )
        if pending:
            log.info("auto_reload_skipped", reason="pending", user_id=user_id)
            return None
        if await _attempts_since(session, user_id) >= cap:
            log.info("auto_reload_skipped", reason="daily_cap", user_id=user_id)
            return None
        plan = await session.get(Plan, auto.plan_id)
        if plan is None or plan not in reload_plans([plan]):
            auto.enabled = False
            auto.disabled_reason = "The plan it bought is no longer sold; choose another."
            return None
        customer = await session.scalar(
            select(Order.customer_reference)
            .where(
                Order.user_id == user_id,
                Order.backend == auto.backend,
                Order.customer_reference.is_not(None),
            )
            .order_by(Order.created_at.desc())
            .limit(1)
        )
        if not customer:
            return None
        order = Order(
            user_id=user_id,
            plan_id=plan.id,
            backend=auto.backend,
            status="pending",
            subtotal=plan.price,
            discount=0,
            total=plan.price,
            currency=plan.currency,
            credits=plan.credits,
            bonus_credits=0,
            customer_reference=customer,
            expires_at=utcnow() + CHECKOUT_LIFETIME,
        )
        session.add(order)
        await session.flush()
        session.add(AutoReloadCharge(order_id=order.id, user_id=user_id))
    return order


async def run_auto_reload(app: web.Application, *, user_id: str) -> str:
    """The ``billing.auto_reload`` task: open a due reload and charge it off-session. Returns
    what happened: ``skipped``, ``charged`` (the webhook will credit it), ``declined`` or
    ``failed`` (the provider could not be reached; the next spend tries again, within the
    daily cap)."""
    db = app[DB]
    order = await open_reload(db, user_id)
    if order is None:
        return "skipped"
    backends = app[PLUGINS].registries.billing
    if order.backend not in backends:
        await _fail(db, order.id, "backend_disabled")
        return "failed"
    plugin, backend = backends[order.backend]
    plan_name = await db_plan_name(db, order.plan_id)
    try:
        reference = await backend.charge_off_session(
            customer_reference=str(order.customer_reference),
            amount_cents=order.total,
            currency=order.currency,
            order_id=order.id,
            idempotency_key=f"auto-reload-{order.id}",
            config=await app[PLUGIN_SETTINGS].config(plugin),
        )
    except PaymentDeclined as exc:
        await declined(app, order.id, exc.code, exc.message)
        return "declined"
    except AppError as exc:
        log.warning("auto_reload_failed", order_id=order.id, error=exc.code)
        await _fail(db, order.id, exc.code)
        return "failed"
    async with db.transaction() as session:
        await session.execute(
            update(Order)
            .where(Order.id == order.id, Order.payment_reference.is_(None))
            .values(payment_reference=reference[:255])
        )
    log.info("auto_reload_charged", order_id=order.id, plan=plan_name)
    return "charged"


async def db_plan_name(db: Database, plan_id: str) -> str:
    async with db.read() as session:
        return str(await session.scalar(select(Plan.name).where(Plan.id == plan_id)) or "")


async def _fail(db: Database, order_id: str, error: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending")
            .values(status="failed")
        )
        await session.execute(
            update(AutoReloadCharge)
            .where(AutoReloadCharge.order_id == order_id)
            .values(error=error[:300])
        )


async def is_reload_order(db: Database, order_id: str) -> bool:
    async with db.read() as session:
        return await session.get(AutoReloadCharge, order_id) is not None


async def declined(app: web.Application, order_id: str, code: str, message: str) -> bool:
    """The saved method was refused for a reload order (at once, or later by webhook): the
    order fails, auto-reload switches off and the user is told, once. Returns whether this
    call switched it off."""
    db = app[DB]
    reason = f"Your payment method was declined ({code}): {message}"[:300]
    async with db.transaction() as session:
        charge = await session.get(AutoReloadCharge, order_id)
        if charge is None:
            return False
        await session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending")
            .values(status="failed")
        )
        charge.error = code[:300]
        switched = await session.execute(
            update(AutoReload)
            .where(AutoReload.user_id == charge.user_id, AutoReload.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason)
        )
        user_id = charge.user_id
    if rows_affected(switched) != 1:
        return False
    user = await identity.get_user(db, user_id)
    async with db.read() as session:
        order = await session.get(Order, order_id)
    assert order is not None
    settings = app[SETTINGS]
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    await queue_mail(
        app,
        template="auto_reload_failed",
        to=user.email,
        context={
            "name": user.name,
            "plan": await db_plan_name(db, order.plan_id),
            "reason": message,
            "link": f"{base}/billing#auto-reload",
        },
    )
    log.info("auto_reload_switched_off", order_id=order_id, code=code)
    return True


def auto_reload_tasks() -> list[TaskDef]:
    return [TaskDef("core", TASK, run_auto_reload, None)]


def setup(app: web.Application) -> None:
    """Subscribe to the wallet's events (the app's event bus exists by then)."""
    from multinotes.domain_events import EVENTS

    subscribe(app[EVENTS])


__all__ = [
    "ReloadState",
    "configure",
    "declined",
    "is_reload_order",
    "open_reload",
    "run_auto_reload",
    "state",
]
