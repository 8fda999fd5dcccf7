"""The chains' JSON API, ``/api/chains``: create, list, read, change and delete chains (their
owner only); start a run (typed input or an uploaded file's text), follow it over SSE, read it,
stop it, run it again from a step."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.chains import runner, service
from multinotes.chains.schemas import ChainIn, ChainPatch
from multinotes.chains.steps import MAX_STEPS, Step
from multinotes.chains.stream import follow_run
from multinotes.chains.views import chain_out, run_out
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import DB

routes = web.RouteTableDef()
TAGS = ["chains"]


class StepOut(Step):
    title: str


class ChainOut(BaseModel):
    id: str
    title: str
    description: str
    steps: list[StepOut]
    created_at: str
    updated_at: str
    runs: int | None = Field(default=None, description="How many runs it has (in lists).")


class ChainList(BaseModel):
    chains: list[ChainOut]


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(
        default=None,
        description=f"The text {{{{input}}}} stands for (at most {runner.MAX_INPUT} characters).",
    )
    file_id: str | None = Field(
        default=None,
        max_length=64,
        description="Or one of your files: PDF, Word (.docx) or text, or audio (transcribed "
        "by a speech-to-text model, itself a charged answer).",
    )
    speech_model: str | None = Field(
        default=None, max_length=200, description="The speech-to-text model for an audio file."
    )


class RerunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_step: int = Field(ge=1, le=MAX_STEPS, description="The first step to answer again.")


class RunStepOut(BaseModel):
    position: int = Field(description="0-based.")
    title: str
    model: str
    status: str = Field(
        description="waiting, running, complete, stopped, failed, reused or skipped."
    )
    prompt: str = Field(description="What was sent (the variables put in).")
    output: str
    html: str
    message_id: str | None
    cost: int
    error_code: str | None
    error_message: str | None


class RunOut(BaseModel):
    id: str
    chain_id: str
    chain_title: str
    status: str = Field(description="running, complete, stopped or failed.")
    stop_requested: bool
    input: str
    file_id: str | None
    conversation_id: str
    rerun_of: str | None
    start_step: int = Field(description="The first step this run answered (1-based).")
    error_code: str | None
    error_message: str | None
    cost: int = Field(description="Credits charged for the steps this run answered.")
    created_at: str
    finished_at: str | None
    steps: list[RunStepOut]


class RunList(BaseModel):
    runs: list[RunOut]


@routes.get("/api/chains", name="api_chains")
@endpoint(access="user", response=ChainList, tags=TAGS)
async def list_chains(request: web.Request) -> dict[str, Any]:
    """Your chains, the most recently changed first."""
    actor = require_user(request)
    found = await service.list_chains(request.app[DB], actor.user_id)
    return {"chains": [chain_out(item.chain, item.runs) for item in found]}


@routes.post("/api/chains", name="api_chains_create")
@endpoint(access="user", body=ChainIn, response=ChainOut, status=201, tags=TAGS)
async def create_chain(request: web.Request, body: ChainIn) -> dict[str, Any]:
    """Create a chain. 422 names the field of each problem: `steps.N.model` (not a usable text
    model), `steps.N.prompt` (`{{stepM}}` of a step that is not earlier, code
    `unknown_variable`), `steps.N.template_id`, `steps.N.values.<name>`, `steps` (too many)."""
    actor = require_user(request)
    chain = await service.create(
        request.app, actor.user_id, body.title, body.description, body.steps
    )
    return chain_out(chain)


@routes.get("/api/chains/runs/{id}", name="api_chain_run")
@endpoint(access="user", response=RunOut, tags=TAGS, errors=[404])
async def get_run(request: web.Request) -> dict[str, Any]:
    """One of your runs: each step's prompt, answer, status and cost."""
    actor = require_user(request)
    view = await service.get_run(request.app[DB], actor.user_id, request.match_info["id"])
    return run_out(view)


