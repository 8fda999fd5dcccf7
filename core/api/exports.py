"""Exports of notes, comparisons, conversations and folders through the exporter plugins.

A note downloads at once (``GET /api/documents/{id}/export?format=pdf``); a folder, several
notes or a conversation run as a background job (``POST /api/exports`` → 202, then
``GET /api/exports/{id}`` for its progress and, when done, its ``download_url``). Access is as
for reading: a person a note is shared with may export it; anyone else gets 404.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from multinotes.errors import NotFound
from multinotes.http.endpoint import endpoint
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.note_exports import answers
from multinotes.note_exports import service as exports
from multinotes.note_exports.models import NoteExport
from multinotes.storage import objects

routes = web.RouteTableDef()

ID = Field(min_length=1, max_length=32)


class ExporterOut(BaseModel):
    id: str
    name: str
    description: str
    plugin: str
    media_type: str
    extension: str
    remote: bool
    options: dict[str, Any] = Field(description="The JSON schema of the exporter's options.")


class ExporterList(BaseModel):
    exporters: list[ExporterOut]


class ExportQuery(BaseModel):
    """``format`` and the exporter's options (``include_provenance``, ``page_size``, ...)."""

    model_config = ConfigDict(extra="allow")

    format: str | None = Field(
        default=None, min_length=1, max_length=64, description="An exporter id (required)."
    )


#: What ``POST /api/exports`` exports: exactly one of these.
TARGETS = (
    "folder_id",
    "document_ids",
    "conversation_id",
    "message_id",
    "comparison_id",
    "answer_id",
)


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field(min_length=1, max_length=64, description="An exporter id.")
    options: dict[str, Any] = Field(default_factory=dict, description="The exporter's options.")
    folder_id: str | None = Field(default=None, min_length=1, max_length=32)
    document_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=exports.MAX_DOCUMENTS
    )
    conversation_id: str | None = Field(default=None, min_length=1, max_length=32)
    message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="The conversation's branch from its first message down to this one.",
    )
    comparison_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="A prompt (its message id) and its models' answers side by side.",
    )
    answer_id: str | None = Field(
        default=None, min_length=1, max_length=32, description="One answer with its provenance."
    )

    @model_validator(mode="after")
    def one_target(self) -> ExportIn:
        given = [name for name in TARGETS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(TARGETS)}")
        if self.document_ids is not None and any(not 0 < len(i) <= 32 for i in self.document_ids):
            raise ValueError("document_ids holds an id that is empty or too long")
        return self

    def target(self) -> exports.Target:
        if self.folder_id is not None:
            return exports.Target("folder", [self.folder_id])
        if self.document_ids is not None:
            return exports.Target("documents", list(dict.fromkeys(self.document_ids)))
        for name, kind in (
            ("conversation_id", "conversation"),
            ("message_id", "message"),
            ("comparison_id", "comparison"),
        ):
            if getattr(self, name) is not None:
                return exports.Target(kind, [getattr(self, name)])
        assert self.answer_id is not None
        return exports.Target("answer", [self.answer_id])


class CreatedOut(BaseModel):
    id: str


class ProgressOut(BaseModel):
    done: int
    total: int


class ExportOut(BaseModel):
    id: str
    format: str
    status: Literal["pending", "running", "done", "failed"]
    progress: ProgressOut
    download_url: str | None = Field(default=None, description="Once done, until it expires.")
    url: str | None = Field(
        default=None,
        description="A remote destination's export, once done: the page or document it made "
        "(a folder's: the page or Drive folder holding one page per note).",
    )
    filename: str | None = None
    size: int | None = None
    error: str | None = Field(default=None, description="Why it failed, naming the note.")
    created_at: str
    expires_at: str | None = None

    @classmethod
    def of(cls, request: web.Request, job: NoteExport) -> ExportOut:
        ready = exports.downloadable(job)
        return cls(
            id=job.id,
            format=job.format,
            status=job.status,
            progress=ProgressOut(done=job.done, total=job.total),
            download_url=str(request.app.router["api_export_download"].url_for(id=job.id))
            if ready
            else None,
            url=job.url if job.status == "done" else None,
            filename=job.filename if ready else None,
            size=job.size if ready else None,
            error=job.error if job.status == "failed" else None,
            created_at=job.created_at.isoformat(),
            expires_at=job.expires_at.isoformat() if job.expires_at else None,
        )


def attachment(filename: str) -> str:
    """``Content-Disposition`` for a download: an ASCII name for old clients, the real one in
    ``filename*`` (RFC 6266)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_headers(media_type: str, filename: str) -> dict[str, str]:
    return {
        "Content-Type": media_type,
        "Content-Disposition": attachment(filename),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        # Nothing in an exported file runs when opened from here, whatever its type.
        "Content-Security-Policy": "default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; sandbox",
    }


@routes.get("/api/exporters", name="api_exporters")
@endpoint(access="user", response=ExporterList, tags=["exports"])
async def list_exporters(request: web.Request) -> dict[str, Any]:
    """The export formats switched on now, with the JSON schema of each one's options."""
    require_user(request)
    found = exports.enabled_exporters(request.app)
    return {
        "exporters": [
            {
                "id": exporter_id,
                "name": exporter.name,
                "description": exporter.description,
                "plugin": plugin,
                "media_type": exporter.media_type,
                "extension": exporter.extension,
                "remote": exporter.remote,
                "options": exporter.Options.model_json_schema(),
            }
            for exporter_id, (plugin, exporter) in sorted(found.items())
        ]
    }


