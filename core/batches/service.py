"""Batch runs as their owner sees them: start one (checked whole before anything is stored),
list, read with its progress, read its rows and answers, cancel. Every read is "the batch of
user U": anyone else's is as unknown as a made-up id. The runs themselves are
``multinotes.batches.runner``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, insert, select, update

from multinotes.batches import inputs
from multinotes.batches.models import BATCH_OPEN, Batch, BatchAnswer, BatchRow
from multinotes.chat.models import Conversation
from multinotes.db import Database, new_id, rows_affected, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.keys import CATALOG, DB, TASKS
from multinotes.prompts import service as prompts

RUN_TASK = "batches.run"
SWEEP_TASK = "batches.sweep"
#: The conversations batches keep their prompts and answers in (listed per tool like others).
TOOL = "batch"
MAX_MODELS = 4
MAX_CONCURRENCY = 8
SKIPPED_NO_CREDITS = "skipped: insufficient credits"
CANCELLED = "cancelled"


async def create(
    app: web.Application,
    user_id: str,
    *,
    template_id: str,
    models: list[str],
    columns: list[str],
    rows: inputs.Rows,
    concurrency: int,
) -> Batch:
    """Check the template (one ``user_id`` can see), the models (usable now) and every row,
    then store the batch with its rows and a conversation for its answers, and queue its run.
    Nothing is stored or held when any check fails."""
    db = app[DB]
    view = await prompts.get(db, user_id, template_id)
    if len(set(models)) != len(models):
        raise Invalid("A model is listed twice.", fields={"models": "Each model once."})
    if not 1 <= len(models) <= MAX_MODELS:
        raise Invalid(
            f"Run a batch on 1 to {MAX_MODELS} models.",
            fields={"models": f"1 to {MAX_MODELS} models."},
        )
    entries = await app[CATALOG].resolve_for_use(models)
    not_text = {
        f"models.{index}": "not a text model (a batch asks for text answers)"
        for index, entry in enumerate(entries)
        if "text" not in entry.model.capabilities
    }
    if not_text:
        raise Invalid("Some models cannot answer a batch.", fields=not_text)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise Invalid(fields={"concurrency": f"1 to {MAX_CONCURRENCY} rows at a time."})
    variables = view.variables
    inputs.check_rows(variables, columns, rows)
    template = view.template
    now = utcnow()
    batch = Batch(
        id=new_id(),
        user_id=user_id,
        template_id=template.id,
        conversation_id=new_id(),
        title=template.title[:200],
        body=template.body,
        system_prompt=template.system_prompt,
        variables=[v.model_dump(mode="json") for v in variables],
        columns=columns,
        models=models,
        concurrency=concurrency,
        status="queued",
        total_rows=len(rows),
        created_at=now,
    )
    async with db.transaction() as session:
        connection = await session.connection()
        await connection.execute(
            insert(Conversation).values(
                id=batch.conversation_id,
                user_id=user_id,
                title=f"Batch: {template.title}"[:200],
                tool=TOOL,
                created_at=now,
                updated_at=now,
            )
        )
        session.add(batch)
        await session.flush()
        await connection.execute(
            insert(BatchRow),
            [
                {
                    "id": new_id(),
                    "batch_id": batch.id,
                    "position": number,
                    "inputs": row,
                    "status": "pending",
                }
                for number, row in enumerate(rows, start=1)
            ],
        )
    await prompts.record_use(db, user_id, template.id)
    await app[TASKS].enqueue(RUN_TASK, batch_id=batch.id)
    return batch


async def get(db: Database, user_id: str, batch_id: str) -> Batch:
    """One of ``user_id``'s batches (``NotFound`` for anyone else's)."""
    async with db.read() as session:
        batch = await session.scalar(
            select(Batch).where(Batch.id == batch_id, Batch.user_id == user_id)
        )
    if batch is None:
        raise NotFound("No such batch.")
    return batch


async def list_batches(db: Database, user_id: str, limit: int, offset: int) -> list[Batch]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(Batch)
                .where(Batch.user_id == user_id)
                .order_by(Batch.created_at.desc(), Batch.id)
                .limit(limit)
                .offset(offset)
            )
        )


@dataclass
class Progress:
    total: int
    counts: dict[str, int]
    cost: int

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("done", "failed", "skipped", "cancelled"))

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    @property
    def percent(self) -> int:
        return round(100 * self.finished / self.total) if self.total else 100

    def out(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.counts.get("done", 0),
            "failed": self.counts.get("failed", 0),
            "skipped": self.counts.get("skipped", 0),
            "cancelled": self.counts.get("cancelled", 0),
            "running": self.counts.get("running", 0),
            "remaining": self.remaining,
            "percent": self.percent,
            "cost": self.cost,
        }


async def progress(db: Database, batch: Batch) -> Progress:
    """Rows per status and the credits its answers cost so far (settled ones)."""
    async with db.read() as session:
        counts = {
            status: int(n)
            for status, n in await session.execute(
                select(BatchRow.status, func.count())
                .where(BatchRow.batch_id == batch.id)
                .group_by(BatchRow.status)
            )
        }
        cost = await session.scalar(
            select(func.coalesce(func.sum(BatchAnswer.cost), 0)).where(
                BatchAnswer.batch_id == batch.id
            )
        )
    return Progress(batch.total_rows, counts, int(cost or 0))


def batch_out(batch: Batch, shown: Progress) -> dict[str, Any]:
    return {
        "id": batch.id,
        "title": batch.title,
        "template_id": batch.template_id,
        "conversation_id": batch.conversation_id,
        "models": list(batch.models),
        "columns": list(batch.columns),
        "concurrency": batch.concurrency,
        "status": batch.status,
        "stop_reason": batch.stop_reason,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "progress": shown.out(),
    }


@dataclass
class ResultRow:
    row: BatchRow
    answers: dict[str, BatchAnswer]


async def results(
    db: Database, batch: Batch, *, offset: int = 0, limit: int | None = None
) -> list[ResultRow]:
    """The batch's rows in order, each with its answers by model."""
    query = select(BatchRow).where(BatchRow.batch_id == batch.id).order_by(BatchRow.position)
    if limit is not None:
        query = query.offset(offset).limit(limit)
    async with db.read() as session:
        rows = list(await session.scalars(query))
        answers: dict[str, dict[str, BatchAnswer]] = {}
        if rows:
            first, last = rows[0].position, rows[-1].position
            for answer in await session.scalars(
                select(BatchAnswer)
                .join(BatchRow, BatchRow.id == BatchAnswer.row_id)
                .where(
                    BatchAnswer.batch_id == batch.id,
                    BatchRow.position >= first,
                    BatchRow.position <= last,
                )
            ):
                answers.setdefault(answer.row_id, {})[answer.model_id] = answer
    return [ResultRow(row, answers.get(row.id, {})) for row in rows]


