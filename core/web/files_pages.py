"""The files page, ``/files``: the storage usage indicator, uploads with a progress bar, and the
user's files with previews, rename and delete.

With JavaScript, uploads go from ``static/js/files.js`` straight to ``POST /api/files`` (an
XMLHttpRequest per file, for its upload progress events). Without it, the upload section is a
plain multipart form posted to ``POST /files/upload``, which stores each file the same way and
comes back to the page with a message (POST-redirect-GET), as rename and delete do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from multinotes.errors import AppError, BadRequest, Forbidden, NotFound, RateLimited
from multinotes.files import service as files
from multinotes.files import sniff
from multinotes.files.models import File
from multinotes.files.schemas import FileQuery
from multinotes.http.endpoint import page, validate
from multinotes.http.middleware import CHECKED_FORM
from multinotes.http.responses import flash_fits, redirect, render, safe_next
from multinotes.http.uploads import part_chunks, read_field
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import DB, RATE_LIMITS, SETTINGS
from multinotes.organisations.workspace import current_workspace

routes = web.RouteTableDef()

FILES_PAGE = 48


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


async def storage_usage(
    request: web.Request, user_id: str, organisation_id: str | None = None
) -> dict[str, Any]:
    """What the usage indicator shows (on /files and in the notes sidebar): the user's own
    storage, or that of the organisation whose space they work in."""
    quota, used = await files.space_usage(request.app, user_id, organisation_id)
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
    # The API's query model: a malformed cursor is a 422 naming ``before``, as in the API.
    query = validate(FileQuery, {"before": request.query.get("before") or None})
    before = query.before
    rows, cursor = await files.list_files(
        request.app[DB], actor.user_id, limit=FILES_PAGE, before=before
    )
    settings = request.app[SETTINGS]
    workspace = await current_workspace(request)
    return render(
        request,
        "files/index.html",
        {
            "nav": "files",
            "files": [file_row(r) for r in rows],
            "next_cursor": cursor,
            "paged": bool(before),
            "usage": await storage_usage(
                request, actor.user_id, workspace["id"] if workspace else None
            ),
            "workspace": workspace,
            "max_upload_text": human_bytes(settings.max_upload_bytes),
            "max_upload": settings.max_upload_bytes,
            "accept": ",".join(
                sorted({f".{e}" for k in sniff.KINDS.values() for e in k.extensions})
            ),
        },
    )


# -- uploading without JavaScript ---------------------------------------------------------------

#: Text fields an upload form may carry besides its files (the token, a submit button's name).
UPLOAD_FORM_FIELDS = 10
#: File names in the message are cut to this many characters.
NAME_IN_MESSAGE = 60


@routes.post("/files/upload", name="files_upload")
@page(access="user", rate="api", body_limit="max_upload_form_bytes", csrf_first_part=True)
async def files_upload(request: web.Request) -> web.Response:
    """The upload form: every file in the field ``file`` is stored as ``POST /api/files`` stores
    one (streamed; same type checks, size limit and quota). A refused file keeps nothing and
    does not stop the others; the page then says what was stored and what was not, and why.

    A plain form cannot send the CSRF header: the token is the form's first part, read and
    checked by the CSRF middleware before any file is (``csrf_first_part``)."""
    try:
        actor = require_verified(request)
    except Forbidden as exc:
        return redirect("/files", exc.message, "error")
    reader = request.get(CHECKED_FORM)  # after the token; None when the header carried it
    if reader is None:
        if request.content_type != "multipart/form-data":
            raise BadRequest("Send the files as multipart/form-data.", code="not_multipart")
        reader = await request.multipart()
    outcome = UploadOutcome(limit=request.app[SETTINGS].max_upload_form_files)
    # In an organisation's space (the workspace switch, membership read now) the files count
    # against its quota.
    workspace = await current_workspace(request)
    fields = 0
    while True:
        try:
            part = await reader.next()
        except (ValueError, HttpProcessingError):  # broken framing or part headers
            outcome.unreadable = True
            break
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not supported.", code="not_multipart")
        if part.filename is None or part.name != "file":
            fields += 1
            if fields > UPLOAD_FORM_FIELDS:
                raise BadRequest("The upload form has too many fields.", code="too_many_fields")
            await read_field(part, part.name or "field")  # small and ignored
            continue
        if not part.filename:
            continue  # the file input, sent with nothing chosen
        if len(outcome.stored) + len(outcome.refused) >= outcome.limit:
            outcome.more = True  # the rest is not read at all
            break
        if outcome.stored or outcome.refused:
            # The request counted for its first file; each further one counts as the API
            # upload it replaces would, so a form is no way around the limit.
            try:
                await request.app[RATE_LIMITS].hit(
                    "api", f"user:{actor.user_id}", actor.rate_limit_tier
                )
            except RateLimited as exc:
                outcome.rate_limited = exc.retry_after or 60
                break
        try:
            row = await files.ingest(
                request.app,
                actor.user_id,
                name=part.filename,
                declared_type=part.headers.get("Content-Type", ""),
                chunks=part_chunks(part),
                organisation_id=workspace["id"] if workspace else None,
            )
        except AppError as exc:
            outcome.refused.append((part.filename, refusal_reason(exc)))
        else:
            outcome.stored.append(row.name)
    message, kind = outcome.message()
    return redirect("/files", message, kind)


def refusal_reason(exc: AppError) -> str:
    """Why a file was not kept, as a sentence: for a refused type, what is wrong with it."""
    detail = exc.fields.get("file", "") if exc.error_code == "file_type_refused" else ""
    return detail or problem_text(exc)


def _quoted(name: str) -> str:
    short = name if len(name) <= NAME_IN_MESSAGE else name[: NAME_IN_MESSAGE - 1] + "…"
    return f"“{short}”"


def _listed(names: list[str], most: int = 5) -> str:
    """“a”, “b” and “c”; past ``most`` names, “a”, … and 7 more."""
    quoted = [_quoted(n) for n in names[:most]]
    if len(names) > most:
        return ", ".join(quoted) + f" and {len(names) - most} more"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


@dataclass
class UploadOutcome:
    """What became of an upload form's files, and the message that says so."""

    limit: int
    stored: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    more: bool = False  # files past the limit, not read
    unreadable: bool = False  # the body could not be read to its end
    rate_limited: int = 0  # seconds until more may be uploaded, when the rest was not read

    def message(self) -> tuple[str, str]:
        """The flash message and its kind ("error" when anything was not stored)."""
        notes = []
        if self.stored:
            notes.append(f"Uploaded {_listed(self.stored, most=10)}.")
        elif not self.refused:
            notes.append("No file was uploaded: choose one or more files first.")
        if self.more:
            notes.append(
                f"Only {self.limit} files are taken from one upload: choose the others again."
            )
        if self.unreadable:
            notes.append("The rest of the upload could not be read: try again.")
        if self.rate_limited:
            notes.append(
                "You reached the upload limit: choose the other files again in "
                f"{self.rate_limited} second{'s' if self.rate_limited != 1 else ''}."
            )
        kind = "success" if self.stored and len(notes) == 1 and not self.refused else "error"
        # Files refused for the same reason share one sentence.
        by_reason: dict[str, list[str]] = {}
        for name, why in self.refused:
            by_reason.setdefault(why, []).append(name)
        refusals = [
            (f"Not uploaded: {_listed(names)}: {why}", len(names))
            for why, names in by_reason.items()
        ]
        # The flash cookie holds a few KB: leave out reasons from the end if need be.
        for count in range(len(refusals), -1, -1):
            left = sum(n for _, n in refusals[count:])
            text = " ".join(notes + [sentence for sentence, _ in refusals[:count]])
            if left:
                text += f" {left} more file{'s' if left != 1 else ''} not uploaded."
            if flash_fits(text, kind):
                return text, kind
        total = len(self.stored) + len(self.refused)
        return f"Uploaded {len(self.stored)} of {total} files.", kind


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
