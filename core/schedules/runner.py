"""Running schedules: the minutely due-finder and the execution of one claimed run.

``run_due`` (the core task ``schedules.run_due``, every minute) claims what is due
(``service.claim_due``) and queues each run as the task ``schedules.run``. Tasks are delivered
at least once, so ``execute_run`` first moves its run from ``queued`` to ``running`` with a
conditional UPDATE: a run delivered twice is executed once.

A run goes through the workspace's own pipeline (``answer_prompt``: models resolved, the
maximum cost reserved, answers streamed, stored and settled to their real cost), so it is
metered exactly like a prompt typed in the workspace (a chain through the chains' own runner,
``chain_target``). Each answer is saved as a note in the schedule's folder; with
``email_results`` the owner gets the answers by mail. A wallet that cannot cover a run pauses
the schedule (before anything is charged) and tells the owner in the app and by mail, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select, update

from multinotes.chat.models import Message
from multinotes.db import Database, rows_affected, utcnow
from multinotes.errors import AppError, Invalid, NotFound, PaymentRequired
from multinotes.identity.models import User
from multinotes.keys import CATALOG, DB, TASKS
from multinotes.links import site_url
from multinotes.mail import queue_mail
from multinotes.notes.models import Folder
from multinotes.notes.provenance import save_answer
from multinotes.plugin.answers import answer_prompt
from multinotes.plugin_host import TaskDef
from multinotes.prompts import service as prompts
from multinotes.schedules import cron, service
from multinotes.schedules.models import Schedule, ScheduleRun
from multinotes.sharing.notifications import notify

log = structlog.get_logger(__name__)

DUE_TASK = "schedules.run_due"
RUN_TASK = "schedules.run"
#: The notification's kind (``GET /api/notifications``).
KIND = "schedule"
#: Longest answer text a result mail carries (the note holds all of it).
MAIL_ANSWER_CHARS = 20_000
#: What the owner is told when a schedule pauses itself, by reason.
PAUSED_BECAUSE = {
    "out_of_credits": "Your credits could not cover its last run, so it is paused. Top up, "
    "then resume it.",
    "target_missing": "The template it runs is gone or no longer shared with you, so it is "
    "paused. Choose another template, then resume it.",
    "target_changed": "The template it runs changed and its saved values no longer fit, so it "
    "is paused. Edit the values, then resume it.",
}


class TargetUnusable(Exception):
    """What the schedule runs cannot run any more (every later run would fail the same way)."""

    def __init__(self, reason: str, error: AppError) -> None:
        super().__init__(error.message)
        self.reason = reason
        self.error = error


@dataclass
class Outcome:
    """What a run produced: one result per model, the conversation, the total cost."""

    conversation_id: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    #: Set when the target decides the run's status itself (a chain that ended early failed,
    #: whatever its first steps answered), with the error that ended it.
    status: str | None = None
    error: AppError | None = None
    #: A step after the first could not be paid for (a chain): the schedule pauses.
    unpaid: bool = False

    @property
    def cost(self) -> int:
        return sum(int(r.get("cost") or 0) for r in self.results)


def schedule_path(schedule_id: str) -> str:
    return f"/schedules/{schedule_id}"


# -- the clock ----------------------------------------------------------------------------------


async def run_due(app: web.Application, *, now: datetime | None = None) -> list[str]:
    """Claim every schedule due at ``now`` (default: the current time) and queue its run;
    runs lost with their worker are marked failed first. Returns the queued runs' ids."""
    now = now or utcnow()
    db = app[DB]
    await service.fail_stale_runs(db, now)
    claimed = await service.claim_due(db, now)
    for run_id in claimed:
        await enqueue(app, run_id)
    return claimed


async def enqueue(app: web.Application, run_id: str) -> None:
    await app[TASKS].enqueue(RUN_TASK, run_id=run_id)


# -- one run ------------------------------------------------------------------------------------


async def _start(db: Database, run_id: str) -> tuple[ScheduleRun, Schedule] | None:
    """``queued`` → ``running``, once; None when another delivery of the task got there first
    (or the schedule was deleted with its runs)."""
    async with db.transaction() as session:
        result = await session.execute(
            update(ScheduleRun)
            .where(ScheduleRun.id == run_id, ScheduleRun.status == "queued")
            .values(status="running", started_at=utcnow())
        )
        if rows_affected(result) != 1:
            return None
        run = await session.scalar(select(ScheduleRun).where(ScheduleRun.id == run_id))
        if run is None:
            return None
        schedule = await session.scalar(select(Schedule).where(Schedule.id == run.schedule_id))
    return None if schedule is None else (run, schedule)


