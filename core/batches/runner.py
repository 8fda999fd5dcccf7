"""Running a batch: the background task that sends its rows, ``concurrency`` at a time.

Each row is claimed by a conditional UPDATE (``pending`` → ``running``), so two runners of one
batch (a task delivered twice, one started again by the sweep) never send a row twice, and a
row claimed by a runner that died is never sent again (the sweep ends it from what its answers
became). A row goes through the pipeline like a prompt from the workspace: every model's
maximum cost is held at once (all or nothing), the answers stream and are settled to their real
cost. A row whose hold the wallet cannot cover is not sent; no row after it is either (they are
marked "skipped: insufficient credits"), so a batch never overdraws and nothing is half-charged.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import insert, select, update

from multinotes.batches.models import BATCH_OPEN, Batch, BatchAnswer, BatchRow
from multinotes.batches.service import (
    CANCELLED,
    RUN_TASK,
    SKIPPED_NO_CREDITS,
    SWEEP_TASK,
    TOOL,
    get,
    progress,
)
from multinotes.chat.models import Generation, Message
from multinotes.chat.pipeline import RUNNING, EventSink, Planned, plan_generations, run_generation
from multinotes.db import Database, new_id, rows_affected, utcnow
from multinotes.errors import AppError, NotFound, PaymentRequired
from multinotes.keys import CATALOG, DB, TASKS
from multinotes.plugin_host import TaskDef
from multinotes.prompts import variables as vars_

log = structlog.get_logger(__name__)

#: The live channel's event: a batch's progress (``{"id", "status", "progress"}``).
BATCH_PROGRESS = "batch.progress"
#: Seconds between two heartbeats of a running batch, and the silence after which the sweep
#: takes it for abandoned (its process died) and starts it again.
HEARTBEAT_SECONDS = 20.0
ABANDONED_AFTER = timedelta(seconds=90)
#: A row claimed this long ago that never got its answers stored: its runner died between
#: the claim and the hold (nothing was held), so the sweep marks it failed.
CLAIM_LOST_AFTER = timedelta(minutes=5)
INTERRUPTED = "interrupted: the server stopped while this row was running"


class Run:
    """One runner's state: the batch, whether the credits ran out, when progress was sent."""

    def __init__(self, app: web.Application, batch: Batch) -> None:
        from multinotes.live import Throttle

        self.app = app
        self.batch = batch
        self.out_of_credits = False
        # Progress events at most twice a second (and always at the start and the end).
        self.throttle = Throttle()
        self.variables = [vars_.Variable.model_validate(v) for v in batch.variables]

    async def tell_progress(self, force: bool = False) -> None:
        if not self.throttle.ready(force):
            return
        await publish_progress(self.app, self.batch.id, self.batch.user_id)


async def publish_progress(app: web.Application, batch_id: str, user_id: str) -> None:
    """The batch's progress to its owner's open tabs (never raises)."""
    from multinotes.live import HUB

    hub = app.get(HUB)
    if hub is None:
        return
    try:
        batch = await get(app[DB], user_id, batch_id)
        shown = await progress(app[DB], batch)
    except NotFound:
        return
    await hub.publish(
        user_id,
        BATCH_PROGRESS,
        {"id": batch.id, "status": batch.status, "progress": shown.out()},
    )


async def run_batch(app: web.Application, *, batch_id: str) -> None:
    """The task: send the batch's pending rows until none is left, it is cancelled or the
    credits run out; then record how it ended and tell its owner."""
    db = app[DB]
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == "queued")
            .values(status="running", started_at=now, heartbeat_at=now)
        )
        batch = await session.get(Batch, batch_id)
    if batch is None or batch.status != "running":
        log.info("batch_not_running", batch_id=batch_id)
        return
    run = Run(app, batch)
    heart = asyncio.create_task(_beat(db, batch_id), name=f"batch-heartbeat-{batch_id}")
    try:
        await run.tell_progress(force=True)
        workers = [
            asyncio.create_task(_work(run), name=f"batch-{batch_id}-{n}")
            for n in range(max(1, batch.concurrency))
        ]
        await asyncio.gather(*workers)
        if run.out_of_credits:
            await _skip_the_rest(db, batch_id)
        await finish(app, batch_id)
    finally:
        heart.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heart


