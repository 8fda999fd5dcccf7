"""Chains and runs as the API answers them and the pages show them."""

from __future__ import annotations

from typing import Any

from multinotes.chains.models import Chain, ChainRunStep
from multinotes.chains.service import RunView
from multinotes.chains.steps import step_title
from multinotes.markdown import render_markdown


def chain_out(chain: Chain, runs: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": chain.id,
        "title": chain.title,
        "description": chain.description,
        "steps": [
            {**step, "title": step_title(step, index)} for index, step in enumerate(chain.steps)
        ],
        "created_at": chain.created_at.isoformat(),
        "updated_at": chain.updated_at.isoformat(),
    }
    if runs is not None:
        out["runs"] = runs
    return out


def step_out(view: RunView, step: ChainRunStep) -> dict[str, Any]:
    answer = view.answers.get(step.message_id or "")
    generation = view.generations.get(step.message_id or "")
    snapshot = view.run.steps[step.position] if step.position < len(view.run.steps) else {}
    text = answer.content if answer is not None else ""
    return {
        "position": step.position,
        "title": step_title(snapshot, step.position),
        "model": step.model_id,
        "status": step.status,
        "prompt": step.prompt,
        "output": text,
        "html": render_markdown(text) if text else "",
        "message_id": step.message_id,
        # A reused answer was paid for by the run that made it.
        "cost": generation.cost if generation and step.status != "reused" else 0,
        "error_code": step.error_code,
        "error_message": step.error_message,
    }


def run_out(view: RunView) -> dict[str, Any]:
    run = view.run
    return {
        "id": run.id,
        "chain_id": run.chain_id,
        "chain_title": view.chain_title,
        "status": run.status,
        "stop_requested": run.stop_requested,
        "input": run.input,
        "file_id": run.file_id,
        "conversation_id": run.conversation_id,
        "rerun_of": run.rerun_of,
        "start_step": run.start_step + 1,
        "error_code": run.error_code,
        "error_message": run.error_message,
        "cost": view.cost,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "steps": [step_out(view, step) for step in view.steps],
    }
