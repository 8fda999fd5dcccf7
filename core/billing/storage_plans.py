"""Storage plans: while a user's storage plan is active its ``storage_bytes`` replaces the
default storage quota; when it ends the default applies again.

The Files feature computes the quota and never imports billing: billing gives it the limit
through ``app[STORAGE_LIMIT]`` (``multinotes.storage``), read at every check, so a plan that
ends stops counting at that moment (the hourly ``billing.expire_plans`` then tidies the row).
A plan with a duration (``duration_days``, or its interval when recurring) ends then; a renewal
moves the end on by one period, once per invoice.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.billing.models import Plan, PlanPeriod
from multinotes.db import rows_affected, utcnow
from multinotes.keys import DB
from multinotes.storage import STORAGE_LIMIT


async def storage_limit_in(session: AsyncSession, user_id: str) -> int | None:
    """The storage limit of the user's active storage plan, or None (the default quota)."""
    row = (
        await session.execute(
            select(PlanPeriod.storage_bytes, PlanPeriod.storage_expires_at).where(
                PlanPeriod.user_id == user_id, PlanPeriod.storage_plan_id.is_not(None)
            )
        )
    ).one_or_none()
    if row is None or row.storage_bytes is None:
        return None
    if row.storage_expires_at is not None and row.storage_expires_at <= utcnow():
        return None
    return int(row.storage_bytes)


def storage_days(plan: Plan) -> int | None:
    """How long one purchase (or renewal) of a storage plan lasts; None: for good."""
    if plan.duration_days:
        return plan.duration_days
    if plan.interval == "month":
        return 30
    if plan.interval == "year":
        return 365
    return None


def start_storage(period: PlanPeriod, plan: Plan, order_id: str) -> None:
    """A paid storage order: its limit replaces the user's (a new plan replaces the old one)."""
    days = storage_days(plan)
    period.storage_plan_id = plan.id
    period.storage_bytes = plan.storage_bytes
    period.storage_expires_at = utcnow() + timedelta(days=days) if days else None
    period.storage_renewed_ref = f"order:{order_id}"[:255]


def renew_storage(period: PlanPeriod, plan: Plan, invoice: str) -> bool:
    """A paid renewal of a storage subscription: one more period from the current end (or
    now, if it lapsed meanwhile); False when this invoice was applied already."""
    if period.storage_renewed_ref == invoice[:255]:
        return False
    now = utcnow()
    start = max(period.storage_expires_at or now, now)
    period.storage_plan_id = plan.id
    period.storage_bytes = plan.storage_bytes
    period.storage_expires_at = start + timedelta(days=storage_days(plan) or 30)
    period.storage_renewed_ref = invoice[:255]
    return True


def setup(app: web.Application) -> None:
    app[STORAGE_LIMIT] = storage_limit_in


async def end_lapsed(app: web.Application) -> int:
    """The ``billing.expire_storage_plans`` task: forget the storage plans that ended (their
    limit stopped counting when they ended; this only tidies the row and /billing). Returns
    how many ended."""
    async with app[DB].transaction() as session:
        changed = await session.execute(
            update(PlanPeriod)
            .where(
                PlanPeriod.storage_plan_id.is_not(None),
                PlanPeriod.storage_expires_at <= utcnow(),
            )
            .values(storage_plan_id=None, storage_bytes=None, storage_expires_at=None)
        )
    return rows_affected(changed)
