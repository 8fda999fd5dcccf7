"""Keeping schedules and claiming their runs.

Every read of a schedule goes through ``get`` ("schedule X as seen by user Y"): someone else's
is a 404. What a schedule runs, its values, models, folder and cron expression are checked
whenever they are set, so a stored schedule always could run when it was saved (a run still
checks again: a template can be deleted, a model switched off, a folder trashed since).

Claiming is the one place runs are made from the clock: ``claim_due`` moves each due
schedule's ``next_run_at`` to its next slot with an UPDATE conditional on the value it read, and
makes the run row in that same transaction. Two schedulers (or a scheduler and a slow one) that
read the same due row race on that UPDATE; one wins, the other changes nothing and makes no run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, rows_affected, utcnow
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.identity import profile
from multinotes.identity.models import User
from multinotes.keys import CATALOG, DB, SETTINGS
from multinotes.notes.models import Folder
from multinotes.prompts import service as prompts
from multinotes.schedules import cron
from multinotes.schedules.models import Schedule, ScheduleRun

#: How many due schedules one look of the due-finder claims (the rest wait a minute).
CLAIM_BATCH = 200
#: A run still queued or running after this long was lost with its worker: it is marked failed
#: (and no longer blocks "Run now").
STALE_RUN = timedelta(hours=1)
#: Statuses of a run not finished yet.
UNFINISHED = ("queued", "running")


@dataclass
class ScheduleView:
    """A schedule with what its pages and the API show beside it."""

    schedule: Schedule
    target_title: str
    folder_name: str | None
    last_run: ScheduleRun | None


async def get(db: Database, user_id: str, schedule_id: str) -> Schedule:
    """The user's schedule; ``NotFound`` for anyone else's or none."""
    async with db.read() as session:
        return await _owned(session, user_id, schedule_id)


async def _owned(session: AsyncSession, user_id: str, schedule_id: str) -> Schedule:
    found = await session.scalar(
        select(Schedule).where(Schedule.id == schedule_id, Schedule.owner_id == user_id)
    )
    if found is None:
        raise NotFound("No such schedule.", code="schedule_not_found")
    return found


async def views(db: Database, user_id: str, schedules: list[Schedule]) -> list[ScheduleView]:
    """Each schedule with its target's title, its folder's name and its latest run."""
    if not schedules:
        return []
    ids = [s.id for s in schedules]
    async with db.read() as session:
        latest = (
            select(ScheduleRun.schedule_id, func.max(ScheduleRun.created_at).label("at"))
            .where(ScheduleRun.schedule_id.in_(ids))
            .group_by(ScheduleRun.schedule_id)
            .subquery()
        )
        runs = {
            r.schedule_id: r
            for r in await session.scalars(
                select(ScheduleRun).join(
                    latest,
                    (ScheduleRun.schedule_id == latest.c.schedule_id)
                    & (ScheduleRun.created_at == latest.c.at),
                )
            )
        }
        folder_ids = {s.folder_id for s in schedules if s.folder_id}
        folders = {
            f.id: f.name
            for f in await session.scalars(
                select(Folder).where(
                    Folder.id.in_(folder_ids), Folder.user_id == user_id, Folder.live_key == ""
                )
            )
        }
    titles: dict[str, str] = {}
    for s in schedules:
        if s.target_id not in titles:
            titles[s.target_id] = await _target_title(db, user_id, s.target_type, s.target_id)
    return [
        ScheduleView(
            schedule=s,
            target_title=titles.get(s.target_id, s.target_id),
            folder_name=folders.get(s.folder_id) if s.folder_id else None,
            last_run=runs.get(s.id),
        )
        for s in schedules
    ]


async def _target_title(db: Database, user_id: str, target_type: str, target_id: str) -> str:
    try:
        if target_type == "chain":
            from multinotes.chains import service as chains

            return (await chains.get(db, user_id, target_id)).title
        return (await prompts.get(db, user_id, target_id)).template.title
    except NotFound:
        return f"({target_type} no longer available)"


async def view(db: Database, user_id: str, schedule_id: str) -> ScheduleView:
    return (await views(db, user_id, [await get(db, user_id, schedule_id)]))[0]


async def list_schedules(db: Database, user_id: str) -> list[ScheduleView]:
    async with db.read() as session:
        rows = list(
            await session.scalars(
                select(Schedule)
                .where(Schedule.owner_id == user_id)
                .order_by(Schedule.created_at.desc(), Schedule.id)
            )
        )
    return await views(db, user_id, rows)


# -- checking what a schedule holds --------------------------------------------------------------


async def user_timezone(db: Database, user_id: str) -> str:
    async with db.read() as session:
        zone = await session.scalar(select(User.timezone).where(User.id == user_id))
    return zone or profile.DEFAULT_TIMEZONE


async def check_target(
    db: Database, user_id: str, target_type: str, target_id: str, values: dict[str, Any]
) -> None:
    """The target exists for the user and the values fill it (``Invalid`` naming the field)."""
    if target_type == "chain":
        from multinotes.schedules import chain_target

        await chain_target.check(db, user_id, target_id, values)
        return
    try:
        template = await prompts.get(db, user_id, target_id)
    except NotFound:
        raise Invalid(
            "No such template.", code="template_not_found", fields={"target_id": "no such template"}
        ) from None
    prompts.render(template, values)


async def check_models(app: web.Application, models: list[str]) -> None:
    """Every model is in the catalogue (one failing right now is fine: it may be back by the
    next run, which reports it if not)."""
    known = {entry.id for entry in await app[CATALOG].entries()}
    problems = {
        f"models.{n}": f"unknown or disabled model {model!r}"
        for n, model in enumerate(models)
        if model not in known
    }
    if len(set(models)) != len(models):
        problems["models"] = "a model is listed twice"
    if problems:
        raise Invalid("Some models cannot be used.", fields=problems)


async def check_folder(db: Database, user_id: str, folder_id: str | None) -> None:
    if folder_id is None:
        return
    async with db.read() as session:
        found = await session.scalar(
            select(Folder.id).where(
                Folder.id == folder_id, Folder.user_id == user_id, Folder.live_key == ""
            )
        )
    if found is None:
        raise Invalid("No such folder.", fields={"folder_id": "no such folder"})


def check_timezone(zone: str) -> str:
    problem = profile.timezone_problem(zone)
    if problem:
        raise Invalid(problem, fields={"timezone": "unknown time zone"})
    return zone


async def _checked(app: web.Application, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (every field of a schedule) checked and tidied."""
    db = app[DB]
    data["cron"] = cron.check(
        data["cron"], min_interval_minutes=app[SETTINGS].schedule_min_interval_minutes
    )
    check_timezone(data["timezone"])
    await check_target(db, user_id, data["target_type"], data["target_id"], data["values"])
    if data["target_type"] == "chain":
        data["models"] = []  # each step of a chain names its own model
    elif not data["models"]:
        raise Invalid("Choose a model to answer.", fields={"models": "required"})
    else:
        await check_models(app, data["models"])
    await check_folder(db, user_id, data["folder_id"])
    data["name"] = " ".join(data["name"].split())
    if not data["name"]:
        raise Invalid("Name the schedule.", fields={"name": "required"})
    return data


