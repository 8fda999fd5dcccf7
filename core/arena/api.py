"""The arena's JSON API: start a blind comparison (SSE), read it, vote, the leaderboard."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from multinotes.arena import service
from multinotes.arena.blind import BlindSink
from multinotes.arena.models import LABELS
from multinotes.arena.schemas import Category, LeaderboardQuery
from multinotes.chat.pipeline import (
    CLIENT_GONE,
    RUNNING,
    SSE_HEADERS,
    encoded,
    run_generation,
    sse,
)
from multinotes.errors import Invalid
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import DB
from multinotes.sharing import access

routes = web.RouteTableDef()


class ComparisonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=200_000)
    models: list[str] | None = Field(
        default=None,
        min_length=service.MIN_MODELS,
        max_length=service.MAX_MODELS,
        description="The models to compare; default: `count` usable models drawn at random.",
    )
    count: int = Field(default=3, ge=service.MIN_MODELS, le=service.MAX_MODELS)


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    best: str | None = Field(default=None, pattern=f"^[{LABELS}]$", description="The best answer.")
    ranks: dict[str, int] | None = Field(
        default=None, description="A rank per label (1 best); equal ranks are ties."
    )
    tie: bool = Field(default=False, description="All answers equally good.")
    category: Category

    @model_validator(mode="after")
    def _one_kind(self) -> VoteIn:
        given = sum([self.best is not None, self.ranks is not None, self.tie])
        if given != 1:
            raise ValueError("give exactly one of best, ranks or tie")
        return self


class AnswerOut(BaseModel):
    label: str
    status: str
    html: str
    rank: int | None
    model: str | None = Field(description="Null until the vote.")


class ComparisonOut(BaseModel):
    id: str
    prompt: str
    created_at: datetime
    voted_at: datetime | None
    category: str | None
    revealed: bool
    is_owner: bool = Field(description="False when it is shared with you (you cannot vote).")
    answers: list[AnswerOut]


class RatedOut(BaseModel):
    rank: int
    model: str
    rating: float
    low: float
    high: float
    wins: float
    games: int


class LeaderboardOut(BaseModel):
    scope: str
    category: str | None
    votes: int
    models: list[RatedOut]


@routes.post("/api/comparisons", name="api_comparisons_start")
@endpoint(
    access="user",
    body=ComparisonIn,
    tags=["comparisons"],
    rate="generation",
    errors=[402],
    content_type="text/event-stream",
)
async def start_comparison(request: web.Request, body: ComparisonIn) -> web.StreamResponse:
    """Start a blind comparison: the answers stream as `start`, `delta`, `done` (and `error`)
    events tagged only with their label (A, B, ...); the first event, `comparison`, gives its
    id and labels. Nothing names a model until the vote."""
    actor = require_verified(request)
    model_ids = await service.pick_models(request.app, body.models, body.count)
    comparison, _prompt, planned, labels = await service.start(
        request.app, actor.user_id, body.prompt, model_ids
    )
    return await _stream_blind(request, comparison.id, planned, labels)


async def _stream_blind(
    request: web.Request, comparison_id: str, planned: list[Any], labels: dict[str, str]
) -> web.StreamResponse:
    """The pipeline's ``stream_generations`` through a ``BlindSink``: the answers run as
    server tasks (a client that leaves does not stop them) and are settled as usual."""
    app = request.app
    sink = BlindSink(labels)
    running = app[RUNNING]
    for item in planned:
        task = asyncio.create_task(
            run_generation(app, item, sink), name=f"generation-{item.generation_id}"
        )
        sink.follow(task)
        running.track(item.generation_id, task)
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        await response.write(
            sse("comparison", {"id": comparison_id, "labels": sorted(labels.values())})
        )
        async for events in sink.drain():
            await response.write(encoded(events))
        await response.write(sse("end", {"id": comparison_id}))
        await response.write_eof()
    except (*CLIENT_GONE, asyncio.CancelledError) as exc:
        sink.close()
        if isinstance(exc, asyncio.CancelledError):
            raise
    return response


@routes.get("/api/comparisons/{id}", name="api_comparison")
@endpoint(access="user", response=ComparisonOut, tags=["comparisons"], errors=[404])
async def get_comparison(request: web.Request) -> dict[str, Any]:
    """One of your comparisons, or one shared with you; its answers' models are null until
    its owner votes."""
    actor = require_user(request)
    loaded, rights = await service.load_seen(
        request.app[DB], actor.user_id, request.match_info["id"]
    )
    return service.comparison_out(loaded, is_owner=rights.is_owner)


@routes.post("/api/comparisons/{id}/vote", name="api_comparison_vote")
@endpoint(
    access="user",
    body=VoteIn,
    response=ComparisonOut,
    tags=["comparisons"],
    errors=[403, 404, 409],
)
async def vote(request: web.Request, body: VoteIn) -> dict[str, Any]:
    """Vote once: the best answer, a ranking or a tie, with the prompt's category. The answer
    names the models. Only the owner votes (403 for someone it is shared with)."""
    actor = require_user(request)
    db, comparison_id = request.app[DB], request.match_info["id"]
    async with access.owner_only(db, actor.user_id, "comparison", comparison_id, "vote"):
        loaded = await service.load(db, actor.user_id, comparison_id)
    labels = [e.label for e in loaded.entries]
    if body.ranks is not None:
        ranks = body.ranks
    elif body.tie:
        ranks = dict.fromkeys(labels, 1)
    else:
        # The best one first, the others tied behind it.
        if body.best not in labels:
            raise Invalid("No such answer.", fields={"best": f"one of {', '.join(labels)}"})
        ranks = {label: 1 if label == body.best else 2 for label in labels}
    voted = await service.vote(db, actor.user_id, comparison_id, ranks, body.category)
    return service.comparison_out(voted)


@routes.get("/api/leaderboard", name="api_leaderboard")
@endpoint(access="user", query=LeaderboardQuery, response=LeaderboardOut, tags=["comparisons"])
async def get_leaderboard(request: web.Request, query: LeaderboardQuery) -> dict[str, Any]:
    """Models rated from blind votes (Bradley-Terry on the Elo scale, 95 % bootstrap interval),
    yours (`scope=mine`) or everyone's; filter by category and vote date."""
    actor = require_user(request)
    return await service.leaderboard_table(request.app[DB], query, actor.user_id)
