"""Billing's background jobs: a plan's leftover credits expire once its grace period is over; a
storage plan that ended is forgotten; auto-reload charges a saved payment method off-session
(``multinotes.billing.auto_reload``)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from multinotes.billing import storage_plans
from multinotes.billing.auto_reload import auto_reload_tasks
from multinotes.billing.models import PlanPeriod
from multinotes.billing.service import GRACE
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.plugin_host import TaskDef
from multinotes.wallet import service as wallet


async def expire_plans(app: web.Application) -> int:
    """Take back the available credits of every plan that expired more than the grace period
    ago, as one ``expiry`` ledger entry each (never below zero, nothing held for answers in
    flight); the user is then on no plan. Returns how many plans ended."""
    db = app[DB]
    cutoff = utcnow() - GRACE
    async with db.read() as session:
        due = (
            await session.execute(
                select(PlanPeriod.user_id, PlanPeriod.expires_at).where(
                    PlanPeriod.plan_id.is_not(None), PlanPeriod.expires_at < cutoff
                )
            )
        ).all()
    ended = 0
    for user_id, expires_at in due:
        async with db.transaction() as session:
            lock = select(PlanPeriod).where(PlanPeriod.user_id == user_id)
            if not db.is_sqlite:
                lock = lock.with_for_update()
            period = (await session.scalars(lock)).one_or_none()
            if (
                period is None
                or period.plan_id is None
                or period.expires_at is None
                or period.expires_at != expires_at
            ):
                continue  # renewed or ended meanwhile
            await wallet.take_back_in(
                session,
                user_id,
                2**62,
                kind="expiry",
                reason="Plan credits expired (after the grace period)",
                reference=f"expiry:{user_id}:{period.expires_at.isoformat()}"[:100],
            )
            period.plan_id = None
            period.order_id = None
            ended += 1
    return ended


def billing_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", "billing.expire_plans", expire_plans, "7 * * * *"),
        TaskDef("core", "billing.expire_storage_plans", storage_plans.end_lapsed, "9 * * * *"),
        *auto_reload_tasks(),
    ]