# -- writing ------------------------------------------------------------------------------------

FIELDS = (
    "name",
    "target_type",
    "target_id",
    "values",
    "models",
    "cron",
    "timezone",
    "folder_id",
    "email_results",
)


async def create(
    app: web.Application, user_id: str, data: dict[str, Any], *, now: datetime | None = None
) -> Schedule:
    """A new active schedule (``timezone`` None: the owner's)."""
    db = app[DB]
    data = {k: data.get(k) for k in FIELDS}
    data["values"] = data["values"] or {}
    data["models"] = data["models"] or []
    data["email_results"] = bool(data["email_results"])
    data["target_type"] = data["target_type"] or "template"
    data["timezone"] = data["timezone"] or await user_timezone(db, user_id)
    data = await _checked(app, user_id, data)
    now = now or utcnow()
    limit = app[SETTINGS].schedules_per_user
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count()).select_from(Schedule).where(Schedule.owner_id == user_id)
        )
        if int(count or 0) >= limit:
            raise Conflict(
                f"You have {limit} schedules, the most one account may keep: delete one first.",
                code="too_many_schedules",
            )
        schedule = Schedule(
            owner_id=user_id,
            status="active",
            next_run_at=cron.next_run(data["cron"], data["timezone"], now),
            created_at=now,
            updated_at=now,
            **data,
        )
        session.add(schedule)
    return schedule


