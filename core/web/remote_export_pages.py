"""A note sent to a remote destination (Notion, Google Docs) from its Export menu: the link to
what was made there in the menu's status line (htmx) or on a page of its own; when the account
is not connected (or no longer accepted), a link to connect it that comes back to the note."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from multinotes.connections import NotConnected, ReconnectRequired
from multinotes.connections import service as connections
from multinotes.errors import AppError, NotFound
from multinotes.http.endpoint import page
from multinotes.http.responses import render
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import require_user
from multinotes.note_exports import remote
from multinotes.note_exports.service import exporter_of
from multinotes.web.connections_pages import start_connecting

routes = web.RouteTableDef()


def _answer(request: web.Request, back: str, values: dict[str, Any]) -> web.StreamResponse:
    """The outcome in the menu's status line (htmx), or on a page of its own."""
    if request.headers.get("HX-Request") == "true":
        return aiohttp_jinja2.render_template("exports/_remote.html", request, values)
    return render(request, "exports/remote.html", {**values, "back": back})


@routes.post("/exports/remote/{id}", name="export_remote")
@page(access="user")
async def export_to_remote(request: web.Request) -> web.StreamResponse:
    """Send a note to the remote destination of ``?format=`` (its Export menu). Not connected
    yet (or no longer): a link to connect, coming back to the note."""
    actor = require_user(request)
    document_id = request.match_info["id"]
    back = f"/notes/{document_id}"
    format_id = request.query.get("format", "")
    try:
        link = await remote.export_remote(
            request.app, actor.user_id, document_id, format_id, {}, public_base_url(request)
        )
    except NotFound:
        raise  # as for any page of something the person cannot see
    except (NotConnected, ReconnectRequired) as exc:
        _, kind = connections.kind_of(request.app, exc.kind)
        try:
            connect_url = await start_connecting(request, exc.kind, back)
        except AppError as inner:
            return _answer(request, back, {"error": inner.message})
        return _answer(
            request,
            back,
            {
                "error": exc.message,
                "connect_url": connect_url,
                "service": kind.name,
                "reconnect": isinstance(exc, ReconnectRequired),
            },
        )
    except AppError as exc:
        return _answer(request, back, {"error": exc.message})
    destination = exporter_of(request.app, format_id).name
    return _answer(request, back, {"remote_url": link.url, "destination": destination})