def row_out(result: ResultRow, models: list[str]) -> dict[str, Any]:
    row = result.row
    return {
        "position": row.position,
        "inputs": row.inputs,
        "status": row.status,
        "note": row.note,
        "answers": [
            {
                "model": model,
                "status": answer.status,
                "text": answer.text,
                "cost": answer.cost,
                "error": answer.error,
                "message_id": answer.message_id,
            }
            for model in models
            if (answer := result.answers.get(model)) is not None
        ],
    }


async def cancel(app: web.Application, user_id: str, batch_id: str) -> Batch:
    """Stop a queued or running batch: its rows not yet sent are marked cancelled (nothing was
    held for them) and the answers streaming now are stopped (each settled to what it used).
    Cancelling a batch that already ended changes nothing."""
    from multinotes.chat.pipeline import cancel_generation

    db = app[DB]
    batch = await get(db, user_id, batch_id)
    now = utcnow()
    async with db.transaction() as session:
        stopped = await session.execute(
            update(Batch)
            .where(Batch.id == batch.id, Batch.status.in_(BATCH_OPEN))
            .values(status="cancelled", stop_reason="Cancelled by you.", finished_at=now)
        )
        if rows_affected(stopped):
            await session.execute(
                update(BatchRow)
                .where(BatchRow.batch_id == batch.id, BatchRow.status == "pending")
                .values(status="cancelled", note=CANCELLED, finished_at=now)
            )
    if rows_affected(stopped):
        async with db.read() as session:
            streaming = list(
                await session.scalars(
                    select(BatchAnswer.generation_id)
                    .join(BatchRow, BatchRow.id == BatchAnswer.row_id)
                    .where(BatchAnswer.batch_id == batch.id, BatchRow.status == "running")
                )
            )
        for generation_id in streaming:
            try:
                await cancel_generation(app, user_id, generation_id)
            except NotFound:
                pass  # its conversation was deleted meanwhile
    return await get(db, user_id, batch_id)


def is_open(batch: Batch) -> bool:
    return batch.status in BATCH_OPEN


def finished_at_or_now(batch: Batch) -> datetime:
    return batch.finished_at or utcnow()