@routes.get("/api/documents/{id}/export", name="api_document_export")
@endpoint(
    access="user",
    query=ExportQuery,
    tags=["exports"],
    errors=[404, 413, 422],
    content_type="*/*",  # the exporter's own media type
)
async def export_document(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    """One note as a file in `format` (an exporter id from `GET /api/exporters`), with the
    exporter's options as more query parameters (`?format=pdf&page_size=Letter`). Also for
    people the note is shared with."""
    actor = require_user(request)
    rendered = await exports.export_now(
        request.app,
        actor.user_id,
        request.match_info["id"],
        query.format,
        query.model_extra or {},
        public_base_url(request),
    )
    return web.Response(
        body=rendered.data, headers=download_headers(rendered.media_type, rendered.filename)
    )


async def _message_download(
    request: web.Request, query: ExportQuery, *, comparison: bool
) -> web.StreamResponse:
    actor = require_user(request)
    rendered = await answers.export_now(
        request.app,
        objects.storage_of(request.app),
        actor.user_id,
        request.match_info["id"],
        query.format,
        query.model_extra or {},
        public_base_url(request),
        comparison=comparison,
    )
    return web.Response(
        body=rendered.data, headers=download_headers(rendered.media_type, rendered.filename)
    )


@routes.get("/api/messages/{id}/export", name="api_message_export")
@endpoint(
    access="user",
    query=ExportQuery,
    tags=["exports"],
    errors=[404, 413, 422],
    content_type="*/*",
)
async def export_answer(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    """One answer of a conversation as a file in `format`, with its provenance: the prompt, the
    model and provider, tokens, cost, date and a link back to it. Also for people the
    conversation is shared with."""
    return await _message_download(request, query, comparison=False)


@routes.get("/api/messages/{id}/export-comparison", name="api_message_export_comparison")
@endpoint(
    access="user",
    query=ExportQuery,
    tags=["exports"],
    errors=[404, 413, 422],
    content_type="*/*",
)
async def export_comparison(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    """A prompt (the id of the prompt message) and its models' answers side by side as a file in
    `format`: one answer per model (the newest of its regenerations), each with its tokens and
    cost. Also for people the conversation is shared with."""
    return await _message_download(request, query, comparison=True)


@routes.post("/api/exports", name="api_exports_create")
@endpoint(
    access="user",
    body=ExportIn,
    response=CreatedOut,
    status=202,
    tags=["exports"],
    errors=[404, 409, 422],
)
async def create_export(request: web.Request, body: ExportIn) -> dict[str, Any]:
    """Export a folder (a ZIP keeping its tree), several notes (a ZIP), a conversation's newest
    branch, the branch ending at a message, a prompt with its answers side by side or one answer,
    in the background. Poll `GET /api/exports/{id}`. To a remote destination (Notion, Google
    Docs) the result is a `url` instead of a file: one page for a conversation, a comparison or
    an answer; for a folder one page per note under a page (a Drive folder) named after it, the
    same ones updated when exported again. 409 `not_connected` or `reconnect_required` when the
    account must be connected (again) first."""
    actor = require_user(request)
    job = await exports.start_job(
        request.app,
        actor.user_id,
        body.format,
        body.options,
        body.target(),
        public_base_url(request),
    )
    return {"id": job.id}


@routes.get("/api/exports/{id}", name="api_export")
@endpoint(access="user", response=ExportOut, tags=["exports"], errors=[404])
async def export_status(request: web.Request) -> ExportOut:
    """An export's status and progress (notes done of total); `download_url` once done."""
    actor = require_user(request)
    job = await exports.get_job(request.app[DB], actor.user_id, request.match_info["id"])
    return ExportOut.of(request, job)


@routes.get("/api/exports/{id}/download", name="api_export_download")
@endpoint(access="user", tags=["exports"], errors=[404], content_type="*/*")
async def download_export(request: web.Request) -> web.StreamResponse:
    """The file of a finished export (until it expires). Only the person who asked for it."""
    actor = require_user(request)
    job = await exports.get_job(request.app[DB], actor.user_id, request.match_info["id"])
    if not exports.downloadable(job) or job.storage_key is None:
        raise NotFound("This export is not ready, or it expired.")
    headers = download_headers(job.media_type or "application/octet-stream", job.filename or "x")
    try:
        return await objects.serve(
            request, objects.storage_of(request.app), job.storage_key, headers
        )
    except NotFound:
        raise NotFound("This export is not ready, or it expired.") from None
