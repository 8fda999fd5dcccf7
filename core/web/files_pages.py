"""The files page, ``/files``: the storage usage indicator, uploads with a progress bar, and the
user's files with previews, rename and delete.

Uploads go from ``static/js/files.js`` straight to ``POST /api/files`` (an XMLHttpRequest, for
its upload progress events); the list, rename and delete are server-rendered forms
(POST-redirect-GET), so they work without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from multinotes.errors import AppError, NotFound
from multinotes.files import service as files
from multinotes.files import sniff
from multinotes.files.models import File
from multinotes.identity.actor import require_user
from multinotes.keys import DB, SETTINGS
from multinotes.web.endpoint import page
from multinotes.web.pages import redirect, render, safe_next

routes = web.RouteTableDef()

FILES_PAGE = 48
CURSOR_PATTERN = frozenset("0123456789abcdefABCDEF")


def human_bytes(size: int) -> str:
    """1536 → "1.5 KB": binary multiples with the familiar names, as file managers show them."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            if unit == "bytes":
                return f"{int(value)} byte{'s' if int(value) != 1 else ''}"
            return f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    return f"{size} bytes"  # pragma: no cover - the loop always returns


async def storage_usage(request: web.Request, user_id: str) -> dict[str, Any]:
    """What the usage indicator shows (on /files and in the notes sidebar)."""
    used = await files.used_bytes(request.app[DB], user_id)
    quota = files.quota_of(request.app[SETTINGS], user_id)
    percent = min(100.0, used / quota * 100) if quota else 100.0
    return {
        "used": used,
        "quota": quota,
        "used_text": human_bytes(used),
        "quota_text": human_bytes(quota),
        "percent": percent,
        "percent_text": f"{percent:.0f}%" if percent >= 1 or used == 0 else "<1%",
        "full": used >= quota,
        "high": percent >= 90,
    }


@dataclass
class FileRow:
    file: File
    family: str
    size_text: str
    extensions: list[str]

    @property
    def content_url(self) -> str:
        return f"/api/files/{self.file.id}/content"

    @property
    def preview_url(self) -> str:
        return f"/api/files/{self.file.id}/preview"


def file_row(row: File) -> FileRow:
    kind = sniff.KINDS.get(row.kind)
    family = kind.family if kind else "other"
    return FileRow(
        file=row,
        family=family,
        size_text=human_bytes(row.size),
        extensions=sorted(kind.extensions) if kind else [],
    )


@routes.get("/files", name="files")
@page(access="user")
async def files_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    before = request.query.get("before", "")
    before = before if 0 < len(before) <= 32 and set(before) <= CURSOR_PATTERN else ""
    rows, cursor = await files.list_files(
        request.app[DB], actor.user_id, limit=FILES_PAGE, before=before or None
    )
    settings = request.app[SETTINGS]
    return render(
        request,
        "files/index.html",
        {
            "nav": "files",
            "files": [file_row(r) for r in rows],
            "next_cursor": cursor,
            "paged": bool(before),
            "usage": await storage_usage(request, actor.user_id),
            "max_upload_text": human_bytes(settings.max_upload_bytes),
            "max_upload": settings.max_upload_bytes,
            "accept": ",".join(
                sorted({f".{e}" for k in sniff.KINDS.values() for e in k.extensions})
            ),
        },
    )


def _back(form: Any) -> str:
    target = safe_next(str(form.get("next", "")))
    return target if target.startswith("/files") else "/files"


@routes.post("/files/{id}/rename", name="files_rename")
@page(access="user", rate="api")
async def files_rename(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    try:
        row = await files.update_file(
            request.app[DB], actor.user_id, request.match_info["id"], {"name": name}
        )
    except NotFound:
        raise
    except AppError as exc:
        return redirect(_back(form), problem_text(exc), "error")
    return redirect(_back(form), f"Renamed to “{row.name}”.")


@routes.post("/files/{id}/delete", name="files_delete")
@page(access="user", rate="api")
async def files_delete(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    row = await files.get_file(request.app[DB], actor.user_id, request.match_info["id"])
    await files.delete_file(request.app, actor.user_id, row.id)
    return redirect(_back(form), f"Deleted “{row.name}”.")


FIELD_LABELS = {
    "name": "Name",
    "title": "Title",
    "parent_id": "Folder",
    "folder_id": "Folder",
    "target": "Destination",
    "item": "Selection",
    "content": "Text",
}


def problem_text(exc: AppError) -> str:
    """An error as one sentence for a flash message: its own message, or its field problems."""
    if not exc.fields or exc.message != type(exc).default_message:
        return exc.message
    parts = []
    for name, problem in exc.fields.items():
        # "must not be blank" reads as the end of a sentence; "A name is required." is one.
        label = FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
        parts.append(problem.rstrip(".") if problem[:1].isupper() else f"{label} {problem}")
    return "; ".join(parts) + "."
