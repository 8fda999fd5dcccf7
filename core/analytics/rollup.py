"""The analytics rollup: rebuilds the tables of ``analytics.models`` from the app's own data.

Days are rebuilt whole (delete that day's rows, insert them again, in one transaction), so
running it twice over the same days counts nothing twice. A run covers the days from the one
an hour before the last run started to today (so yesterday again only in the first hour after
midnight: generations that finished after it), or everything from the first sign-up on the
first run.

The per-user tables are rebuilt whole on the first run of each UTC day (and on a backfill of
named days); the other runs of the day are incremental: the milestones read only what happened
since an hour before the last run started (new users and verifications, generations, notes and
payments) and write only the rows that changed, and the retention table recounts only the
weeks of the days just rebuilt. The whole rebuild once a day catches what an increment cannot
see (a deleted note).

The task runs hourly; an admin's "run it now" (``start``) claims the run in the request and
leaves the work to a background task (``analytics.rollup_now``), which the console's page polls
(``status``).

A run that fails is kept as failed (``failed_at``) with a short reason for the console and the
API: the step it was on and the kind of error, never the error's text or a traceback (both go
to the server log, ``analytics_rollup_failed``). It holds no later run back. A run unfinished
after ``RUN_TIMEOUT`` (its process stopped) is reported failed too.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import and_, delete, func, insert, or_, select, update

from multinotes.analytics.models import (
    ActiveDay,
    DailyActivity,
    Retention,
    RollupRun,
    StorageDay,
    UsageDay,
    UserMilestones,
)
from multinotes.billing.models import Order
from multinotes.chat.models import Generation, MessageStatus
from multinotes.db import Database, utcnow
from multinotes.errors import Conflict
from multinotes.files.models import File
from multinotes.keys import DB, TASKS
from multinotes.models import User
from multinotes.notes.models import Document
from multinotes.plugin_host import TaskDef

#: Statuses of an order whose money was received (a later refund keeps it a payment made).
PAID = ("paid", "refunded", "disputed")
#: How many days a rollup may cover at most (a first run on an old instance).
MAX_DAYS = 800
#: A run unfinished after this long is taken for dead (its process stopped): no longer waited on.
RUN_TIMEOUT = timedelta(minutes=15)
#: How far before the last run an incremental run looks again (a generation that finished, or
#: a payment recorded, a little after it started).
SETTLE = timedelta(hours=1)
#: The task an admin's "run it now" queues (the hourly one is ``analytics.rollup``).
RUN_NOW_TASK = "analytics.rollup_now"
#: What ``status`` says of a run taken for dead.
TIMED_OUT = f"It did not finish within {RUN_TIMEOUT.seconds // 60} minutes (its process stopped)."

log = structlog.get_logger(__name__)


class RollupFailed(Exception):
    """A run failed; it is recorded as failed with ``reason`` (and logged with its traceback)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _under_way(now: datetime) -> Any:
    """SQL: a run that started less than ``RUN_TIMEOUT`` ago and has not ended."""
    return and_(
        RollupRun.finished_at.is_(None),
        RollupRun.failed_at.is_(None),
        RollupRun.started_at > now - RUN_TIMEOUT,
    )


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def week_of(day: date) -> date:
    """The Monday starting ``day``'s week."""
    return day - timedelta(days=day.weekday())


@dataclass
class RunResult:
    first_day: date | None
    last_day: date | None
    days: int
    finished_at: datetime


async def _previous(db: Database, run_id: int) -> RollupRun | None:
    """The last run that finished before ``run_id``."""
    async with db.read() as session:
        return await session.scalar(
            select(RollupRun)
            .where(RollupRun.finished_at.is_not(None), RollupRun.id < run_id)
            .order_by(RollupRun.id.desc())
            .limit(1)
        )