async def update(
    app: web.Application,
    user_id: str,
    schedule_id: str,
    changes: dict[str, Any],
    *,
    now: datetime | None = None,
) -> Schedule:
    """Change some fields; the whole schedule is checked again. A new expression or zone moves
    an active schedule's next run."""
    db = app[DB]
    current = await get(db, user_id, schedule_id)
    data = {k: getattr(current, k) for k in FIELDS}
    data.update({k: v for k, v in changes.items() if k in FIELDS})
    if data["timezone"] is None:
        data["timezone"] = await user_timezone(db, user_id)
    data["values"] = data["values"] or {}
    data = await _checked(app, user_id, data)
    now = now or utcnow()
    async with db.transaction() as session:
        schedule = await _owned(session, user_id, schedule_id)
        timing = (data["cron"], data["timezone"]) != (schedule.cron, schedule.timezone)
        for key, value in data.items():
            setattr(schedule, key, value)
        if timing and schedule.status == "active":
            schedule.next_run_at = cron.next_run(schedule.cron, schedule.timezone, now)
        schedule.updated_at = now
    return schedule


async def remove(db: Database, user_id: str, schedule_id: str) -> None:
    """Delete the schedule and its history (the notes its runs saved stay)."""
    async with db.transaction() as session:
        schedule = await _owned(session, user_id, schedule_id)
        await session.delete(schedule)


async def pause(db: Database, user_id: str, schedule_id: str, *, reason: str = "user") -> Schedule:
    async with db.transaction() as session:
        schedule = await _owned(session, user_id, schedule_id)
        _pause(schedule, reason)
    return schedule


def _pause(schedule: Schedule, reason: str) -> None:
    schedule.status = "paused"
    schedule.paused_reason = reason
    schedule.next_run_at = None
    schedule.updated_at = utcnow()


async def resume(
    app: web.Application, user_id: str, schedule_id: str, *, now: datetime | None = None
) -> Schedule:
    """Active again from the next slot after ``now`` (missed slots are not made up). What it
    runs is checked again: a schedule paused because its template went away stays paused."""
    db = app[DB]
    current = await get(db, user_id, schedule_id)
    await check_target(db, user_id, current.target_type, current.target_id, current.values)
    now = now or utcnow()
    async with db.transaction() as session:
        schedule = await _owned(session, user_id, schedule_id)
        if schedule.status != "active":
            schedule.status = "active"
            schedule.paused_reason = None
            schedule.next_run_at = cron.next_run(schedule.cron, schedule.timezone, now)
            schedule.updated_at = now
    return schedule


async def pause_for(db: Database, schedule_id: str, reason: str) -> bool:
    """Pause a schedule from a run (the owner ran out of credits, the target went away); False
    when it was paused already (the owner hears once)."""
    async with db.transaction() as session:
        result = await session.execute(
            sql_update(Schedule)
            .where(Schedule.id == schedule_id, Schedule.status == "active")
            .values(status="paused", paused_reason=reason, next_run_at=None, updated_at=utcnow())
        )
    return rows_affected(result) == 1


# -- runs ---------------------------------------------------------------------------------------


