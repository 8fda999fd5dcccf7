"""Notes (Markdown documents): edit with optimistic concurrency, versions and diffs, trash,
duplicates, answers saved as notes with their provenance, and re-runs of a saved prompt."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.chat.pipeline import MAX_MODELS, plan_again, stream_generations
from multinotes.collab import refuse_while_editing
from multinotes.errors import NotFound
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import DB
from multinotes.notes import provenance as saved
from multinotes.notes import service as notes
from multinotes.sharing import access

routes = web.RouteTableDef()

MAX_CONTENT = 1_000_000


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    content: str = Field(default="", max_length=MAX_CONTENT, description="Markdown.")
    folder_id: str | None = Field(default=None, max_length=32, description="Default: the root.")


class DocumentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(
        ge=1, description="The version the edit is based on; a stale one is a 409."
    )
    title: str | None = Field(default=None, min_length=1, max_length=300)
    content: str | None = Field(default=None, max_length=MAX_CONTENT)
    folder_id: str | None = Field(
        default=None, max_length=32, description="Move here; `null` moves to the root."
    )


class CreatedOut(BaseModel):
    id: str
    version: int


class DocumentSummary(BaseModel):
    id: str
    title: str
    folder_id: str | None
    version: int
    has_provenance: bool
    created_at: str
    updated_at: str


class DocumentOut(DocumentSummary):
    content: str
    html: str = Field(description="The content rendered from Markdown and sanitised.")
    provenance: dict[str, Any] | None


class DocumentPage(BaseModel):
    documents: list[DocumentSummary]
    next_cursor: str | None


class DocumentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder_id: str | None = Field(
        default=None, max_length=32, description='A folder id, or "root"; default: all.'
    )
    q: str | None = Field(default=None, max_length=200, description="In titles and content.")
    sort: Literal["updated", "-updated", "created", "-created", "title", "-title"] = "-updated"
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=200)


class VersionOut(BaseModel):
    version: int
    title: str
    created_at: str
    created_by: str | None
    size: int


class VersionFull(VersionOut):
    content: str
    html: str


class VersionList(BaseModel):
    versions: list[VersionOut]


class DiffQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    against: int | None = Field(default=None, ge=1, description="Default: the previous version.")


class DiffLine(BaseModel):
    op: Literal["equal", "insert", "delete"]
    text: str


class DiffOut(BaseModel):
    from_version: int
    to_version: int
    title_changed: bool
    unified: str
    lines: list[DiffLine]


class SaveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder_id: str | None = Field(default=None, max_length=32)


class SavedOut(BaseModel):
    document_id: str
    version: int


class RerunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MODELS,
        description="Default: the models of the saved answers.",
    )
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _id(request: web.Request) -> str:
    return request.match_info["id"]


def _number(request: web.Request, name: str = "n") -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or not 0 < int(raw) < 2**31:
        raise NotFound("No such version.")  # a path naming no version names nothing
    return int(raw)


@routes.get("/api/documents", name="api_documents")
@endpoint(access="user", query=DocumentQuery, response=DocumentPage, tags=["notes"])
async def list_documents(request: web.Request, query: DocumentQuery) -> dict[str, Any]:
    """Your notes, newest edit first by default; pass `next_cursor` back as `cursor`. With the
    id of a folder shared with you as `folder_id`: the notes in that folder."""
    actor = require_user(request)
    owner_id = actor.user_id
    if query.folder_id not in (None, "root"):
        _, rights = await access.folder(request.app[DB], actor.user_id, query.folder_id)
        owner_id = rights.owner_id
    summaries, cursor = await notes.list_document_summaries(
        request.app[DB],
        owner_id,
        folder_id=query.folder_id,
        q=query.q,
        sort=query.sort,
        cursor=query.cursor,
        limit=query.limit,
    )
    return {"documents": summaries, "next_cursor": cursor}


@routes.post("/api/documents", name="api_documents_create")
@endpoint(
    access="user", body=DocumentIn, response=CreatedOut, status=201, tags=["notes"], errors=[404]
)
async def create_document(request: web.Request, body: DocumentIn) -> dict[str, Any]:
    """Create a note (version 1)."""
    actor = require_user(request)
    document = await notes.create_document(
        request.app[DB],
        actor.user_id,
        title=body.title,
        content=body.content,
        folder_id=body.folder_id,
    )
    return {"id": document.id, "version": document.version}


@routes.get("/api/documents/{id}", name="api_document")
@endpoint(access="user", response=DocumentOut, tags=["notes"], errors=[404])
async def get_document(request: web.Request) -> dict[str, Any]:
    """One note: Markdown, sanitised HTML and (for saved answers) provenance. Also for people
    the note is shared with."""
    actor = require_user(request)
    document, _ = await access.document(request.app[DB], actor.user_id, _id(request))
    return notes.document_out(document)


@routes.patch("/api/documents/{id}", name="api_document_update")
@endpoint(
    access="user", body=DocumentPatch, response=DocumentOut, tags=["notes"], errors=[404, 409]
)
async def update_document(request: web.Request, body: DocumentPatch) -> dict[str, Any]:
    """Save an edit made on `version`: title or content changes make a new version. If the note
    changed meanwhile: 409 `stale_version` with `error.current` {version, title, content}. While
    someone edits the note live (`/api/documents/{id}/collab`), a `content` change is a 409
    `editing_live` (the title and folder still change).
    Editors the note is shared with may change its title and content (moving it is the owner's:
    403)."""
    actor = require_user(request)
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    _, rights = await access.document(
        request.app[DB], actor.user_id, _id(request), need="editor", action="edit this note"
    )
    if "folder_id" in changes:
        rights.require("owner", "move this note")
    if "content" in changes:
        await refuse_while_editing(request.app, _id(request))
    document = await notes.update_document(
        request.app[DB], rights.owner_id, _id(request), body.version, changes, by=actor.user_id
    )
    return notes.document_out(document)


@routes.delete("/api/documents/{id}", name="api_document_delete")
@endpoint(access="user", status=204, tags=["notes"], errors=[404])
async def delete_document(request: web.Request) -> None:
    """Move a note to the trash (restorable for 30 days). Only its owner can."""
    actor = require_user(request)
    db = request.app[DB]
    async with access.owner_only(db, actor.user_id, "document", _id(request), "delete this note"):
        await notes.trash_document(db, actor.user_id, _id(request))


@routes.post("/api/documents/{id}/restore", name="api_document_restore")
@endpoint(access="user", response=DocumentOut, tags=["notes"], errors=[404])
async def restore_document(request: web.Request) -> dict[str, Any]:
    """Bring a note back from the trash (to the root if its folder is gone)."""
    actor = require_user(request)
    db = request.app[DB]
    async with access.owner_only(db, actor.user_id, "document", _id(request), "restore it"):
        document = await notes.restore_document(db, actor.user_id, _id(request))
    return notes.document_out(document)


@routes.post("/api/documents/{id}/duplicate", name="api_document_duplicate")
@endpoint(access="user", response=CreatedOut, status=201, tags=["notes"], errors=[404])
async def duplicate_document(request: web.Request) -> dict[str, Any]:
    """Copy a note into the same folder as "<title> (copy)", with a fresh history."""
    actor = require_user(request)
    db = request.app[DB]
    async with access.owner_only(db, actor.user_id, "document", _id(request), "duplicate it"):
        document = await notes.duplicate_document(db, actor.user_id, _id(request))
    return {"id": document.id, "version": document.version}


@routes.get("/api/documents/{id}/versions", name="api_document_versions")
@endpoint(access="user", response=VersionList, tags=["notes"], errors=[404])
async def list_versions(request: web.Request) -> dict[str, Any]:
    """Every saved version, newest first."""
    actor = require_user(request)
    _, rights = await access.document(request.app[DB], actor.user_id, _id(request))
    rows = await notes.list_versions(request.app[DB], rights.owner_id, _id(request))
    return {"versions": [notes.version_out(v) for v in rows]}


@routes.get("/api/documents/{id}/versions/{n}", name="api_document_version")
@endpoint(access="user", response=VersionFull, tags=["notes"], errors=[404])
async def get_version(request: web.Request) -> dict[str, Any]:
    """One saved version with its content."""
    actor = require_user(request)
    _, rights = await access.document(request.app[DB], actor.user_id, _id(request))
    version = await notes.get_version(
        request.app[DB], rights.owner_id, _id(request), _number(request)
    )
    return notes.version_out(version, content=True)


@routes.get("/api/documents/{id}/versions/{n}/diff", name="api_document_version_diff")
@endpoint(access="user", query=DiffQuery, response=DiffOut, tags=["notes"], errors=[404])
async def diff_version(request: web.Request, query: DiffQuery) -> dict[str, Any]:
    """What changed from version `against` (default: the one before) to version `n`: a unified
    diff and the same as line operations."""
    actor = require_user(request)
    db = request.app[DB]
    _, rights = await access.document(db, actor.user_id, _id(request))
    number = _number(request)
    new = await notes.get_version(db, rights.owner_id, _id(request), number)
    against = query.against if query.against is not None else max(1, number - 1)
    old = await notes.get_version(db, rights.owner_id, _id(request), against)
    return notes.diff_versions(old, new)


@routes.post("/api/documents/{id}/versions/{n}/restore", name="api_document_version_restore")
@endpoint(access="user", response=DocumentOut, tags=["notes"], errors=[404, 409])
async def restore_version(request: web.Request) -> dict[str, Any]:
    """Make version `n` current again, saved as a new version. Editors the note is shared with
    may too (it is an edit). A 409 `editing_live` while someone edits the note live."""
    actor = require_user(request)
    db = request.app[DB]
    _, rights = await access.document(
        db, actor.user_id, _id(request), need="editor", action="restore versions"
    )
    number = _number(request)
    await refuse_while_editing(request.app, _id(request))
    document = await notes.restore_version(
        db, rights.owner_id, _id(request), number, by=actor.user_id
    )
    return notes.document_out(document)


@routes.post("/api/messages/{id}/save", name="api_message_save")
@endpoint(access="user", body=SaveIn, response=SavedOut, status=201, tags=["notes"], errors=[404])
async def save_answer(request: web.Request, body: SaveIn) -> dict[str, Any]:
    """Save an answer as a note, with its provenance (prompt, model, provider, options, tokens,
    cost, timing, conversation)."""
    actor = require_user(request)
    document = await saved.save_answer(request.app[DB], actor.user_id, _id(request), body.folder_id)
    return {"document_id": document.id, "version": document.version}


@routes.post("/api/messages/{id}/save-comparison", name="api_message_save_comparison")
@endpoint(access="user", body=SaveIn, response=SavedOut, status=201, tags=["notes"], errors=[404])
async def save_comparison(request: web.Request, body: SaveIn) -> dict[str, Any]:
    """Save every model's answer to a prompt (the id of the prompt message) as one note, one
    section per model, with the provenance of each answer."""
    actor = require_user(request)
    document = await saved.save_comparison(
        request.app[DB], actor.user_id, _id(request), body.folder_id
    )
    return {"document_id": document.id, "version": document.version}


@routes.post("/api/documents/{id}/rerun", name="api_document_rerun")
@endpoint(
    access="user",
    body=RerunIn,
    tags=["notes"],
    rate="generation",
    errors=[402, 404, 413],
    content_type="text/event-stream",
)
async def rerun(request: web.Request, body: RerunIn) -> web.StreamResponse:
    """Send a saved note's prompt again, to the same models (default) or others: the answers
    stream over SSE like a prompt's, are charged to the wallet, become new answers in the
    original conversation and are listed in the note's `provenance.reruns`."""
    actor = require_verified(request)
    db = request.app[DB]
    async with access.owner_only(db, actor.user_id, "document", _id(request), "re-run it"):
        document, prompt, models = await saved.rerun_source(db, actor.user_id, _id(request))
    prompt_message, planned = await plan_again(
        request.app,
        user_id=actor.user_id,
        prompt=prompt,
        model_ids=body.models or models,
        options=body.options,
    )
    await saved.record_rerun(
        db,
        actor.user_id,
        document.id,
        prompt_message.id,
        [(p.model_id, p.message_id, p.generation_id) for p in planned],
    )
    return await stream_generations(request, planned, prompt_message)