async def _window(
    db: Database, today: date, previous: RollupRun | None
) -> tuple[date, date] | None:
    if previous is not None and previous.last_day is not None:
        since = (previous.started_at - SETTLE).date()
        return min(since, previous.last_day, today), today
    async with db.read() as session:
        first = await session.scalar(select(func.min(User.created_at)))
    if first is None:
        return None
    return max(first.date(), today - timedelta(days=MAX_DAYS)), today


async def claim(db: Database) -> RollupRun:
    """Record that a run starts now. ``Conflict`` (``rollup_running``) while another run
    started less than ``RUN_TIMEOUT`` ago has not finished (the hourly task and an admin's
    button, or two processes, never rebuild the same day at once)."""
    started = utcnow()
    async with db.transaction() as session:
        running = await session.scalar(select(RollupRun.id).where(_under_way(started)).limit(1))
        if running is not None:
            raise Conflict(
                "The rollup is running already; its figures appear when it finishes.",
                code="rollup_running",
            )
        this_run = RollupRun(started_at=started)
        session.add(this_run)
    return this_run


async def run(db: Database, *, first: date | None = None, last: date | None = None) -> RunResult:
    """Claim a run (``claim``: 409 ``rollup_running`` while one is under way) and do it."""
    return await execute(db, (await claim(db)).id, first=first, last=last)


async def execute(
    db: Database, run_id: int, *, first: date | None = None, last: date | None = None
) -> RunResult:
    """Do the claimed run ``run_id``: rebuild the days ``first``..``last`` (default: since the
    last run) and the per-user tables (whole, or incrementally: the module's docstring).
    Returns what was rebuilt. A run that fails is recorded as failed, with the step it was on
    (it blocks nobody), and raises ``RollupFailed``; a cancelled one (the process stopping)
    is recorded so and re-raised."""
    today = utcnow().date()
    step = "reading the last run"
    try:
        previous = await _previous(db, run_id)
        window = (first, last) if first and last else await _window(db, today, previous)
        whole = (
            previous is None
            or bool(first and last)
            or previous.finished_at is None
            or previous.finished_at.date() < today
        )
        step = "reading the payments"
        plans = await _plans_by_user(db)
        days = 0
        if window is not None:
            day = window[0]
            while day <= window[1]:
                step = f"rebuilding {day.isoformat()}"
                await _rebuild_day(db, day, plans)
                day += timedelta(days=1)
                days += 1
        if whole or previous is None:  # (previous: for the type checker)
            step = "rebuilding the per-user milestones"
            await _rebuild_milestones(db)
            step = "rebuilding the retention table"
            await _rebuild_retention(db)
        else:
            step = "updating the per-user milestones"
            await _update_milestones(db, previous.started_at - SETTLE)
            if window is not None:
                step = "recounting the retention table"
                await _recount_retention(db, window[0], window[1])
    except Exception as error:
        reason = (
            f"It failed while {step} ({type(error).__name__}); the details are in the server log."
        )
        log.exception("analytics_rollup_failed", run_id=run_id, step=step)
        await _record_failure(db, run_id, reason)
        raise RollupFailed(reason) from error
    except BaseException:
        await _record_failure(db, run_id, f"It was stopped while {step} (the process ended).")
        raise
    finished = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(RollupRun)
            .where(RollupRun.id == run_id)
            .values(
                finished_at=finished,
                first_day=window[0] if window else None,
                last_day=window[1] if window else None,
            )
        )
        await _prune(session)
    return RunResult(window[0] if window else None, window[1] if window else None, days, finished)


async def _record_failure(db: Database, run_id: int, reason: str) -> None:
    """Mark the run failed (no longer under way: the next one may start at once)."""
    async with db.transaction() as session:
        await session.execute(
            update(RollupRun)
            .where(RollupRun.id == run_id)
            .values(failed_at=utcnow(), failure=reason[:300])
        )
        await _prune(session)  # a run failing every hour fills nothing