async def _beat(db: Database, batch_id: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        async with db.transaction() as session:
            await session.execute(
                update(Batch).where(Batch.id == batch_id).values(heartbeat_at=utcnow())
            )


async def _work(run: Run) -> None:
    while not run.out_of_credits:
        row = await claim_row(run.app[DB], run.batch.id)
        if row is None:
            return
        try:
            await _run_row(run, row)
        except Exception:  # a bug must not leave the row claimed forever
            log.exception("batch_row_failed", batch_id=run.batch.id, row_id=row.id)
            await _end_row(run.app[DB], row.id, "failed", "failed unexpectedly")
        await run.tell_progress()


async def claim_row(db: Database, batch_id: str) -> BatchRow | None:
    """The first pending row of a running batch, claimed for this runner; ``None`` when there
    is none left (or the batch is no longer running)."""
    for _attempt in range(20):
        async with db.read() as session:
            status = await session.scalar(select(Batch.status).where(Batch.id == batch_id))
            if status != "running":
                return None
            candidates = list(
                await session.scalars(
                    select(BatchRow)
                    .where(BatchRow.batch_id == batch_id, BatchRow.status == "pending")
                    .order_by(BatchRow.position)
                    .limit(4)
                )
            )
        if not candidates:
            return None
        for row in candidates:
            async with db.transaction() as session:
                claimed = await session.execute(
                    update(BatchRow)
                    .where(BatchRow.id == row.id, BatchRow.status == "pending")
                    .values(status="running", claimed_at=utcnow())
                )
            if rows_affected(claimed) == 1:
                return row
    return None  # others keep taking them: they will finish the batch


async def _end_row(db: Database, row_id: str, status: str, note: str | None) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(BatchRow)
            .where(BatchRow.id == row_id, BatchRow.status == "running")
            .values(status=status, note=note[:500] if note else None, finished_at=utcnow())
        )


async def _options(app: web.Application, models: list[str], system: str | None) -> dict[str, Any]:
    """The template's system prompt for every model that takes one (as the workspace does)."""
    if not system:
        return {}
    takes_system = {
        e.id
        for e in await app[CATALOG].entries()
        if e.id in models and "system" in e.model.Options.model_fields
    }
    return {model: {"system": system} for model in models if model in takes_system}


async def _run_row(run: Run, row: BatchRow) -> None:
    app, batch, db = run.app, run.batch, run.app[DB]
    known = {v.name for v in run.variables}
    try:
        prompt, system = vars_.render(
            batch.body, batch.system_prompt, run.variables, _values(row.inputs, known)
        )
        options = await _options(app, list(batch.models), system)
        planned = await _plan(app, batch, prompt, options)
    except PaymentRequired:
        # Nothing was held for this row: it and every row after it are not sent.
        run.out_of_credits = True
        await _end_row(db, row.id, "skipped", SKIPPED_NO_CREDITS)
        return
    except AppError as exc:  # a model gone, a prompt too long for one: this row only
        detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        await _end_row(db, row.id, "failed", f"{exc.message} {detail}".strip())
        return
    async with db.transaction() as session:
        await (await session.connection()).execute(
            insert(BatchAnswer),
            [
                {
                    "id": new_id(),
                    "batch_id": batch.id,
                    "row_id": row.id,
                    "model_id": item.model_id,
                    "message_id": item.message_id,
                    "generation_id": item.generation_id,
                    "status": "pending",
                    "text": "",
                    "cost": 0,
                }
                for item in planned
            ],
        )
    sink = EventSink()
    sink.close()  # nobody watches: each answer is stored and settled all the same
    tasks = []
    for item in planned:
        task = asyncio.create_task(
            run_generation(app, item, sink), name=f"generation-{item.generation_id}"
        )
        app[RUNNING].track(item.generation_id, task)
        tasks.append(task)
    # The answers belong to the server: a runner cancelled at shutdown lets them settle.
    await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
    await collect_row(db, row.id)


