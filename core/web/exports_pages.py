"""The Export menu's pages: a conversation or a folder exported in the background, with a progress
bar that updates itself (htmx) in the menu where the export was asked for, and a download link
when the file is ready. Without JavaScript the form opens the export's own page instead.

To a remote destination (Notion, Google Docs) a conversation, a folder, a prompt with its answers
and an answer go the same way, and the progress ends in a link to what was made there; when the
account is not connected (or no longer accepted), the menu offers a link to connect it that
comes back to where the export was asked for.

Notes need no page: their menu entries are plain links to ``GET /api/documents/{id}/export``.
The menu entries themselves come from the exporter plugins (``register_actions`` with
``multinotes.exporters.export_actions``), so a disabled format is gone from the next page.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from multinotes.chat.models import Message
from multinotes.connections import NotConnected, ReconnectRequired
from multinotes.connections import service as connections
from multinotes.errors import AppError, NotFound
from multinotes.http.endpoint import page
from multinotes.http.responses import redirect, render
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.note_exports import service as exports
from multinotes.note_exports.models import NoteExport
from multinotes.web.connections_pages import start_connecting

routes = web.RouteTableDef()


def _state(request: web.Request, job: NoteExport) -> dict[str, Any]:
    ready = exports.downloadable(job)
    found = exports.enabled_exporters(request.app).get(job.format)
    return {
        "job": job,
        "running": job.status in ("pending", "running"),
        "download_url": str(request.app.router["api_export_download"].url_for(id=job.id))
        if ready
        else None,
        "remote_url": job.url if job.status == "done" else None,
        "destination": found[1].name if found else job.format,
    }


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


async def _back(request: web.Request, kind: str, object_id: str) -> str:
    """Where the export was asked for (and where connecting an account comes back to)."""
    if kind == "folder":
        return f"/notes?folder={object_id}"
    if kind == "conversation":
        return f"/chat/{object_id}"
    async with request.app[DB].read() as session:
        conversation_id = await session.scalar(
            select(Message.conversation_id).where(Message.id == object_id)
        )
    return f"/chat/{conversation_id}" if conversation_id else "/chat"


def _failed(request: web.Request, back: str, values: dict[str, Any]) -> web.StreamResponse:
    if _is_htmx(request):
        return aiohttp_jinja2.render_template("exports/_progress.html", request, values)
    if values.get("connect_url"):
        return render(request, "exports/remote.html", {**values, "back": back})
    return redirect(back, values["error"], "error")


async def _start(request: web.Request, kind: str) -> web.StreamResponse:
    actor = require_user(request)
    object_id = request.match_info["id"]
    try:
        job = await exports.start_job(
            request.app,
            actor.user_id,
            request.query.get("format", ""),
            {},
            exports.Target(kind, [object_id]),
            public_base_url(request),
        )
    except NotFound:
        raise  # as for any page of something the person cannot see
    except (NotConnected, ReconnectRequired) as exc:  # a remote destination: connect first
        back = await _back(request, kind, object_id)
        _, service = connections.kind_of(request.app, exc.kind)
        try:
            connect_url = await start_connecting(request, exc.kind, back)
        except AppError as inner:
            return _failed(request, back, {"error": inner.message})
        values = {
            "error": exc.message,
            "connect_url": connect_url,
            "service": service.name,
            "reconnect": isinstance(exc, ReconnectRequired),
        }
        return _failed(request, back, values)
    except AppError as exc:  # a format switched off meanwhile, ...
        return _failed(request, await _back(request, kind, object_id), {"error": exc.message})
    if _is_htmx(request):
        return aiohttp_jinja2.render_template(
            "exports/_progress.html", request, _state(request, job)
        )
    return redirect(f"/exports/{job.id}")


@routes.post("/exports/folder/{id}", name="export_folder")
@page(access="user")
async def export_folder(request: web.Request) -> web.StreamResponse:
    """Start exporting a folder in the format of ``?format=``: a ZIP keeping its tree, or, to a
    remote destination, one page per note under a page (a Drive folder) named after it."""
    return await _start(request, "folder")


@routes.post("/exports/conversation/{id}", name="export_conversation")
@page(access="user")
async def export_conversation(request: web.Request) -> web.StreamResponse:
    """Start exporting a conversation's newest branch in the format of ``?format=``."""
    return await _start(request, "conversation")


@routes.post("/exports/comparison/{id}", name="export_comparison")
@page(access="user")
async def export_comparison(request: web.Request) -> web.StreamResponse:
    """Start exporting a prompt (its message id) and its answers side by side to the remote
    destination of ``?format=`` (files download at once from the prompt's menu)."""
    return await _start(request, "comparison")


@routes.post("/exports/answer/{id}", name="export_answer")
@page(access="user")
async def export_answer(request: web.Request) -> web.StreamResponse:
    """Start exporting one answer with its provenance to the remote destination of
    ``?format=``."""
    return await _start(request, "answer")


@routes.get("/exports/{id}", name="export_page")
@page(access="user")
async def export_page(request: web.Request) -> web.StreamResponse:
    """An export's own page: its progress, then its download link."""
    actor = require_user(request)
    job = await exports.get_job(request.app[DB], actor.user_id, request.match_info["id"])
    return render(request, "exports/job.html", _state(request, job))


@routes.get("/exports/{id}/progress", name="export_progress")
@page(access="user")
async def export_progress(request: web.Request) -> web.StreamResponse:
    """The progress bar alone, for htmx: it polls itself every second until the file is
    ready (or the export failed)."""
    actor = require_user(request)
    job = await exports.get_job(request.app[DB], actor.user_id, request.match_info["id"])
    return aiohttp_jinja2.render_template("exports/_progress.html", request, _state(request, job))