async def _prune(session: Any) -> None:
    """Keep the last few runs only: the table is a log of when, not a history."""
    newest = select(RollupRun.id).order_by(RollupRun.id.desc())
    keep = newest.limit(1).offset(19).scalar_subquery()
    await session.execute(delete(RollupRun).where(RollupRun.id < keep))


async def last_run(db: Database) -> datetime | None:
    async with db.read() as session:
        return await session.scalar(
            select(RollupRun.finished_at)
            .where(RollupRun.finished_at.is_not(None))
            .order_by(RollupRun.id.desc())
            .limit(1)
        )


async def _plans_by_user(db: Database) -> dict[str, tuple[list[datetime], list[str]]]:
    """Each user's paid orders in time order: which plan they were on at a given moment."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Order.user_id, Order.paid_at, Order.plan_id)
                .where(Order.status.in_(PAID), Order.paid_at.is_not(None))
                .order_by(Order.paid_at)
            )
        ).all()
    plans: dict[str, tuple[list[datetime], list[str]]] = {}
    for user_id, paid_at, plan_id in rows:
        if paid_at is None:  # excluded by the query; for the type checker
            continue
        times, ids = plans.setdefault(user_id, ([], []))
        times.append(paid_at)
        ids.append(plan_id)
    return plans


def _plan_at(plans: dict[str, tuple[list[datetime], list[str]]], user_id: str, at: datetime) -> str:
    if user_id not in plans:
        return ""
    times, ids = plans[user_id]
    index = bisect.bisect_right(times, at)
    return ids[index - 1] if index else ""


async def _rebuild_day(
    db: Database, day: date, plans: dict[str, tuple[list[datetime], list[str]]]
) -> None:
    start, end = day_start(day), day_start(day + timedelta(days=1))
    async with db.read() as session:
        usage = (
            await session.execute(
                select(
                    Generation.user_id,
                    Generation.model_id,
                    Generation.provider_id,
                    func.count(),
                    func.coalesce(func.sum(Generation.input_tokens), 0),
                    func.coalesce(func.sum(Generation.output_tokens), 0),
                    func.coalesce(func.sum(Generation.cost), 0),
                    func.coalesce(
                        func.sum(func.coalesce(Generation.provider_cost, Generation.cost)), 0
                    ),
                )
                .where(Generation.created_at >= start, Generation.created_at < end)
                .group_by(Generation.user_id, Generation.model_id, Generation.provider_id)
            )
        ).all()
        signups = await session.scalar(
            select(func.count()).where(User.created_at >= start, User.created_at < end)
        )
        files, size = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(File.size), 0)).where(
                    File.created_at < end
                )
            )
        ).one()
    totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    active: set[str] = set()
    for user_id, model_id, provider_id, count, tokens_in, tokens_out, charged, cost in usage:
        active.add(user_id)
        row = totals[(model_id, provider_id, _plan_at(plans, user_id, end))]
        for i, value in enumerate((count, tokens_in, tokens_out, charged, cost)):
            row[i] += int(value)
    async with db.transaction() as session:
        for table in (ActiveDay, UsageDay, DailyActivity, StorageDay):
            await session.execute(delete(table).where(table.day == day))
        if active:
            await session.execute(
                insert(ActiveDay), [{"day": day, "user_id": u} for u in sorted(active)]
            )
        if totals:
            await session.execute(
                insert(UsageDay),
                [
                    {
                        "day": day,
                        "model_id": model_id,
                        "provider_id": provider_id,
                        "plan_id": plan_id,
                        "generations": v[0],
                        "input_tokens": v[1],
                        "output_tokens": v[2],
                        "charged": v[3],
                        "provider_cost": v[4],
                    }
                    for (model_id, provider_id, plan_id), v in sorted(totals.items())
                ],
            )
        wau = await _distinct_active(session, day, 7)
        mau = await _distinct_active(session, day, 30)
        session.add(DailyActivity(day=day, dau=len(active), wau=wau, mau=mau, signups=signups or 0))
        session.add(StorageDay(day=day, files=int(files), bytes=int(size)))


async def _distinct_active(session: Any, day: date, span: int) -> int:
    """Users active in the ``span`` days ending with ``day``."""
    count = await session.scalar(
        select(func.count(func.distinct(ActiveDay.user_id))).where(
            ActiveDay.day > day - timedelta(days=span), ActiveDay.day <= day
        )
    )
    return int(count or 0)


async def _firsts(
    session: Any, since: datetime | None
) -> tuple[dict[str, datetime], dict[str, datetime], dict[str, datetime]]:
    """Each user's first answer, note and payment (``since``: of those since then only)."""
    answers = select(Generation.user_id, func.min(Generation.created_at)).where(
        Generation.status == MessageStatus.COMPLETE
    )
    notes = select(Document.user_id, func.min(Document.created_at))
    payments = select(Order.user_id, func.min(Order.paid_at)).where(
        Order.status.in_(PAID), Order.paid_at.is_not(None)
    )
    if since is not None:
        # The recent rows themselves, folded here: without a GROUP BY the planner takes the
        # range of the indexed generations.created_at (grouped, SQLite walked the user_id
        # index over every generation instead).
        recent = (
            await session.execute(
                select(Generation.user_id, Generation.created_at).where(
                    Generation.status == MessageStatus.COMPLETE, Generation.created_at >= since
                )
            )
        ).all()
        first_answers: dict[str, datetime] = {}
        for user_id, created_at in recent:
            if user_id not in first_answers or created_at < first_answers[user_id]:
                first_answers[user_id] = created_at
        notes = notes.where(Document.created_at >= since)
        payments = payments.where(Order.paid_at >= since)
        found_notes = dict((await session.execute(notes.group_by(Document.user_id))).all())
        found_payments = dict((await session.execute(payments.group_by(Order.user_id))).all())
        return first_answers, found_notes, found_payments
    found = []
    for query in (
        answers.group_by(Generation.user_id),
        notes.group_by(Document.user_id),
        payments.group_by(Order.user_id),
    ):
        found.append(dict((await session.execute(query)).all()))
    return found[0], found[1], found[2]


