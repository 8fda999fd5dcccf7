"""Running a chain: the steps one after another through the generation pipeline, as a task of
the server (not of the request that started it: a client that leaves does not stop a run).

Each step is planned like any prompt (model resolved, its maximum cost held, prompt and pending
answer stored in the run's conversation), streamed with ``run_generation`` and settled to its
real cost. The first step to run is planned in the starting request, so a wallet that cannot pay
for it is a 402 before anything is kept. A later step that cannot be paid for ends the run
``failed`` (code ``insufficient_credits``) with the earlier answers kept and nothing overdrawn. Stop
sets ``stop_requested`` and cancels the step's generation (in whichever process streams it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select, update

from multinotes.chains import documents
from multinotes.chains.models import Chain, ChainRun, ChainRunStep
from multinotes.chains.service import RunView, get, get_run, run_row
from multinotes.chains.steps import Step, render, step_title, uses_input
from multinotes.chat.models import Conversation, Generation, Message
from multinotes.chat.pipeline import (
    RUNNING,
    EventSink,
    Planned,
    cancel_generation,
    plan_generations,
    run_generation,
)
from multinotes.db import new_id, utcnow
from multinotes.errors import AppError, Conflict, Invalid, NotFound
from multinotes.files.models import File
from multinotes.files.sniff import KINDS
from multinotes.keys import CATALOG, DB, METRICS
from multinotes.plugin_host import TaskDef
from multinotes.prompts import service as templates
from multinotes.providers import Attachment
from multinotes.storage import objects

log = structlog.get_logger(__name__)

#: The tool of a run's conversation (the workspace lists it like any other).
TOOL = "chain"
#: Longest input a run takes (typed, or a document's text), in characters.
MAX_INPUT = 100_000


class RunningChains:
    """The runs executing in this process (run id → task), so shutdown can end them."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def track(self, run_id: str, task: asyncio.Task[None]) -> None:
        self.tasks[run_id] = task
        task.add_done_callback(lambda _task: self.tasks.pop(run_id, None))


CHAIN_RUNS: web.AppKey[RunningChains] = web.AppKey("running_chains")


async def chain_runs_ctx(app: web.Application) -> AsyncIterator[None]:
    """At cleanup (before the database closes): a run still going is cancelled (its step's
    answer is stored and settled by the pipeline) and ends ``failed`` (``interrupted``)."""
    yield
    tasks = list(app[CHAIN_RUNS].tasks.values())
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=10)


# -- the input -------------------------------------------------------------------------------------


@dataclass
class RunInput:
    text: str
    file_id: str | None = None
    #: A transcription made for it (an audio file): the run continues its conversation.
    conversation_id: str | None = None


async def _file_row(app: web.Application, user_id: str, file_id: str) -> File:
    async with app[DB].read() as session:
        row = await session.scalar(select(File).where(File.id == file_id, File.user_id == user_id))
    if row is None:
        raise Invalid("No such file.", code="file_not_found", fields={"file_id": "no such file"})
    return row


def _check_size(text: str, field: str) -> str:
    if len(text) > MAX_INPUT:
        raise Invalid(
            f"The input is {len(text)} characters long; a run takes at most {MAX_INPUT}.",
            code="input_too_large",
            fields={field: f"at most {MAX_INPUT} characters (it has {len(text)})"},
        )
    return text


async def read_input(
    app: web.Application,
    user_id: str,
    *,
    text: str | None,
    file_id: str | None,
    speech_model: str | None,
    steps: list[dict[str, Any]],
) -> RunInput:
    """The run's ``{{input}}``: the text given, or the text of the user's file (a document's,
    or an audio file's transcript). Refused before anything is kept or charged, except that a
    transcription is itself a metered generation (kept in the run's conversation)."""
    if text is not None and file_id is not None:
        raise Invalid(
            "Give the input as text or as a file, not both.",
            fields={"file_id": "send either input or file_id"},
        )
    if file_id is None:
        if not (text or "").strip() and uses_input(steps):
            raise Invalid(
                "This chain uses {{input}}: give a text or a file.",
                code="input_required",
                fields={"input": "required: the steps use {{input}}"},
            )
        return RunInput(_check_size(text or "", "input"))
    row = await _file_row(app, user_id, file_id)
    data = await objects.read_bytes(objects.storage_of(app), row.storage_key)
    kind = KINDS.get(row.kind)
    if kind is not None and kind.family == "audio":
        transcript, conversation_id = await transcribe(app, user_id, row, data, speech_model)
        return RunInput(_check_size(transcript, "file_id"), row.id, conversation_id)
    extracted = await documents.extract_text(row.kind, data)
    return RunInput(_check_size(extracted, "file_id"), row.id)