async def _finish(
    db: Database,
    run_id: str,
    status: str,
    outcome: Outcome | None = None,
    error: AppError | None = None,
) -> None:
    outcome = outcome or Outcome()
    async with db.transaction() as session:
        await session.execute(
            update(ScheduleRun)
            .where(ScheduleRun.id == run_id)
            .values(
                status=status,
                cost=outcome.cost,
                results=outcome.results,
                conversation_id=outcome.conversation_id,
                error_code=error.error_code if error else None,
                error_message=error.message if error else None,
                finished_at=utcnow(),
            )
        )


async def execute_run(app: web.Application, *, run_id: str) -> str | None:
    """Execute a queued run; its final status (None when it was not queued). Its owner's open
    tabs hear how it ended (``task.finished``)."""
    started = await _start(app[DB], run_id)
    if started is None:
        return None
    run, schedule = started
    status = await _execute(app, schedule, run)
    await _tell_owner(app, schedule, run.id)
    return status


async def _execute(app: web.Application, schedule: Schedule, run: ScheduleRun) -> str:
    db, run_id = app[DB], run.id
    try:
        outcome = await TARGETS[schedule.target_type](app, schedule, run)
    except PaymentRequired as exc:
        await _finish(
            db, run_id, "failed", error=PaymentRequired(exc.message, code="out_of_credits")
        )
        await _pause_and_tell(app, schedule, "out_of_credits")
        return "failed"
    except TargetUnusable as exc:
        await _finish(db, run_id, "failed", error=exc.error)
        await _pause_and_tell(app, schedule, exc.reason)
        return "failed"
    except AppError as exc:  # a model switched off, an unverified address, ...
        await _finish(db, run_id, "failed", error=exc)
        return "failed"
    except Exception:
        log.exception("schedule_run_failed", run_id=run_id, schedule_id=schedule.id)
        await _finish(
            db, run_id, "failed", error=AppError("The run failed unexpectedly.", code="internal")
        )
        return "failed"
    answered = [r for r in outcome.results if r["status"] == "complete"]
    if outcome.status is not None:
        status, error = outcome.status, outcome.error
    elif len(answered) == len(outcome.results):
        status, error = "succeeded", None
    elif answered:
        status, error = "partial", None
    else:
        first = outcome.results[0] if outcome.results else {}
        status = "failed"
        error = AppError(first.get("error") or "No model answered.", code="no_answers")
    if outcome.unpaid:
        error = PaymentRequired("Not enough credits for every step.", code="out_of_credits")
    await _finish(db, run_id, status, outcome, error)
    if outcome.unpaid:
        await _pause_and_tell(app, schedule, "out_of_credits")
    if schedule.email_results and answered:
        await _mail_results(app, schedule, run, answered)
    return status


# -- targets ------------------------------------------------------------------------------------


async def _system_options(
    app: web.Application, models: list[str], system: str | None
) -> dict[str, dict[str, Any]]:
    """The template's system prompt, for each model whose options take one."""
    if not system:
        return {}
    entries = {e.id: e for e in await app[CATALOG].entries()}
    return {
        model: {"system": system}
        for model in models
        if model in entries and "system" in entries[model].model.Options.model_fields
    }


async def live_folder(db: Database, user_id: str, folder_id: str | None) -> str | None:
    """The schedule's folder, if it is still there (a trashed one: the notes go outside any)."""
    if folder_id is None:
        return None
    async with db.read() as session:
        return await session.scalar(
            select(Folder.id).where(
                Folder.id == folder_id, Folder.user_id == user_id, Folder.live_key == ""
            )
        )


async def run_template(app: web.Application, schedule: Schedule, run: ScheduleRun) -> Outcome:
    """Render the template with the schedule's values, ask every model, save each answer."""
    db, owner = app[DB], schedule.owner_id
    try:
        template = await prompts.get(db, owner, schedule.target_id)
    except NotFound as exc:
        raise TargetUnusable("target_missing", exc) from None
    try:
        prompt, system = prompts.render(template, schedule.values or {})
    except Invalid as exc:
        raise TargetUnusable("target_changed", exc) from None
    answers = await answer_prompt(
        app,
        user_id=owner,
        prompt=prompt,
        models=list(schedule.models),
        options=await _system_options(app, list(schedule.models), system),
    )
    await prompts.record_use(db, owner, template.template.id)
    folder_id = await live_folder(db, owner, schedule.folder_id)
    title = note_title(schedule, run)
    outcome = Outcome(conversation_id=answers[0].conversation_id if answers else None)
    for answer in answers:
        note_id = None
        if answer.status == "complete":
            named = title if len(answers) == 1 else f"{title} ({answer.model})"
            note_id = (await save_answer(db, owner, answer.message_id, folder_id, named)).id
        outcome.results.append(
            {
                "model": answer.model,
                "status": answer.status,
                "cost": answer.cost,
                "message_id": answer.message_id,
                "note_id": note_id,
                "error": answer.error_message,
            }
        )
    return outcome