async def _rebuild_milestones(db: Database) -> None:
    async with db.read() as session:
        users = (
            await session.execute(select(User.id, User.created_at, User.email_verified_at))
        ).all()
        answers, notes, payments = await _firsts(session, None)
    rows: list[dict[str, Any]] = [
        {
            "user_id": user_id,
            "signed_up_at": created_at,
            "verified_at": verified_at,
            "first_answer_at": answers.get(user_id),
            "first_note_at": notes.get(user_id),
            "first_payment_at": payments.get(user_id),
        }
        for user_id, created_at, verified_at in users
    ]
    await _write_milestones(db, rows)


async def _update_milestones(db: Database, since: datetime) -> None:
    """Bring the milestones up to date with what happened ``since`` then, writing only what
    changed: the users who signed up or verified their address since (a row each, new or
    updated), and the first answer, note or payment of those who had none. A deleted user's
    row goes with them (a foreign key). Reads the recent generations only, not all of them."""
    async with db.read() as session:
        recent_users = (
            await session.execute(
                select(User.id, User.created_at, User.email_verified_at).where(
                    or_(User.created_at >= since, User.email_verified_at >= since)
                )
            )
        ).all()
        answers, notes, payments = await _firsts(session, since)
        known = (
            set(
                await session.scalars(
                    select(UserMilestones.user_id).where(
                        UserMilestones.user_id.in_([u for u, _, _ in recent_users])
                    )
                )
            )
            if recent_users
            else set()
        )
    fresh = [
        {
            "user_id": user_id,
            "signed_up_at": created_at,
            "verified_at": verified_at,
            "first_answer_at": answers.get(user_id),
            "first_note_at": notes.get(user_id),
            "first_payment_at": payments.get(user_id),
        }
        for user_id, created_at, verified_at in recent_users
        if user_id not in known
    ]
    verified = [(u, at) for u, _, at in recent_users if u in known and at is not None]
    async with db.transaction() as session:
        if fresh:
            await session.execute(insert(UserMilestones), fresh)
        for user_id, at in verified:
            await session.execute(
                update(UserMilestones)
                .where(UserMilestones.user_id == user_id)
                .values(verified_at=at)
            )
        for column, firsts in (
            (UserMilestones.first_answer_at, answers),
            (UserMilestones.first_note_at, notes),
            (UserMilestones.first_payment_at, payments),
        ):
            for user_id, at in firsts.items():
                # Only an earlier first counts (one already kept stays; a new user has theirs).
                await session.execute(
                    update(UserMilestones)
                    .where(
                        UserMilestones.user_id == user_id,
                        or_(column.is_(None), column > at),
                    )
                    .values({column: at})
                )


