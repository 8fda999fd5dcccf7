"""Connected accounts in the browser: connect (to the service's consent page and back) and
disconnect.

Connecting is a POST (it stores the flow), answered with the service's authorize URL: htmx
follows it at once (``HX-Redirect``); without JavaScript a small page links to it, because the
pages' Content-Security-Policy keeps forms from redirecting to another site. The service sends
the browser back to ``/connections/{kind}/callback``, which must be the same session.
"""

from __future__ import annotations

from aiohttp import web

from multinotes.connections import service as connections
from multinotes.errors import AppError, Invalid, NotFound
from multinotes.http.endpoint import page
from multinotes.http.responses import redirect, render, safe_next
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import require_user
from multinotes.keys import DB

routes = web.RouteTableDef()

ACCOUNT_SECTION = "/account#connections"


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


async def start_connecting(request: web.Request, kind_id: str, next_url: str) -> str:
    """Store a flow for this session; the service's authorize URL."""
    actor = require_user(request)
    if not actor.session_id:
        raise Invalid("Connect accounts from a browser where you are logged in.")
    return await connections.begin(
        request.app,
        user_id=actor.user_id,
        session_id=actor.session_id,
        kind_id=kind_id,
        redirect_uri=f"{public_base_url(request)}/connections/{kind_id}/callback",
        next_url=next_url,
    )


@routes.post("/connections/{kind}/connect", name="connection_connect")
@page(access="user")
async def connect(request: web.Request) -> web.StreamResponse:
    """Start connecting an account at the service (``next``: where to come back to)."""
    kind_id = request.match_info["kind"]
    _, kind = connections.kind_of(request.app, kind_id)
    form = await request.post()
    next_url = safe_next(str(form.get("next", ACCOUNT_SECTION)))
    try:
        url = await start_connecting(request, kind_id, next_url)
    except AppError as exc:
        return redirect(ACCOUNT_SECTION, exc.message, "error")
    if _is_htmx(request):
        return web.Response(status=204, headers={"HX-Redirect": url})
    return render(
        request, "connections/continue.html", {"service": kind.name, "authorize_url": url}
    )


@routes.get("/connections/{kind}/callback", name="connection_callback")
@page(access="user")
async def callback(request: web.Request) -> web.StreamResponse:
    """Where the service sends the browser back: the connection is made (once), then back to
    where connecting started."""
    actor = require_user(request)
    kind_id = request.match_info["kind"]
    _, kind = connections.kind_of(request.app, kind_id)
    try:
        row, next_url = await connections.finish(
            request.app,
            user_id=actor.user_id,
            session_id=actor.session_id or "",
            kind_id=kind_id,
            state=request.query.get("state", ""),
            code=request.query.get("code", ""),
            error=request.query.get("error", ""),
        )
    except AppError as exc:
        return redirect(ACCOUNT_SECTION, exc.message, "error")
    return redirect(
        safe_next(next_url), f"{kind.name} is connected ({row.account_name}).", "success"
    )


@routes.post("/connections/{id}/disconnect", name="connection_disconnect")
@page(access="user")
async def disconnect(request: web.Request) -> web.StreamResponse:
    """Forget a connected account (its tokens are deleted)."""
    actor = require_user(request)
    row = await connections.disconnect(request.app[DB], actor.user_id, request.match_info["id"])
    known = connections.enabled_kinds(request.app).get(row.kind)
    name = known[1].name if known else row.kind
    return redirect(ACCOUNT_SECTION, f"{name} is disconnected.")


@routes.get("/connections/{id}/destination", name="connection_destination")
@page(access="user")
async def destination_form(request: web.Request) -> web.StreamResponse:
    """Choose where exports through this account go (asks the service what there is)."""
    actor = require_user(request)
    try:
        row, kind, found = await connections.destinations_of(
            request.app, actor.user_id, request.match_info["id"]
        )
    except NotFound:
        raise
    except AppError as exc:
        return redirect(ACCOUNT_SECTION, exc.message, "error")
    chosen = (row.data or {}).get("destination") or {}
    return render(
        request,
        "connections/destination.html",
        {
            "nav": "account",
            "connection": row,
            "service": kind.name,
            "label": kind.destination_label,
            "destinations": found,
            "chosen_id": chosen.get("id") if isinstance(chosen, dict) else None,
        },
    )


@routes.post("/connections/{id}/destination", name="connection_destination_save")
@page(access="user")
async def destination_save(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    form = await request.post()
    try:
        row = await connections.choose_destination(
            request.app,
            actor.user_id,
            request.match_info["id"],
            str(form.get("destination_id", ""))[:255],
        )
    except NotFound:
        raise
    except AppError as exc:
        return redirect(
            f"/connections/{request.match_info['id']}/destination", exc.message, "error"
        )
    name = (row.data or {}).get("destination", {}).get("name", "")
    return redirect(ACCOUNT_SECTION, f"Exports will go to {name}.")


@routes.post("/connections/{kind}/token", name="connection_token")
@page(access="user")
async def paste_token(request: web.Request) -> web.StreamResponse:
    """Connect with a pasted token (a Notion internal integration's secret)."""
    actor = require_user(request)
    kind_id = request.match_info["kind"]
    _, kind = connections.kind_of(request.app, kind_id)
    form = await request.post()
    try:
        row = await connections.connect_with_token(
            request.app,
            user_id=actor.user_id,
            kind_id=kind_id,
            token=str(form.get("access_token", "")),
        )
    except AppError as exc:
        detail = " ".join([exc.message, *exc.fields.values()]) if exc.fields else exc.message
        return redirect(ACCOUNT_SECTION, detail, "error")
    return redirect(ACCOUNT_SECTION, f"{kind.name} is connected ({row.account_name}).")