async def run_chain(app: web.Application, schedule: Schedule, run: ScheduleRun) -> Outcome:
    """Run the schedule's chain (``multinotes.schedules.chain_target``)."""
    from multinotes.schedules import chain_target

    return await chain_target.run(app, schedule, run, note_title(schedule, run))


def note_title(schedule: Schedule, run: ScheduleRun) -> str:
    """A saved answer's title: the schedule's name and the slot, on its wall clock."""
    return f"{schedule.name} — {cron.describe(run.due_at, schedule.timezone)}"


Target = Callable[[web.Application, Schedule, ScheduleRun], Awaitable[Outcome]]
#: How each kind of target runs.
TARGETS: dict[str, Target] = {"template": run_template, "chain": run_chain}


# -- telling the owner --------------------------------------------------------------------------


async def _tell_owner(app: web.Application, schedule: Schedule, run_id: str) -> None:
    """A toast in the owner's open tabs: the run ended (``done`` when at least one model
    answered, else ``failed`` with why), linking to its note (one) or the schedule's history."""
    from multinotes.live import task_finished

    async with app[DB].read() as session:
        run = await session.scalar(select(ScheduleRun).where(ScheduleRun.id == run_id))
    if run is None:  # the schedule was deleted with its runs meanwhile
        return
    results = run.results or []
    notes = [r["note_id"] for r in results if r.get("note_id")]
    answered = sum(r.get("status") == "complete" for r in results)
    if run.status == "failed":
        title = f"Your schedule “{schedule.name}” failed"
        excerpt = run.error_message or "The run failed."
    else:
        ran = "ran" if run.status == "succeeded" else "ran, some models failed"
        title = f"Your schedule “{schedule.name}” {ran}"
        saved = f"{len(notes)} note{'s' if len(notes) != 1 else ''} saved"
        if run.status == "partial":
            saved = f"{answered} of {len(results)} models answered, {saved}"
        excerpt = f"{saved} · {run.cost} credits"
    await task_finished(
        app,
        schedule.owner_id,
        kind="schedule_run",
        task_id=run.id,
        status="failed" if run.status == "failed" else "done",
        title=title,
        excerpt=excerpt,
        url=f"/notes/{notes[0]}" if len(notes) == 1 else schedule_path(schedule.id),
    )


async def _pause_and_tell(app: web.Application, schedule: Schedule, reason: str) -> None:
    """Pause the schedule; the first time (it was active), notify and mail its owner."""
    db = app[DB]
    if not await service.pause_for(db, schedule.id, reason):
        return
    path = schedule_path(schedule.id)
    text = PAUSED_BECAUSE[reason]
    async with db.transaction() as session:
        user = await session.scalar(select(User).where(User.id == schedule.owner_id))
        if user is None or not user.is_active:
            return
        notify(
            session,
            user_id=user.id,
            kind=KIND,
            actor_id=None,
            actor_name="",
            object_type="schedule",
            object_id=schedule.id,
            title=f"Schedule paused: {schedule.name}",
            url=path,
            text=text,
        )
        name, address = " ".join(user.name.split()), user.email
    await queue_mail(
        app,
        template="schedule_paused",
        to=address,
        context={
            "name": name,
            "schedule": schedule.name,
            "reason": text,
            "out_of_credits": reason == "out_of_credits",
            "link": site_url(app, path),
            "top_up": site_url(app, "/pricing"),
        },
    )


async def _mail_results(
    app: web.Application, schedule: Schedule, run: ScheduleRun, answered: list[dict[str, Any]]
) -> None:
    async with app[DB].read() as session:
        user = await session.scalar(select(User).where(User.id == schedule.owner_id))
        if user is None or not user.is_active:
            return
        ids = [r["message_id"] for r in answered]
        texts = {
            m.id: m.content
            for m in await session.scalars(select(Message).where(Message.id.in_(ids)))
        }
    answers = []
    for result in answered:
        text = texts.get(result["message_id"], "")
        if len(text) > MAIL_ANSWER_CHARS:
            text = text[:MAIL_ANSWER_CHARS].rstrip() + "\n\n…"
        link = site_url(app, f"/notes/{result['note_id']}") if result["note_id"] else None
        answers.append({"model": result["model"], "text": text, "link": link})
    await queue_mail(
        app,
        template="schedule_result",
        to=user.email,
        context={
            "name": " ".join(user.name.split()),
            "schedule": schedule.name,
            "when": cron.describe(run.due_at, schedule.timezone),
            "answers": answers,
            "link": site_url(app, schedule_path(schedule.id)),
        },
    )


def schedule_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", DUE_TASK, run_due, "* * * * *"),
        TaskDef("core", RUN_TASK, execute_run, None),
    ]