async def _write_milestones(db: Database, rows: list[dict[str, Any]]) -> None:
    async with db.transaction() as session:
        await session.execute(delete(UserMilestones))
        for start in range(0, len(rows), 1000):
            await session.execute(insert(UserMilestones), rows[start : start + 1000])


async def _recount_retention(db: Database, first: date, last: date) -> None:
    """Recount the retention cells of the weeks ``first``..``last`` fall in (every cohort's
    share active in those calendar weeks) and every cohort's size; the other cells stay."""
    weeks = [week_of(first)]
    while weeks[-1] < week_of(last):
        weeks.append(weeks[-1] + timedelta(weeks=1))
    async with db.read() as session:
        cohort_of = {
            user_id: week_of(signed_up_at.date())
            for user_id, signed_up_at in (
                await session.execute(select(UserMilestones.user_id, UserMilestones.signed_up_at))
            ).all()
        }
        activity = (
            await session.execute(
                select(ActiveDay.user_id, ActiveDay.day).where(
                    ActiveDay.day >= weeks[0], ActiveDay.day < weeks[-1] + timedelta(weeks=1)
                )
            )
        ).all()
    sizes: dict[date, int] = defaultdict(int)
    for week_start in cohort_of.values():
        sizes[week_start] += 1
    cells = _cells(cohort_of, activity)
    recounted = [
        (cohort, (week - cohort).days // 7) for week in weeks for cohort in sizes if cohort <= week
    ]
    rows: list[dict[str, Any]] = [
        {"cohort": cohort, "week": -1, "users": size} for cohort, size in sizes.items()
    ] + [{"cohort": c, "week": w, "users": cells[(c, w)]} for c, w in recounted if cells[(c, w)]]
    async with db.transaction() as session:
        await session.execute(delete(Retention).where(Retention.week == -1))
        for start in range(0, len(recounted), 200):
            chunk = recounted[start : start + 200]
            await session.execute(
                delete(Retention).where(
                    or_(*(and_(Retention.cohort == c, Retention.week == w) for c, w in chunk))
                )
            )
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Retention), rows[start : start + 1000])


def _cells(cohort_of: dict[str, date], activity: Any) -> dict[tuple[date, int], int]:
    """(cohort, week after it) → users of the cohort active in that week."""
    seen: set[tuple[str, int]] = set()
    cells: dict[tuple[date, int], int] = defaultdict(int)
    for user_id, active_on in activity:
        joined = cohort_of.get(user_id)
        if joined is None:
            continue
        week = (week_of(active_on) - joined).days // 7
        if week < 0 or (user_id, week) in seen:
            continue
        seen.add((user_id, week))
        cells[(joined, week)] += 1
    return cells