async def transcribe(
    app: web.Application, user_id: str, row: File, data: bytes, speech_model: str | None
) -> tuple[str, str]:
    """The audio's transcript by a speech-to-text model, through the pipeline (held, metered,
    saved): its text and its conversation. 422 on ``file_id`` when no such model can be used
    or it refuses the file."""
    usable = [
        e.id
        for e in await app[CATALOG].entries()
        if e.available and "speech_to_text" in e.model.capabilities
    ]
    if speech_model is not None and speech_model not in usable:
        raise Invalid(
            f"{speech_model!r} is not a usable speech-to-text model.",
            code="unknown_model",
            fields={"speech_model": "not a usable speech-to-text model"},
        )
    if not usable:
        raise Invalid(
            "No speech-to-text model can be used on this instance, so audio cannot be "
            "transcribed; upload a document or text instead.",
            code="speech_to_text_unavailable",
            fields={"file_id": "audio needs a speech-to-text model, and none is available"},
        )
    model = speech_model or usable[0]
    try:
        _prompt, planned = await plan_generations(
            app,
            user_id=user_id,
            conversation_id=None,
            content="",
            model_ids=[model],
            options={},
            parent_id=None,
            attachments=[Attachment(row.content_type, data, row.name)],
            tool=TOOL,
        )
    except Invalid as exc:
        raise Invalid(
            f"The audio could not be transcribed: {exc.message}",
            code="transcription_refused",
            fields={"file_id": f"{model} refused it: {exc.message}"[:300]},
        ) from None
    item = planned[0]
    await _await_generation(app, item, cancel_if_stopping=None)
    async with app[DB].read() as session:
        message = await session.get(Message, item.message_id)
        generation = await session.get(Generation, item.generation_id)
    assert message is not None
    if message.status != "complete" or not message.content.strip():
        reason = (generation.error_message if generation else None) or "no text came back"
        raise Invalid(
            f"The audio could not be transcribed: {reason}",
            code="transcription_failed",
            fields={"file_id": reason[:300]},
        )
    return message.content.strip(), item.conversation_id


# -- starting --------------------------------------------------------------------------------------