def _values(row_inputs: dict[str, Any], known: set[str]) -> dict[str, Any]:
    return {name: value for name, value in row_inputs.items() if name in known}


async def _plan(
    app: web.Application, batch: Batch, prompt: str, options: dict[str, Any]
) -> list[Planned]:
    """Hold, store and plan the row's answers in the batch's conversation (each row is a new
    first prompt there, answered without the others as history); in a conversation of their
    own when its owner deleted that one meanwhile."""
    common: dict[str, Any] = {
        "user_id": batch.user_id,
        "content": prompt,
        "model_ids": list(batch.models),
        "options": options,
        "parent_id": None,
        "attachments": [],
    }
    if batch.conversation_id is not None:
        try:
            return (await plan_generations(app, conversation_id=batch.conversation_id, **common))[1]
        except NotFound as exc:
            if exc.message != "No such conversation.":
                raise
    return (await plan_generations(app, conversation_id=None, tool=TOOL, **common))[1]


async def collect_row(db: Database, row_id: str) -> bool:
    """Copy the row's answers (text, status, cost, error) from the pipeline's messages and
    generations and end the row: ``done`` when every answer completed, ``failed`` when one
    failed, ``cancelled`` when one was stopped. False (nothing changed) while an answer is
    still pending."""
    async with db.read() as session:
        answers = list(
            await session.scalars(select(BatchAnswer).where(BatchAnswer.row_id == row_id))
        )
        ids = [a.message_id for a in answers if a.message_id]
        messages = {
            m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(ids)))
        }
        generations = {
            g.id: g
            for g in await session.scalars(
                select(Generation).where(Generation.id.in_([a.generation_id for a in answers]))
            )
        }
    statuses: list[str] = []
    updates: list[dict[str, Any]] = []
    for answer in answers:
        message = messages.get(answer.message_id or "")
        generation = generations.get(answer.generation_id)
        status = str(message.status) if message else (generation.status if generation else "failed")
        if status == "pending":
            return False
        statuses.append(status)
        updates.append(
            {
                "id": answer.id,
                "status": status,
                "text": message.content if message else answer.text,
                "cost": generation.cost if generation else 0,
                "error": generation.error_message[:500]
                if generation and generation.error_message
                else None,
            }
        )
    if all(s == "complete" for s in statuses):
        row_status, note = "done", None
    elif "stopped" in statuses:
        row_status, note = "cancelled", CANCELLED
    else:
        row_status = "failed"
        note = str(next((u["error"] for u in updates if u["error"]), "an answer failed"))
    async with db.transaction() as session:
        for values in updates:
            answer_id = values.pop("id")
            await session.execute(
                update(BatchAnswer).where(BatchAnswer.id == answer_id).values(**values)
            )
        await session.execute(
            update(BatchRow)
            .where(BatchRow.id == row_id, BatchRow.status == "running")
            .values(status=row_status, note=note, finished_at=utcnow())
        )
    return True


async def _skip_the_rest(db: Database, batch_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(BatchRow)
            .where(BatchRow.batch_id == batch_id, BatchRow.status == "pending")
            .values(status="skipped", note=SKIPPED_NO_CREDITS, finished_at=utcnow())
        )
        await session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == "running")
            .values(
                status="stopped",
                stop_reason="Your credits ran out: the rows left were skipped.",
            )
        )


