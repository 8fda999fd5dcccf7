"""Scheduled chains: a schedule whose ``target_type`` is ``chain`` runs one of its owner's
chains (``multinotes.chains``) with a fixed ``{{input}}`` (the schedule's ``values["input"]``).

The chain runs through its own runner (each step planned, reserved and settled like a prompt);
this waits for the run to end, then saves the last step's answer (the chain's output) as the
run's note. A first step the wallet cannot cover is a ``PaymentRequired`` before anything is
kept; a later one ends the chain run with a payment error, and the outcome says so: either way
the schedule pauses as it does for a template.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from multinotes.chains import runner as chains_runner
from multinotes.chains import service as chains
from multinotes.chains.steps import uses_input
from multinotes.db import Database
from multinotes.errors import AppError, Invalid, NotFound
from multinotes.keys import DB
from multinotes.notes.provenance import save_answer
from multinotes.schedules.models import Schedule, ScheduleRun
from multinotes.schedules.runner import Outcome, TargetUnusable, live_folder

#: Error codes of a step its wallet could not cover (the pipeline's and the wallet's).
UNPAID = frozenset({"payment_required", "insufficient_credits", "out_of_credits"})
#: How often the end of a chain run is looked for when another process runs it.
POLL_SECONDS = 0.5


async def check(db: Database, user_id: str, chain_id: str, values: dict[str, Any]) -> str:
    """The chain exists for the user and ``values`` gives what it needs; its title."""
    try:
        chain = await chains.get(db, user_id, chain_id)
    except NotFound:
        raise Invalid(
            "No such chain.", code="chain_not_found", fields={"target_id": "no such chain"}
        ) from None
    unknown = sorted(set(values) - {"input"})
    if unknown:
        raise Invalid(
            "A chain takes one value, its input.",
            fields={f"values.{name}": "a chain takes only input" for name in unknown},
        )
    if uses_input(chain.steps) and not str(values.get("input") or "").strip():
        raise Invalid(
            "This chain uses {{input}}: give the input every run uses.",
            code="input_required",
            fields={"values.input": "required: the steps use {{input}}"},
        )
    return chain.title


async def _ended(app: web.Application, user_id: str, run_id: str) -> chains.RunView:
    task = app[chains_runner.CHAIN_RUNS].tasks.get(run_id)
    if task is not None:
        await asyncio.shield(asyncio.wait({task}))
    while True:
        view = await chains.get_run(app[DB], user_id, run_id)
        if view.run.status != "running":
            return view
        await asyncio.sleep(POLL_SECONDS)


async def run(
    app: web.Application, schedule: Schedule, run_row: ScheduleRun, note_title: str
) -> Outcome:
    """Run the chain to its end; one result per step, the output saved as a note."""
    db, owner = app[DB], schedule.owner_id
    values = dict(schedule.values or {})
    try:
        await check(db, owner, schedule.target_id, values)
    except Invalid as exc:
        reason = "target_missing" if exc.error_code == "chain_not_found" else "target_changed"
        raise TargetUnusable(reason, exc) from None
    started = await chains_runner.start_run(
        app, owner, schedule.target_id, text=str(values.get("input") or ""), file_id=None
    )
    view = await _ended(app, owner, started.run.id)
    outcome = Outcome(conversation_id=view.run.conversation_id)
    last_complete = None
    for step in view.steps:
        generation = view.generations.get(step.message_id or "")
        if step.status == "complete":
            last_complete = step
        outcome.results.append(
            {
                "model": step.model_id,
                "status": step.status,
                "cost": int(generation.cost or 0) if generation else 0,
                "message_id": step.message_id,
                "note_id": None,
                "error": step.error_message,
            }
        )
    if view.run.status == "complete" and last_complete is not None:
        folder_id = await live_folder(db, owner, schedule.folder_id)
        note = await save_answer(db, owner, str(last_complete.message_id), folder_id, note_title)
        outcome.results[last_complete.position]["note_id"] = note.id
    outcome.unpaid = view.run.status == "failed" and view.run.error_code in UNPAID
    if view.run.status == "complete":
        outcome.status = "succeeded"
    else:
        outcome.status = "failed"
        outcome.error = AppError(
            view.run.error_message or f"The chain run ended {view.run.status}.",
            code=view.run.error_code or f"chain_{view.run.status}",
        )
    return outcome