async def _rebuild_retention(db: Database) -> None:
    async with db.read() as session:
        cohort_of = {
            user_id: week_of(signed_up_at.date())
            for user_id, signed_up_at in (
                await session.execute(select(UserMilestones.user_id, UserMilestones.signed_up_at))
            ).all()
        }
        activity = (await session.execute(select(ActiveDay.user_id, ActiveDay.day))).all()
    sizes: dict[date, int] = defaultdict(int)
    for week_start in cohort_of.values():
        sizes[week_start] += 1
    cells = _cells(cohort_of, activity)
    rows: list[dict[str, Any]] = [
        {"cohort": cohort, "week": -1, "users": size} for cohort, size in sizes.items()
    ] + [{"cohort": c, "week": w, "users": n} for (c, w), n in cells.items()]
    async with db.transaction() as session:
        await session.execute(delete(Retention))
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Retention), rows[start : start + 1000])


async def start(app: web.Application) -> RollupRun:
    """An admin's "run it now": claim the run here (409 ``rollup_running`` while one is under
    way) and queue the work (``RUN_NOW_TASK``); ``status`` says when it is done."""
    claimed = await claim(app[DB])
    try:
        await app[TASKS].enqueue(RUN_NOW_TASK, run_id=claimed.id)
    except BaseException:
        async with app[DB].transaction() as session:  # not queued: it would block for nothing
            await session.execute(delete(RollupRun).where(RollupRun.id == claimed.id))
        raise
    return claimed


@dataclass
class Status:
    """Where the rollup stands: a run under way (when it started), the last one finished
    (when, and which days it rebuilt), and whether the last run to end failed (when, why)."""

    running: bool
    started_at: datetime | None
    rolled_up_at: datetime | None
    first_day: date | None
    last_day: date | None
    failed_at: datetime | None = None
    failure: str | None = None

    @property
    def days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1


async def status(db: Database) -> Status:
    now = utcnow()
    async with db.read() as session:
        under_way = await session.scalar(
            select(RollupRun.started_at)
            .where(_under_way(now))
            .order_by(RollupRun.id.desc())
            .limit(1)
        )
        done = await session.scalar(
            select(RollupRun)
            .where(RollupRun.finished_at.is_not(None))
            .order_by(RollupRun.id.desc())
            .limit(1)
        )
        # The last run to end: finished, failed, or taken for dead.
        ended = await session.scalar(
            select(RollupRun).where(~_under_way(now)).order_by(RollupRun.id.desc()).limit(1)
        )
    failed = ended is not None and ended.finished_at is None
    return Status(
        running=under_way is not None,
        started_at=under_way,
        rolled_up_at=done.finished_at if done else None,
        first_day=done.first_day if done else None,
        last_day=done.last_day if done else None,
        failed_at=(ended.failed_at or ended.started_at + RUN_TIMEOUT) if failed and ended else None,
        failure=(ended.failure or TIMED_OUT) if failed and ended else None,
    )


async def run_now_task(app: web.Application, run_id: int) -> int:
    """The work of a run an admin started (``start`` claimed it): the days it rebuilt (0 when
    the claim is gone: it was taken for dead and forgotten)."""
    async with app[DB].read() as session:
        claimed = await session.scalar(
            select(RollupRun.id).where(
                RollupRun.id == run_id,
                RollupRun.finished_at.is_(None),
                RollupRun.failed_at.is_(None),
            )
        )
    if claimed is None:
        return 0
    try:
        return (await execute(app[DB], run_id)).days
    except RollupFailed:
        return 0  # recorded and logged: the status says why


async def rollup_task(app: web.Application) -> int:
    """The scheduled rollup: the days since the last run, then the per-user tables (nothing
    when a run is under way already: 0 days)."""
    try:
        return (await run(app[DB])).days
    except (Conflict, RollupFailed):
        return 0  # one under way; or this one failed, recorded and logged


def analytics_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", "analytics.rollup", rollup_task, "41 * * * *"),
        TaskDef("core", RUN_NOW_TASK, run_now_task, None),
    ]