async def finish(app: web.Application, batch_id: str) -> bool:
    """Once no row is pending or running: the batch's end (``finished`` unless it was
    cancelled or stopped before), and the owner's toast. True when this call ended it."""
    db = app[DB]
    async with db.read() as session:
        open_rows = await session.scalar(
            select(BatchRow.id)
            .where(BatchRow.batch_id == batch_id, BatchRow.status.in_(("pending", "running")))
            .limit(1)
        )
        batch = await session.get(Batch, batch_id)
    if batch is None or open_rows is not None:
        return False
    async with db.transaction() as session:
        ended = await session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.finished_at.is_(None))
            .values(
                status=Batch.status if batch.status in ("stopped", "cancelled") else "finished",
                finished_at=utcnow(),
            )
        )
    batch = await get(db, batch.user_id, batch_id)
    await publish_progress(app, batch_id, batch.user_id)
    if not rows_affected(ended) and batch.status != "cancelled":
        return False
    await _tell_owner(app, batch)
    return True


async def _tell_owner(app: web.Application, batch: Batch) -> None:
    from multinotes.live import task_finished

    shown = await progress(app[DB], batch)
    counts = shown.out()
    summary = f"{counts['done']} done, {counts['failed']} failed"
    if counts["skipped"]:
        summary += f", {counts['skipped']} skipped"
    if counts["cancelled"]:
        summary += f", {counts['cancelled']} cancelled"
    titles = {
        "finished": f"Your batch “{batch.title}” finished",
        "stopped": f"Your batch “{batch.title}” stopped: credits ran out",
        "cancelled": f"Your batch “{batch.title}” was cancelled",
    }
    await task_finished(
        app,
        batch.user_id,
        kind="batch",
        task_id=batch.id,
        status="failed" if batch.status == "stopped" else "done",
        title=titles.get(batch.status, f"Your batch “{batch.title}” ended"),
        excerpt=f"{summary} · {counts['cost']} credits",
        url=f"/batches/{batch.id}",
        download_url=f"/api/batches/{batch.id}/download?format=xlsx",
    )


async def sweep_batches(app: web.Application) -> int:
    """Every minute, for the batches whose runner stopped beating (its process died): end the
    rows it left claimed (from what their answers became once the pipeline's own sweep settled
    them; failed when nothing was ever held for them), and start the open ones again (queued
    for the next runner). Returns the batches started again."""
    db = app[DB]
    now = utcnow()
    silent = (Batch.heartbeat_at.is_(None) & (Batch.created_at < now - ABANDONED_AFTER)) | (
        Batch.heartbeat_at < now - ABANDONED_AFTER
    )
    async with db.read() as session:
        left_rows = list(
            await session.scalars(
                select(BatchRow)
                .join(Batch, Batch.id == BatchRow.batch_id)
                .where(BatchRow.status == "running", silent)
            )
        )
        with_answers = set(
            await session.scalars(
                select(BatchAnswer.row_id).where(BatchAnswer.row_id.in_([r.id for r in left_rows]))
            )
        )
        stale = list(
            await session.scalars(select(Batch).where(Batch.status.in_(BATCH_OPEN), silent))
        )
    for row in left_rows:
        if row.id in with_answers:
            await collect_row(db, row.id)
        elif row.claimed_at is not None and row.claimed_at < now - CLAIM_LOST_AFTER:
            await _end_row(db, row.id, "failed", INTERRUPTED)
    for batch_id in {r.batch_id for r in left_rows} - {b.id for b in stale}:
        await finish(app, batch_id)  # cancelled or stopped: it ends once its rows have
    restarted = 0
    for batch in stale:
        # The heartbeat renewed first, so the next sweep does not start a second runner.
        async with db.transaction() as session:
            await session.execute(
                update(Batch).where(Batch.id == batch.id).values(heartbeat_at=utcnow())
            )
            requeued = await session.execute(
                update(Batch)
                .where(Batch.id == batch.id, Batch.status == "running")
                .values(status="queued")
            )
        if batch.status == "queued" or rows_affected(requeued):
            await app[TASKS].enqueue(RUN_TASK, batch_id=batch.id)
            restarted += 1
    return restarted


def batch_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", RUN_TASK, run_batch, None),
        TaskDef("core", SWEEP_TASK, sweep_batches, "* * * * *"),
    ]