async def list_runs(
    db: Database, user_id: str, schedule_id: str, *, limit: int = 50, offset: int = 0
) -> tuple[list[ScheduleRun], int]:
    """The schedule's runs, newest first, and how many there are."""
    async with db.read() as session:
        await _owned(session, user_id, schedule_id)
        where = (ScheduleRun.schedule_id == schedule_id, ScheduleRun.owner_id == user_id)
        total = await session.scalar(select(func.count()).select_from(ScheduleRun).where(*where))
        runs = list(
            await session.scalars(
                select(ScheduleRun)
                .where(*where)
                .order_by(ScheduleRun.created_at.desc(), ScheduleRun.id)
                .limit(limit)
                .offset(offset)
            )
        )
    return runs, int(total or 0)


async def start_manual_run(
    db: Database, user_id: str, schedule_id: str, *, now: datetime | None = None
) -> ScheduleRun:
    """A "Run now" run, queued (the caller enqueues it). One at a time: a run of this schedule
    still queued or running is a 409 (a double click spends nothing twice)."""
    now = now or utcnow()
    async with db.transaction() as session:
        schedule = await _owned(session, user_id, schedule_id)
        busy = await session.scalar(
            select(ScheduleRun.id).where(
                ScheduleRun.schedule_id == schedule.id,
                ScheduleRun.status.in_(UNFINISHED),
                ScheduleRun.created_at > now - STALE_RUN,
            )
        )
        if busy is not None:
            raise Conflict(
                "This schedule is running now: wait for that run to finish.",
                code="run_in_progress",
            )
        run = ScheduleRun(
            schedule_id=schedule.id,
            owner_id=user_id,
            trigger="manual",
            due_at=now,
            status="queued",
            created_at=now,
            results=[],
        )
        session.add(run)
    return run


async def claim_due(db: Database, now: datetime, *, limit: int = CLAIM_BATCH) -> list[str]:
    """Claim every active schedule due at ``now``: its next run moves to the first slot after
    ``now`` (slots missed while nothing ran are not made up) and a queued run is made for the
    slot it was due at. Returns the new runs' ids (the caller enqueues them)."""
    async with db.read() as session:
        due = list(
            (
                await session.execute(
                    select(Schedule.id, Schedule.owner_id, Schedule.next_run_at, Schedule.cron)
                    .add_columns(Schedule.timezone)
                    .where(Schedule.status == "active", Schedule.next_run_at <= now)
                    .order_by(Schedule.next_run_at)
                    .limit(limit)
                )
            ).all()
        )
    claimed: list[str] = []
    for schedule_id, owner_id, due_at, expression, zone in due:
        following = cron.next_run(expression, zone, max(now, due_at))
        async with db.transaction() as session:
            result = await session.execute(
                sql_update(Schedule)
                .where(
                    Schedule.id == schedule_id,
                    Schedule.status == "active",
                    Schedule.next_run_at == due_at,
                )
                .values(next_run_at=following, last_run_at=now)
            )
            if rows_affected(result) != 1:
                continue  # another scheduler claimed it, or it was paused or changed meanwhile
            run = ScheduleRun(
                schedule_id=schedule_id,
                owner_id=owner_id,
                trigger="schedule",
                due_at=due_at,
                status="queued",
                created_at=now,
                results=[],
            )
            session.add(run)
        claimed.append(run.id)
    return claimed


async def fail_stale_runs(db: Database, now: datetime) -> int:
    """Mark runs lost with their worker (unfinished for ``STALE_RUN``) failed."""
    async with db.transaction() as session:
        result = await session.execute(
            sql_update(ScheduleRun)
            .where(ScheduleRun.status.in_(UNFINISHED), ScheduleRun.created_at < now - STALE_RUN)
            .values(
                status="failed",
                error_code="interrupted",
                error_message="The run was interrupted (its worker stopped).",
                finished_at=now,
            )
        )
    return rows_affected(result)
