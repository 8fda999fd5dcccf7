"""Search: full text, semantic and hybrid over your conversations, messages and notes (and
what is shared with you); your recent searches; the command palette's quick matches."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.search import palette as quick
from multinotes.search import service as search
from multinotes.search.schemas import SearchQuery, search_request
from multinotes.search.vectors import VECTORS

routes = web.RouteTableDef()


class SearchResult(BaseModel):
    kind: Literal["note", "conversation", "message"]
    id: str
    title: str = Field(description="A message's is its conversation's title.")
    snippet: str = Field(description="HTML: the text escaped, matched words in <mark>.")
    url: str
    score: float = Field(description="Higher is better (per mode: bm25/relevance, cosine, RRF).")
    updated_at: str
    shared: bool = Field(description="Someone else's item, shared with you.")
    folder_id: str | None = None
    model: str | None = None
    conversation_id: str | None = None


class SearchOut(BaseModel):
    query: str
    mode: str
    results: list[SearchResult]
    next_cursor: str | None


class RecentSearchOut(BaseModel):
    query: str
    searched_at: str


class RecentOut(BaseModel):
    searches: list[RecentSearchOut] = Field(description="Newest first, at most ten.")


class PaletteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(default="", max_length=100)


class PaletteItem(BaseModel):
    kind: Literal["action", "conversation", "note", "folder"]
    id: str | None
    title: str
    url: str
    hint: str
    method: Literal["get", "post"] = Field(description="post: submit a form (with CSRF) to url.")


class PaletteOut(BaseModel):
    items: list[PaletteItem]


@routes.get("/api/search", name="api_search")
@endpoint(access="user", query=SearchQuery, response=SearchOut, tags=["search"], errors=[404])
async def run_search(request: web.Request, query: SearchQuery) -> dict[str, Any]:
    """Ranked conversations, messages and notes you can see (yours and shared with you; never
    the trash), each with a highlighted snippet and where to open it. A `folder_id` you cannot
    see is a 404."""
    actor = require_user(request)
    db = request.app[DB]
    page = await search.search(db, actor.user_id, search_request(query), request.app[VECTORS])
    if query.record and not query.cursor and query.q.strip():
        await search.remember_search(db, actor.user_id, query.q)
    return {
        "query": query.q,
        "mode": query.mode,
        "results": page.results,
        "next_cursor": page.next_cursor,
    }


@routes.get("/api/search/recent", name="api_search_recent")
@endpoint(access="user", response=RecentOut, tags=["search"])
async def recent(request: web.Request) -> dict[str, Any]:
    """Your last ten distinct searches, newest first."""
    actor = require_user(request)
    return {"searches": await search.recent_searches(request.app[DB], actor.user_id)}


@routes.delete("/api/search/recent", name="api_search_recent_clear")
@endpoint(access="user", status=204, tags=["search"])
async def clear_recent(request: web.Request) -> None:
    """Forget your recent searches."""
    actor = require_user(request)
    await search.forget_searches(request.app[DB], actor.user_id)


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every fixed-path route, for offering only actions that exist."""
    served = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is not None and "{" not in resource.canonical:
            served.add((route.method, resource.canonical))
    return served


@routes.get("/api/palette", name="api_palette")
@endpoint(access="user", query=PaletteQuery, response=PaletteOut, tags=["search"])
async def palette(request: web.Request, query: PaletteQuery) -> dict[str, Any]:
    """Quick matches for the command palette: actions, then conversations, notes and folders
    whose title starts with or holds `q` (the most recent ones when `q` is blank)."""
    actor = require_user(request)
    actions = quick.actions_for(query.q, is_admin=actor.is_admin, served=served_routes(request.app))
    found = await quick.palette(request.app[DB], actor.user_id, query.q)
    return {"items": actions + found if query.q.strip() else found + actions}
