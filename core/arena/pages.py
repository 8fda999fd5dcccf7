"""The arena's pages: start a blind comparison (``/comparisons``), one comparison with its vote
form (``/comparisons/{id}``), and the leaderboard (``/leaderboard``).

Starting streams through ``static/js/arena.js`` (``POST /api/comparisons``); the comparison page
and the vote are plain HTML and a form post, so voting works without JavaScript. Before the vote
nothing on these pages names a comparison's models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import select

from multinotes.arena import service
from multinotes.arena.models import CATEGORIES, ArenaComparison
from multinotes.arena.schemas import LeaderboardQuery
from multinotes.errors import AppError
from multinotes.http.endpoint import page
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user
from multinotes.keys import CATALOG, DB
from multinotes.sharing import access

routes = web.RouteTableDef()
RECENT = 20


async def _names(app: web.Application) -> dict[str, str]:
    return {e.id: e.model.name for e in await app[CATALOG].entries(include_disabled=True)}


async def _owner_name(app: web.Application, owner_id: str) -> str:
    from multinotes.identity import service as identity

    return (await identity.get_user(app[DB], owner_id)).name


@routes.get("/comparisons", name="comparisons")
@page(access="user")
async def comparisons_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    app = request.app
    usable = [
        {"id": e.id, "name": e.model.name, "provider": e.provider.name}
        for e in await app[CATALOG].entries()
        if e.available and "text" in e.model.capabilities
    ]
    async with app[DB].read() as session:
        recent = list(
            await session.scalars(
                select(ArenaComparison)
                .where(ArenaComparison.user_id == actor.user_id)
                .order_by(ArenaComparison.created_at.desc())
                .limit(RECENT)
            )
        )
    return render(
        request,
        "arena/index.html",
        {
            "nav": "comparisons",
            "models": usable,
            "recent": recent,
            "counts": range(service.MIN_MODELS, min(service.MAX_MODELS, len(usable)) + 1),
        },
    )


@routes.get("/comparisons/{id}", name="comparison_page")
@page(access="user")
async def comparison_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    loaded, rights = await service.load_seen(
        request.app[DB], actor.user_id, request.match_info["id"]
    )
    shown = service.comparison_out(loaded, is_owner=rights.is_owner)
    owner = "" if rights.is_owner else await _owner_name(request.app, rights.owner_id)
    # Names only once revealed: before the vote the catalogue is not even consulted.
    names = await _names(request.app) if shown["revealed"] else {}
    return render(
        request,
        "arena/comparison.html",
        {
            "nav": "comparisons",
            "comparison": shown,
            "owner": owner,
            "names": names,
            "categories": CATEGORIES,
            "pending": any(a["status"] == "pending" for a in shown["answers"]),
        },
    )


@routes.post("/comparisons/{id}/vote", name="comparison_vote_form")
@page(access="user", rate="api")
async def comparison_vote(request: web.Request) -> web.Response:
    """The vote form: ``choice`` is a label or ``tie``; ``rank_A``... (all given) rank instead."""
    actor = require_user(request)
    db, comparison_id = request.app[DB], request.match_info["id"]
    async with access.owner_only(db, actor.user_id, "comparison", comparison_id, "vote"):
        loaded = await service.load(db, actor.user_id, comparison_id)
    here = f"/comparisons/{comparison_id}"
    form = await request.post()
    labels = [e.label for e in loaded.entries]
    ranks_given = {label: str(form.get(f"rank_{label}", "")) for label in labels}
    choice = str(form.get("choice", ""))
    if all(v.isdigit() for v in ranks_given.values()):
        ranks = {label: int(v) for label, v in ranks_given.items()}
    elif choice == "tie":
        ranks = dict.fromkeys(labels, 1)
    elif choice in labels:
        ranks = {label: 1 if label == choice else 2 for label in labels}
    else:
        return redirect(here, "Choose the best answer, a tie, or rank every answer.", "error")
    try:
        await service.vote(db, actor.user_id, comparison_id, ranks, str(form.get("category", "")))
    except AppError as exc:
        return redirect(here, exc.message, "error")
    return redirect(here, "Thanks for your vote. Here is who wrote what.")


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@routes.get("/leaderboard", name="leaderboard")
@page(access="user")
async def leaderboard_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    raw = request.query
    errors: dict[str, str] = {}
    since, until = _day(raw.get("from", "")), _day(raw.get("to", ""))
    for name, value, parsed in (("from", raw.get("from"), since), ("to", raw.get("to"), until)):
        if value and parsed is None:
            errors[name] = "Use a date like 2026-01-31."
    try:
        query = LeaderboardQuery(
            scope=raw.get("scope") or "all",
            category=raw.get("category") or None,
            since=datetime.combine(since, time(), UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        )
    except ValidationError:
        errors["filters"] = "Unknown scope or category."
        query = LeaderboardQuery()
    table = await service.leaderboard_table(request.app[DB], query, actor.user_id)
    return render(
        request,
        "arena/leaderboard.html",
        {
            "nav": "leaderboard",
            "board": table,
            "names": await _names(request.app),
            "categories": CATEGORIES,
            "filters": {
                "scope": query.scope,
                "category": query.category or "",
                "from": raw.get("from", ""),
                "to": raw.get("to", ""),
            },
            "errors": errors,
        },
    )