@routes.get("/api/chains/runs/{id}/stream", name="api_chain_run_stream")
@endpoint(access="user", tags=TAGS, errors=[404], content_type="text/event-stream")
async def stream_run(request: web.Request) -> web.StreamResponse:
    """The run as it happens: `run`, then per step `step`, `delta` (its text) and `step_done`
    (status, cost, HTML), then `run_done` and `end`. Reconnecting replays the run so far."""
    actor = require_user(request)
    return await follow_run(request, actor.user_id, request.match_info["id"])


@routes.post("/api/chains/runs/{id}/cancel", name="api_chain_run_cancel")
@endpoint(access="user", response=RunOut, tags=TAGS, errors=[404])
async def cancel_run(request: web.Request) -> dict[str, Any]:
    """Stop the run: no further step starts and the running answer stops (keeping its text,
    charged for what was delivered). The run ends `stopped` moments later."""
    actor = require_user(request)
    view = await runner.stop(request.app, actor.user_id, request.match_info["id"])
    return run_out(view)


@routes.post("/api/chains/runs/{id}/rerun", name="api_chain_run_rerun")
@endpoint(
    access="user",
    body=RerunIn,
    response=RunOut,
    status=201,
    tags=TAGS,
    rate="generation",
    errors=[402, 404, 409],
)
async def rerun(request: web.Request, body: RerunIn) -> dict[str, Any]:
    """A new run from step `from_step` (1-based) with the chain's steps as they are now,
    reusing this run's answers to the earlier steps and its input (409 while it runs)."""
    actor = require_verified(request)
    view = await runner.rerun(request.app, actor.user_id, request.match_info["id"], body.from_step)
    return run_out(view)


@routes.get("/api/chains/{id}", name="api_chain")
@endpoint(access="user", response=ChainOut, tags=TAGS, errors=[404])
async def get_chain(request: web.Request) -> dict[str, Any]:
    """One of your chains."""
    actor = require_user(request)
    return chain_out(await service.get(request.app[DB], actor.user_id, request.match_info["id"]))


@routes.patch("/api/chains/{id}", name="api_chain_update")
@endpoint(access="user", body=ChainPatch, response=ChainOut, tags=TAGS, errors=[404])
async def update_chain(request: web.Request, body: ChainPatch) -> dict[str, Any]:
    """Change your chain (the steps are checked as on create). Runs keep the steps they ran."""
    actor = require_user(request)
    changes = body.model_dump(exclude_unset=True)
    chain = await service.update(request.app, actor.user_id, request.match_info["id"], changes)
    return chain_out(chain)


@routes.delete("/api/chains/{id}", name="api_chain_delete")
@endpoint(access="user", status=204, tags=TAGS, errors=[404])
async def delete_chain(request: web.Request) -> None:
    """Delete your chain and its runs; their conversations stay in your workspace."""
    actor = require_user(request)
    await service.remove(request.app[DB], actor.user_id, request.match_info["id"])


@routes.get("/api/chains/{id}/runs", name="api_chain_runs")
@endpoint(access="user", response=RunList, tags=TAGS, errors=[404])
async def list_runs(request: web.Request) -> dict[str, Any]:
    """The chain's latest runs, newest first."""
    actor = require_user(request)
    views = await service.list_runs(request.app[DB], actor.user_id, request.match_info["id"])
    return {"runs": [run_out(v) for v in views]}


@routes.post("/api/chains/{id}/runs", name="api_chain_run_start")
@endpoint(
    access="user",
    body=RunIn,
    response=RunOut,
    status=201,
    tags=TAGS,
    rate="generation",
    errors=[402, 404],
)
async def start_run(request: web.Request, body: RunIn) -> dict[str, Any]:
    """Run the chain on `input` or on the text of `file_id`. The first step is paid for
    before anything is kept (402); follow the run at `/api/chains/runs/{id}/stream`. 422:
    `input` missing or over 100,000 characters (`input_too_large`), a file without readable
    text, audio without a usable speech-to-text model (`speech_to_text_unavailable`)."""
    actor = require_verified(request)
    view = await runner.start_run(
        request.app,
        actor.user_id,
        request.match_info["id"],
        text=body.input,
        file_id=body.file_id,
        speech_model=body.speech_model,
    )
    return run_out(view)