async def snapshot_steps(
    app: web.Application, user_id: str, steps: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The steps as a run keeps them: a template step carries its template's body and system
    prompt (as they are now) and a value for every variable (given, else its default)."""
    snapshot = []
    for index, raw in enumerate(steps):
        step = Step.model_validate(raw)
        kept: dict[str, Any] = {"title": step_title(raw, index), "model": step.model}
        if step.template_id is None:
            kept["prompt"] = step.prompt
            kept["system_prompt"] = step.system_prompt
        else:
            try:
                view = await templates.get(app[DB], user_id, step.template_id)
            except NotFound:
                raise Invalid(
                    f"Step {index + 1}'s template no longer exists; edit the chain.",
                    code="template_not_found",
                    fields={f"steps.{index}.template_id": "no such template"},
                ) from None
            kept["prompt"] = view.template.body
            kept["system_prompt"] = view.template.system_prompt
            kept["template_id"] = step.template_id
            kept["values"] = {
                v.name: step.values.get(v.name)
                or (vars_default(v.default) if v.default is not None else "")
                for v in view.variables
            }
        snapshot.append(kept)
    return snapshot


def vars_default(value: str | float) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


async def _plan_step(
    app: web.Application,
    user_id: str,
    conversation_id: str | None,
    snapshot: dict[str, Any],
    context: dict[str, str],
) -> tuple[str, Planned]:
    prompt, system = render(snapshot, context)
    model = snapshot["model"]
    _message, planned = await plan_generations(
        app,
        user_id=user_id,
        conversation_id=conversation_id,
        content=prompt,
        model_ids=[model],
        options={model: {"system": system}} if system else {},
        parent_id=None,
        attachments=[],
        tool=TOOL,
    )
    return prompt, planned[0]


async def start_run(
    app: web.Application,
    user_id: str,
    chain_id: str,
    *,
    text: str | None,
    file_id: str | None,
    speech_model: str | None = None,
) -> RunView:
    """Check the input, plan the first step (402 when it cannot be paid for: nothing kept),
    store the run and start it."""
    chain = await get(app[DB], user_id, chain_id)
    snapshot = await snapshot_steps(app, user_id, chain.steps)
    given = await read_input(
        app, user_id, text=text, file_id=file_id, speech_model=speech_model, steps=chain.steps
    )
    return await _launch(
        app,
        user_id,
        chain,
        snapshot,
        given,
        start=0,
        reused=[],
        rerun_of=None,
    )


async def rerun(app: web.Application, user_id: str, run_id: str, from_step: int) -> RunView:
    """A new run of the chain (its steps as they are now) from step ``from_step`` (1-based),
    reusing the answers the earlier run gave to the steps before it; same input, same
    conversation."""
    source = await get_run(app[DB], user_id, run_id)
    if source.run.status == "running":
        raise Conflict("Stop the run or wait for it to end first.", code="run_in_progress")
    chain = await get(app[DB], user_id, source.run.chain_id)
    if not 1 <= from_step <= len(chain.steps):
        raise Invalid(
            f"The chain has {len(chain.steps)} steps.",
            fields={"from_step": f"1 to {len(chain.steps)}"},
        )
    reused: list[ChainRunStep] = []
    for step in source.steps[: from_step - 1]:
        answer = source.answers.get(step.message_id or "")
        if step.status not in ("complete", "reused") or answer is None:
            raise Invalid(
                f"Step {step.position + 1} of that run has no answer to reuse.",
                code="nothing_to_reuse",
                fields={"from_step": f"at most {step.position + 1}: re-run from there"},
            )
        reused.append(step)
    if len(reused) < from_step - 1:
        raise Invalid(
            "That run has fewer steps than this.",
            code="nothing_to_reuse",
            fields={"from_step": f"at most {len(reused) + 1}"},
        )
    snapshot = await snapshot_steps(app, user_id, chain.steps)
    given = RunInput(source.run.input, source.run.file_id, source.run.conversation_id)
    return await _launch(
        app,
        user_id,
        chain,
        snapshot,
        given,
        start=from_step - 1,
        reused=[(s, source.answers[s.message_id or ""].content) for s in reused],
        rerun_of=source.run.id,
    )


async def _launch(
    app: web.Application,
    user_id: str,
    chain: Chain,
    snapshot: list[dict[str, Any]],
    given: RunInput,
    *,
    start: int,
    reused: list[tuple[ChainRunStep, str]],
    rerun_of: str | None,
) -> RunView:
    context = {"input": given.text}
    for step, output in reused:
        context[f"step{step.position + 1}"] = output
    prompt, first = await _plan_step(app, user_id, given.conversation_id, snapshot[start], context)
    run_id = new_id()
    now = utcnow()
    async with app[DB].transaction() as session:
        if given.conversation_id is None:  # a new conversation, named after the chain
            await session.execute(
                update(Conversation)
                .where(Conversation.id == first.conversation_id)
                .values(title=f"{chain.title} (chain)"[:200])
            )
        session.add(
            ChainRun(
                id=run_id,
                chain_id=chain.id,
                user_id=user_id,
                conversation_id=first.conversation_id,
                status="running",
                input=given.text,
                file_id=given.file_id,
                rerun_of=rerun_of,
                start_step=start,
                steps=snapshot,
                created_at=now,
            )
        )
        await session.flush()
        kept = {step.position: step for step, _ in reused}
        for position, step_snapshot in enumerate(snapshot):
            row = ChainRunStep(run_id=run_id, position=position, model_id=step_snapshot["model"])
            if position in kept:
                row.status, row.prompt = "reused", kept[position].prompt
                row.message_id = kept[position].message_id
            elif position == start:
                row.status, row.prompt = "running", prompt
                row.message_id, row.generation_id = first.message_id, first.generation_id
            session.add(row)
    task = asyncio.create_task(
        execute(app, run_id, user_id, first, context), name=f"chain-run-{run_id}"
    )
    app[CHAIN_RUNS].track(run_id, task)
    return await get_run(app[DB], user_id, run_id)


# -- executing -------------------------------------------------------------------------------------


async def _await_generation(
    app: web.Application, item: Planned, cancel_if_stopping: str | None
) -> None:
    """Run one planned answer to its end (stored and settled by the pipeline). Nobody watches
    its events here: followers read its text from memory or the database."""
    sink = EventSink()
    sink.close()
    metrics = app[METRICS]
    task = asyncio.create_task(
        run_generation(app, item, sink), name=f"generation-{item.generation_id}"
    )
    app[RUNNING].track(item.generation_id, task)
    metrics.streams_in_flight.inc()
    task.add_done_callback(lambda _task: metrics.streams_in_flight.dec())
    if cancel_if_stopping is not None and await _stop_requested(app, cancel_if_stopping):
        task.cancel()  # Stop was pressed while this step was being planned
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # This run is being cancelled (shutdown): stop the answer; the pipeline stores it.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise


async def _stop_requested(app: web.Application, run_id: str) -> bool:
    async with app[DB].read() as session:
        return bool(
            await session.scalar(select(ChainRun.stop_requested).where(ChainRun.id == run_id))
        )


async def _set_step(app: web.Application, run_id: str, position: int, **values: Any) -> None:
    async with app[DB].transaction() as session:
        await session.execute(
            update(ChainRunStep)
            .where(ChainRunStep.run_id == run_id, ChainRunStep.position == position)
            .values(**values)
        )


async def _end_run(
    app: web.Application,
    run_id: str,
    status: str,
    error: tuple[str, str] | None = None,
) -> None:
    """The run's outcome; steps that did not get their turn are ``skipped``."""
    async with app[DB].transaction() as session:
        await session.execute(
            update(ChainRunStep)
            .where(ChainRunStep.run_id == run_id, ChainRunStep.status.in_(("waiting", "running")))
            .values(status="skipped")
        )
        await session.execute(
            update(ChainRun)
            .where(ChainRun.id == run_id, ChainRun.status == "running")
            .values(
                status=status,
                error_code=error[0] if error else None,
                error_message=error[1][:500] if error else None,
                finished_at=utcnow(),
            )
        )


async def execute(
    app: web.Application, run_id: str, user_id: str, first: Planned, context: dict[str, str]
) -> None:
    """The run's steps from its ``start_step`` on, then its outcome, whatever happens."""
    try:
        await _execute(app, run_id, user_id, first, context)
    except asyncio.CancelledError:
        await asyncio.shield(
            _end_run(app, run_id, "failed", ("interrupted", "The server stopped during the run."))
        )
        raise
    except Exception:
        log.exception("chain_run_failed", run=run_id)
        await _end_run(app, run_id, "failed", ("internal_error", "The run failed unexpectedly."))


async def _execute(
    app: web.Application, run_id: str, user_id: str, first: Planned, context: dict[str, str]
) -> None:
    async with app[DB].read() as session:
        run = await run_row(session, user_id, run_id)
    for position in range(run.start_step, len(run.steps)):
        snapshot = run.steps[position]
        if position == run.start_step:
            item = first
        else:
            if await _stop_requested(app, run_id):
                await _end_run(app, run_id, "stopped")
                return
            try:
                prompt, item = await _plan_step(
                    app, user_id, run.conversation_id, snapshot, context
                )
            except AppError as exc:
                # Unpaid (402), a model gone, a prompt too long for it: the run ends here and
                # the answers so far stay.
                await _set_step(
                    app,
                    run_id,
                    position,
                    status="failed",
                    error_code=exc.error_code,
                    error_message=exc.message[:500],
                )
                await _end_run(app, run_id, "failed", (exc.error_code, exc.message))
                return
            await _set_step(
                app,
                run_id,
                position,
                status="running",
                prompt=prompt,
                message_id=item.message_id,
                generation_id=item.generation_id,
            )
        await _await_generation(app, item, cancel_if_stopping=run_id)
        async with app[DB].read() as session:
            message = await session.get(Message, item.message_id)
            generation = await session.get(Generation, item.generation_id)
        status = str(message.status) if message else "failed"
        error = (
            (generation.error_code, generation.error_message or "")
            if generation and generation.error_code
            else None
        )
        await _set_step(
            app,
            run_id,
            position,
            status=status,
            error_code=error[0] if error else None,
            error_message=error[1][:500] if error else None,
        )
        if status != "complete":
            await _end_run(app, run_id, "stopped" if status == "stopped" else "failed", error)
            return
        assert message is not None
        context[f"step{position + 1}"] = message.content
    await _end_run(app, run_id, "complete")


# -- stopping --------------------------------------------------------------------------------------


async def stop(app: web.Application, user_id: str, run_id: str) -> RunView:
    """Ask the run to stop: no further step starts, and the running step's answer is
    cancelled (it keeps the text so far and is charged for it). Stopping an ended run
    changes nothing."""
    db = app[DB]
    async with db.transaction() as session:
        run = await run_row(session, user_id, run_id)
        if run.status == "running":
            run.stop_requested = True
    view = await get_run(db, user_id, run_id)
    for step in view.steps:
        if step.status == "running" and step.generation_id:
            await cancel_generation(app, user_id, step.generation_id)
    return view


# -- runs a dead process left ------------------------------------------------------------------


#: A run whose answers all ended this long ago without the run moving on was left by a process
#: that died (a live run starts its next step within moments of an answer's end).
ABANDONED_AFTER = timedelta(minutes=2)
SWEEP_TASK = "core.sweep_chain_runs"


async def sweep_chain_runs(app: web.Application) -> int:
    """Every minute: end the runs whose process died (``failed``, ``interrupted``). A run with
    an answer still pending is left alone (the pipeline's own sweep finishes that answer
    first). Returns the runs ended."""
    db = app[DB]
    cutoff = utcnow() - ABANDONED_AFTER
    mine = set(app[CHAIN_RUNS].tasks) if CHAIN_RUNS in app else set()
    async with db.read() as session:
        runs = list(
            await session.scalars(
                select(ChainRun).where(ChainRun.status == "running", ChainRun.created_at < cutoff)
            )
        )
    ended = 0
    for run in runs:
        if run.id in mine:
            continue
        async with db.read() as session:
            steps = list(
                await session.scalars(select(ChainRunStep).where(ChainRunStep.run_id == run.id))
            )
            ids = [s.generation_id for s in steps if s.generation_id and s.status != "reused"]
            generations = (
                list(await session.scalars(select(Generation).where(Generation.id.in_(ids))))
                if ids
                else []
            )
        if any(g.status == "pending" for g in generations):
            continue
        last = max((g.finished_at for g in generations if g.finished_at), default=run.created_at)
        if last >= cutoff:
            continue
        by_id = {g.id: g for g in generations}
        for step in steps:
            generation = by_id.get(step.generation_id or "")
            if step.status == "running" and generation is not None:
                await _set_step(app, run.id, step.position, status=str(generation.status))
        await _end_run(app, run.id, "failed", ("interrupted", "The server stopped during the run."))
        ended += 1
    return ended


def chain_tasks() -> list[TaskDef]:
    return [TaskDef("core", SWEEP_TASK, sweep_chain_runs, "* * * * *")]
