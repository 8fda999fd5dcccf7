"""Following a run over SSE (``GET /api/chains/runs/{id}/stream``), from any web process: the
run's state is read from the database, a running step's text from memory when it streams in
this process, else from its stored partial text. A client that comes back gets the whole run
again (finished steps as HTML, the running one's text so far), then live.

Events: ``run`` (the run, once), ``step`` (a step started: position, model, message id),
``delta`` (text of the running step), ``step_done`` (its outcome, cost and HTML), ``run_done``
(the run's outcome), then ``end``."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from multinotes.chains.service import RunView, get_run
from multinotes.chains.views import run_out, step_out
from multinotes.chat.pipeline import CLIENT_GONE, RUNNING, SSE_HEADERS, sse
from multinotes.keys import DB

#: How often the run's state is read again, and a local step's text looked at.
POLL_SECONDS = 0.25
FINISHED = ("complete", "stopped", "failed", "reused", "skipped")


async def follow_run(request: web.Request, user_id: str, run_id: str) -> web.StreamResponse:
    app = request.app
    view = await get_run(app[DB], user_id, run_id)  # NotFound before the stream opens
    response = web.StreamResponse(headers=SSE_HEADERS)
    started: set[int] = set()
    finished: set[int] = set()
    sent_text: dict[int, int] = {}
    try:
        await response.prepare(request)
        await response.write(sse("run", run_out(view)))
        while True:
            for step in view.steps:
                position = step.position
                if position in finished or step.status == "waiting":
                    continue
                if position not in started and step.status != "skipped":
                    started.add(position)
                    await response.write(
                        sse(
                            "step",
                            {
                                "position": position,
                                "model": step.model_id,
                                "message_id": step.message_id,
                                "status": step.status,
                            },
                        )
                    )
                if step.status == "running":
                    text = _live_text(app, view, step.generation_id, step.message_id)
                    offset = sent_text.get(position, 0)
                    if len(text) > offset:
                        await response.write(
                            sse("delta", {"position": position, "text": text[offset:]})
                        )
                        sent_text[position] = len(text)
                elif step.status in FINISHED:
                    finished.add(position)
                    await response.write(sse("step_done", step_out(view, step)))
            if view.run.status != "running" and len(finished) == len(view.steps):
                await response.write(sse("run_done", _outcome(view)))
                await response.write(sse("end", {}))
                await response.write_eof()
                break
            await asyncio.sleep(POLL_SECONDS)
            view = await get_run(app[DB], user_id, run_id)
    except CLIENT_GONE:
        pass
    return response


def _live_text(
    app: web.Application, view: RunView, generation_id: str | None, message_id: str | None
) -> str:
    live = app[RUNNING].texts.get(generation_id or "")
    if live is not None:
        return "".join(live)
    answer = view.answers.get(message_id or "")
    return answer.content if answer is not None else ""


def _outcome(view: RunView) -> dict[str, Any]:
    run = view.run
    return {
        "id": run.id,
        "status": run.status,
        "error_code": run.error_code,
        "error_message": run.error_message,
        "cost": view.cost,
    }
