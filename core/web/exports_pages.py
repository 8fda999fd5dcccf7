"""The Export menu's pages: a conversation or a folder exported in the background, with a progress
bar that updates itself (htmx) in the menu where the export was asked for, and a download link
when the file is ready. Without JavaScript the form opens the export's own page instead.

Notes need no page: their menu entries are plain links to ``GET /api/documents/{id}/export``.
The menu entries themselves come from the exporter plugins (``register_actions`` with
``multinotes.exporters.export_actions``), so a disabled format is gone from the next page.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from multinotes.errors import AppError, NotFound
from multinotes.http.endpoint import page
from multinotes.http.responses import redirect, render
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.note_exports import service as exports
from multinotes.note_exports.models import NoteExport

routes = web.RouteTableDef()


def _state(request: web.Request, job: NoteExport) -> dict[str, Any]:
    ready = exports.downloadable(job)
    return {
        "job": job,
        "running": job.status in ("pending", "running"),
        "download_url": str(request.app.router["api_export_download"].url_for(id=job.id))
        if ready
        else None,
    }


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


async def _start(request: web.Request, kind: str) -> web.StreamResponse:
    actor = require_user(request)
    object_id = request.match_info["id"]
    back = f"/notes?folder={object_id}" if kind == "folder" else f"/chat/{object_id}"
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
    except AppError as exc:  # a format switched off meanwhile, ...
        if _is_htmx(request):
            return aiohttp_jinja2.render_template(
                "exports/_progress.html", request, {"error": exc.message}
            )
        return redirect(back, exc.message, "error")
    if _is_htmx(request):
        return aiohttp_jinja2.render_template(
            "exports/_progress.html", request, _state(request, job)
        )
    return redirect(f"/exports/{job.id}")


@routes.post("/exports/folder/{id}", name="export_folder")
@page(access="user")
async def export_folder(request: web.Request) -> web.StreamResponse:
    """Start exporting a folder (a ZIP keeping its tree) in the format of ``?format=``."""
    return await _start(request, "folder")


@routes.post("/exports/conversation/{id}", name="export_conversation")
@page(access="user")
async def export_conversation(request: web.Request) -> web.StreamResponse:
    """Start exporting a conversation's newest branch in the format of ``?format=``."""
    return await _start(request, "conversation")


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
