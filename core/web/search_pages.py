"""The search page, ``/search``: a GET form (works without JavaScript) with the mode switch and
the kind, folder, model and date filters, ranked results with highlighted snippets, the user's
recent searches and an empty state that explains the query syntax.

With htmx the form searches as the user types: ``/search/results`` answers with the results
alone (and ``HX-Push-Url`` so the address bar keeps a shareable URL).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select

from multinotes.chat.models import Message
from multinotes.errors import Invalid, NotFound
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.notes import service as notes
from multinotes.search import service as search
from multinotes.search.schemas import SearchQuery, search_request
from multinotes.search.vectors import VECTORS

routes = web.RouteTableDef()

FIELDS = ("q", "mode", "kind", "folder_id", "model", "date_from", "date_to")
KIND_LABELS = {"note": "Note", "conversation": "Chat", "message": "Message"}


def _params(request: web.Request) -> dict[str, str]:
    """The form's fields from the query string (blank ones dropped, unknown ones ignored)."""
    return {
        name: request.query[name].strip() for name in FIELDS if request.query.get(name, "").strip()
    }


def search_url(params: dict[str, str], **extra: str) -> str:
    query = {k: v for k, v in {**params, **extra}.items() if v}
    return "/search" + ("?" + urlencode(query) if query else "")


async def _folder_choices(request: web.Request, user_id: str) -> list[dict[str, str]]:
    """The user's folders as "Parent / Child" paths, for the folder filter."""
    folders = await notes.list_folders(request.app[DB], user_id)
    by_id = {f.id: f for f in folders}

    def path(folder_id: str) -> str:
        names, current, seen = [], by_id.get(folder_id), set()
        while current is not None and current.id not in seen:
            seen.add(current.id)
            names.append(current.name)
            current = by_id.get(current.parent_id or "")
        return " / ".join(reversed(names))

    choices = [{"id": f.id, "label": path(f.id)} for f in folders]
    return sorted(choices, key=lambda c: c["label"].casefold())


async def _model_choices(request: web.Request, user_id: str) -> list[str]:
    """Models that answered this user (what the model filter can find)."""
    async with request.app[DB].read() as session:
        rows = await session.scalars(
            select(Message.model_id)
            .where(Message.user_id == user_id, Message.model_id.is_not(None))
            .distinct()
        )
        return sorted(m for m in rows if m)


async def _results(request: web.Request, user_id: str, params: dict[str, str]) -> dict[str, Any]:
    """Run the search the form describes; bad input is shown, never a 500."""
    context: dict[str, Any] = {
        "params": params,
        "results": [],
        "more_url": None,
        "more_page_url": None,
        "cursor": "",
        "error": None,
        "kind_labels": KIND_LABELS,
        "searched": bool(params.get("q")),
    }
    cursor = request.query.get("cursor", "").strip()
    try:
        fields = {**params, **({"cursor": cursor} if cursor else {})}
        query: SearchQuery = validate(SearchQuery, fields)
        page_ = await search.search(
            request.app[DB], user_id, search_request(query), request.app[VECTORS]
        )
    except Invalid as exc:
        context["error"] = "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in exc.fields.items())
        return context
    except NotFound as exc:
        context["error"] = exc.message
        return context
    if params.get("q") and not cursor:
        await search.remember_search(request.app[DB], user_id, params["q"])
    context["results"] = page_.results
    if page_.next_cursor:
        context["more_url"] = "/search/results?" + urlencode(
            {**params, "cursor": page_.next_cursor}
        )
        context["more_page_url"] = search_url(params, cursor=page_.next_cursor)
    context["cursor"] = cursor
    return context


@routes.get("/search", name="search")
@page(access="user")
async def search_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    params = _params(request)
    context = await _results(request, actor.user_id, params)
    context.update(
        nav="search",
        recent=await search.recent_searches(request.app[DB], actor.user_id),
        folders=await _folder_choices(request, actor.user_id),
        models=await _model_choices(request, actor.user_id),
        today=date.today().isoformat(),
        search_url=search_url,
    )
    return render(request, "search/index.html", context)


@routes.get("/search/results", name="search_results")
@page(access="user")
async def search_results(request: web.Request) -> web.Response:
    """The results alone, for htmx: the whole list, or the next page (``cursor``)."""
    actor = require_user(request)
    params = _params(request)
    context = await _results(request, actor.user_id, params)
    context["search_url"] = search_url
    template = "search/_more.html" if context.get("cursor") else "search/_results.html"
    response = render(request, template, context)
    if not context.get("cursor"):
        response.headers["HX-Push-Url"] = search_url(params)
    return response


@routes.post("/search/recent/clear", name="search_recent_clear")
@page(access="user", rate="api")
async def clear_recent(request: web.Request) -> web.Response:
    actor = require_user(request)
    await search.forget_searches(request.app[DB], actor.user_id)
    return redirect("/search", "Recent searches cleared.")
