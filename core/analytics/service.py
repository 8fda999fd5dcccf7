"""The dashboards' figures, read from the rollup tables (``analytics.models``) by indexed
queries: each is a handful of small reads whatever the size of messages or generations."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.analytics import rollup
from multinotes.analytics.models import (
    ActiveDay,
    DailyActivity,
    Retention,
    StorageDay,
    UsageDay,
    UserMilestones,
)
from multinotes.analytics.schemas import RangeQuery
from multinotes.billing.models import Plan
from multinotes.db import Database

ACTIVE_DEFINITION = (
    "A user is active on a day (UTC) when they started at least one generation that day: "
    "a prompt to any model, from the web or through the API. Weekly and monthly figures "
    "count distinct users active in the 7 and 30 days to each day."
)

FUNNEL = (
    ("signed_up", "Signed up", UserMilestones.signed_up_at),
    ("verified", "Verified their email", UserMilestones.verified_at),
    ("first_answer", "Got a first answer", UserMilestones.first_answer_at),
    ("first_note", "Saved a first note", UserMilestones.first_note_at),
    ("first_payment", "Made a first payment", UserMilestones.first_payment_at),
)

#: How many weeks after sign-up the retention table shows.
RETENTION_WEEKS = 12


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def _header(db: Database, query: RangeQuery) -> dict[str, Any]:
    return {
        "first_day": query.first,
        "last_day": query.last,
        "rolled_up_at": await rollup.last_run(db),
    }


async def active(db: Database, query: RangeQuery) -> dict[str, Any]:
    async with db.read() as session:
        rows = (
            await session.execute(
                select(DailyActivity)
                .where(DailyActivity.day >= query.first, DailyActivity.day <= query.last)
                .order_by(DailyActivity.day)
            )
        ).scalars()
        days = [
            {"day": r.day, "dau": r.dau, "wau": r.wau, "mau": r.mau, "signups": r.signups}
            for r in rows
        ]
    return {
        **await _header(db, query),
        "definition": ACTIVE_DEFINITION,
        "active_in_range": await active_users_between(db, query.first, query.last),
        "latest": days[-1] if days else None,
        "days": days,
    }


async def funnel(db: Database, query: RangeQuery) -> dict[str, Any]:
    """Of the users who signed up in the range, how many reached each step (by now)."""
    start = rollup.day_start(query.first)
    end = rollup.day_start(query.last + timedelta(days=1))
    async with db.read() as session:
        counts = (
            await session.execute(
                select(*(func.count(column) for _n, _l, column in FUNNEL)).where(
                    UserMilestones.signed_up_at >= start, UserMilestones.signed_up_at < end
                )
            )
        ).one()
    signups = int(counts[0])
    steps = []
    previous = signups
    for (name, label, _column), value in zip(FUNNEL, counts, strict=True):
        users = int(value)
        steps.append(
            {
                "step": name,
                "label": label,
                "users": users,
                "of_signups": _ratio(users, signups),
                "of_previous": _ratio(users, previous),
            }
        )
        previous = users
    return {**await _header(db, query), "steps": steps}


async def retention(db: Database, query: RangeQuery) -> dict[str, Any]:
    """Cohorts whose sign-up week starts in the range (its first day's week included)."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Retention.cohort, Retention.week, Retention.users)
                .where(
                    Retention.cohort >= rollup.week_of(query.first),
                    Retention.cohort <= query.last,
                    Retention.week <= RETENTION_WEEKS,
                )
                .order_by(Retention.cohort, Retention.week)
            )
        ).all()
    sizes: dict[date, int] = {}
    cells: dict[date, dict[int, int]] = defaultdict(dict)
    for cohort, week, users in rows:
        if week < 0:
            sizes[cohort] = users
        else:
            cells[cohort][week] = users
    today = rollup.week_of(query.last)
    cohorts = []
    for cohort, size in sorted(sizes.items()):
        elapsed = min((today - cohort).days // 7, RETENTION_WEEKS)
        weeks = [
            {
                "week": week,
                "users": cells[cohort].get(week, 0),
                "rate": _ratio(cells[cohort].get(week, 0), size),
            }
            for week in range(elapsed + 1)
        ]
        cohorts.append({"cohort": cohort, "users": size, "weeks": weeks})
    return {**await _header(db, query), "cohorts": cohorts}


def _in_range(query: RangeQuery) -> Any:
    return (UsageDay.day >= query.first) & (UsageDay.day <= query.last)


async def _per_model(session: AsyncSession, query: RangeQuery, *sums: Any) -> Sequence[Any]:
    """``(model_id, provider_id, *sums)`` over the range's usage days, a row per model."""
    return (
        await session.execute(
            select(UsageDay.model_id, UsageDay.provider_id, *sums)
            .where(_in_range(query))
            .group_by(UsageDay.model_id, UsageDay.provider_id)
        )
    ).all()


async def usage(db: Database, query: RangeQuery) -> dict[str, Any]:
    sums = (
        func.sum(UsageDay.generations),
        func.sum(UsageDay.input_tokens),
        func.sum(UsageDay.output_tokens),
    )
    async with db.read() as session:
        by_model = await _per_model(session, query, *sums)
        per_day = (
            await session.execute(
                select(
                    UsageDay.day,
                    func.sum(UsageDay.generations),
                    func.sum(UsageDay.input_tokens + UsageDay.output_tokens),
                )
                .where(_in_range(query))
                .group_by(UsageDay.day)
                .order_by(UsageDay.day)
            )
        ).all()
    models: list[dict[str, Any]] = sorted(
        (
            {
                "model_id": model_id,
                "provider_id": provider_id,
                "generations": int(g),
                "input_tokens": int(i),
                "output_tokens": int(o),
            }
            for model_id, provider_id, g, i, o in by_model
        ),
        key=lambda m: (-m["generations"], m["model_id"], m["provider_id"]),
    )
    providers: dict[str, dict[str, Any]] = {}
    for m in models:
        p = providers.setdefault(
            m["provider_id"],
            {
                "provider_id": m["provider_id"],
                "generations": 0,
                "input_tokens": 0,
                "output_tokens": 0,
            },
        )
        for key in ("generations", "input_tokens", "output_tokens"):
            p[key] += m[key]
    return {
        **await _header(db, query),
        "by_model": models,
        "by_provider": sorted(
            providers.values(), key=lambda p: (-p["generations"], p["provider_id"])
        ),
        "days": [{"day": d, "generations": int(g), "tokens": int(t)} for d, g, t in per_day],
    }


def _margin(revenue: int, cost: int) -> dict[str, Any]:
    return {
        "revenue": revenue,
        "cost": cost,
        "margin": revenue - cost,
        "margin_percent": round((revenue - cost) * 100 / revenue, 2) if revenue else None,
    }


async def margin(db: Database, query: RangeQuery) -> dict[str, Any]:
    money = (
        func.sum(UsageDay.generations),
        func.sum(UsageDay.charged),
        func.sum(UsageDay.provider_cost),
    )
    async with db.read() as session:
        by_model = await _per_model(session, query, *money)
        by_plan = (
            await session.execute(
                select(UsageDay.plan_id, *money).where(_in_range(query)).group_by(UsageDay.plan_id)
            )
        ).all()
        names = dict(
            (
                await session.execute(
                    select(Plan.id, Plan.name).where(Plan.id.in_([p for p, *_ in by_plan if p]))
                )
            ).all()
        )
    models = [
        {
            "model_id": model_id,
            "provider_id": provider_id,
            "generations": int(g),
            **_margin(int(r), int(c)),
        }
        for model_id, provider_id, g, r, c in by_model
    ]
    models.sort(key=lambda m: (-m["revenue"], m["model_id"], m["provider_id"]))
    plans = [
        {
            "plan_id": plan_id or None,
            "plan_name": names.get(plan_id, "Deleted plan") if plan_id else "No plan bought",
            "generations": int(g),
            **_margin(int(r), int(c)),
        }
        for plan_id, g, r, c in by_plan
    ]
    plans.sort(key=lambda p: (-p["revenue"], p["plan_name"]))
    total = _margin(sum(m["revenue"] for m in models), sum(m["cost"] for m in models))
    return {**await _header(db, query), "total": total, "by_model": models, "by_plan": plans}


async def storage(db: Database, query: RangeQuery) -> dict[str, Any]:
    async with db.read() as session:
        rows = (
            await session.execute(
                select(StorageDay.day, StorageDay.files, StorageDay.bytes)
                .where(StorageDay.day >= query.first, StorageDay.day <= query.last)
                .order_by(StorageDay.day)
            )
        ).all()
    days: list[dict[str, Any]] = [{"day": d, "files": int(f), "bytes": int(b)} for d, f, b in rows]
    growth = days[-1]["bytes"] - days[0]["bytes"] if days else 0
    return {**await _header(db, query), "growth_bytes": growth, "days": days}


async def active_users_between(db: Database, first: date, last: date) -> int:
    """Distinct users active from ``first`` to ``last`` (both included)."""
    async with db.read() as session:
        count = await session.scalar(
            select(func.count(func.distinct(ActiveDay.user_id))).where(
                ActiveDay.day >= first, ActiveDay.day <= last
            )
        )
    return int(count or 0)
