"""Files: upload (streamed, type-checked, within the size limit and the storage quota), list,
download, preview, rename/move and delete. Only the owner sees a file; anyone else gets 404."""

from __future__ import annotations

import asyncio
import io
import re
import time
from datetime import datetime
from typing import Any

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from multinotes.errors import BadRequest, Forbidden, Invalid, NotFound
from multinotes.files import service, signed, sniff
from multinotes.files.models import File
from multinotes.files.schemas import ID_PATTERN, FileQuery, UploadQuery
from multinotes.http.downloads import content_disposition
from multinotes.http.endpoint import endpoint, multipart, raw
from multinotes.http.uploads import MAX_FIELDS, next_part, part_chunks, read_field
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import DB, SETTINGS
from multinotes.sharing import access
from multinotes.storage import FILE_STORAGE

routes = web.RouteTableDef()

PREVIEW_TEXT_BYTES = 4096
PREVIEW_MAX_SIDE = 512
PREVIEW_MAX_PIXELS = 40_000_000


class FileOut(BaseModel):
    id: str
    name: str
    size: int
    content_type: str
    kind: str = Field(description="What the bytes are: png, jpeg, pdf, mp3, docx, text, ...")
    folder_id: str | None
    source: str = Field(description='"upload", or "generated" for media made by a model.')
    organisation_id: str | None = Field(
        default=None,
        description="The organisation whose space (and storage quota) the file is in; null: "
        "its owner's own.",
    )
    sha256: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: File) -> FileOut:
        return cls(
            id=row.id,
            name=row.name,
            size=row.size,
            content_type=row.content_type,
            kind=row.kind,
            folder_id=row.folder_id,
            source=row.source,
            organisation_id=row.organisation_id,
            sha256=row.sha256,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class FilePage(BaseModel):
    files: list[FileOut]
    next_cursor: str | None


class FilePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=255)
    folder_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="A folder id, or null for the top level."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("A name cannot be null.")
        return value


class UsageOut(BaseModel):
    used: int = Field(description="Bytes stored by your files.")
    quota: int = Field(description="Bytes you may store.")


def _file_id(request: web.Request) -> str:
    return request.match_info["id"]


# -- upload -------------------------------------------------------------------------------------


@routes.post("/api/files", name="api_files_upload")
@endpoint(
    access="user",
    query=UploadQuery,
    response=FileOut,
    status=201,
    tags=["files"],
    errors=[403, 404, 413, 422],
    body_limit="max_upload_bytes",
    upload="file",
)
async def upload_file(request: web.Request, query: UploadQuery) -> FileOut:
    """Upload one file as multipart/form-data in the field `file` (optional text field
    `folder_id` before it). Streamed to storage; the type is judged by the bytes and must agree
    with the name and declared type; refused over the per-file limit or the storage quota
    (413, code `file_too_large` / `quota_exceeded`). With `?org_id=` the file goes to that
    organisation's space and counts against its quota (404 if you are not a member). Cookie
    sessions send `X-CSRF-Token`."""
    actor = require_verified(request)
    if query.org_id is not None:
        # Read now: a removed member cannot fill the organisation's storage.
        await access.organisation(request.app[DB], actor.user_id, query.org_id)
    reader = await multipart(request, "file")
    folder_id: str | None = None
    declared = request.content_length
    fields = 0
    while (part := await next_part(reader)) is not None:
        fields += 1
        if fields > MAX_FIELDS:
            raise Invalid(fields={"file": f"Send the file within the first {MAX_FIELDS} fields."})
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not supported.", code="not_multipart")
        if part.name == "folder_id":
            value = await read_field(part, "folder_id")
            if value:
                _check_folder_id(value)
                folder_id = value
            continue
        if part.name != "file":
            await read_field(part, part.name or "field")  # small and ignored
            continue
        if part.filename is None:
            raise Invalid(fields={"file": "Send a file (with a file name), not a text field."})
        row = await service.ingest(
            request.app,
            actor.user_id,
            name=part.filename,
            declared_type=part.headers.get("Content-Type", ""),
            chunks=part_chunks(part),
            # The body's length bounds the file's from above; framing is small.
            declared_size=max(0, declared - 16 * 1024) if declared is not None else None,
            folder_id=folder_id,
            organisation_id=query.org_id,
        )
        return FileOut.of(row)
    raise Invalid(fields={"file": "No file was sent in the field 'file'."})


def _check_folder_id(value: str) -> None:
    if not re.match(ID_PATTERN, value):
        raise Invalid(fields={"folder_id": "Not a folder id."})


# -- reading ------------------------------------------------------------------------------------


@routes.get("/api/files", name="api_files_list")
@endpoint(access="user", query=FileQuery, response=FilePage, tags=["files"])
async def list_files(request: web.Request, query: FileQuery) -> dict[str, Any]:
    """Your files, newest first; page with `before` (the previous page's `next_cursor`)."""
    actor = require_user(request)
    rows, cursor = await service.list_files(
        request.app[DB],
        actor.user_id,
        limit=query.limit,
        before=query.before,
        folder_id=query.folder_id,
    )
    return {"files": [FileOut.of(r) for r in rows], "next_cursor": cursor}


@routes.get("/api/files/usage", name="api_files_usage")
@endpoint(access="user", response=UsageOut, tags=["files"])
async def usage(request: web.Request) -> UsageOut:
    """How much of your storage quota your files use."""
    actor = require_user(request)
    return UsageOut(
        used=await service.used_bytes(request.app[DB], actor.user_id),
        quota=await service.quota_of(request.app, actor.user_id),
    )


@routes.get(r"/api/files/{id:[0-9A-Za-z_-]{1,64}}", name="api_files_get")
@endpoint(access="user", response=FileOut, tags=["files"], errors=[404])
async def get_file(request: web.Request) -> FileOut:
    """One file's metadata (also for people it is shared with)."""
    actor = require_user(request)
    row, _ = await access.file(request.app[DB], actor.user_id, _file_id(request))
    return FileOut.of(row)


def _content_headers(row: File) -> dict[str, str]:
    headers = {
        "Content-Type": row.content_type
        + ("; charset=utf-8" if row.content_type.startswith("text/") else ""),
        "Content-Disposition": content_disposition(row),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-cache",
        "ETag": f'"{row.sha256}"',
    }
    if row.content_type != "application/pdf":
        # Even if a browser were tricked into rendering it, nothing in it may run. (Chrome's
        # PDF viewer refuses sandboxed documents, so PDFs keep the app's strict policy.)
        headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return headers


@routes.get(r"/api/files/{id:[0-9A-Za-z_-]{1,64}}/content", name="api_files_content")
@endpoint(
    access="user",
    tags=["files"],
    errors=[404, 416],
    content_type="*/*",  # the file's own type
)
async def download(request: web.Request) -> web.StreamResponse:
    """The file's bytes. Images, PDF, audio, video and text are inline; anything else is an
    attachment. Range requests are honoured."""
    actor = require_user(request)
    row, _ = await access.file(request.app[DB], actor.user_id, _file_id(request))
    storage = request.app[FILE_STORAGE]
    headers = _content_headers(row)
    path = storage.local_path(row.storage_key)
    if path is not None:
        headers.pop("ETag")  # FileResponse sets its own validators from the file
        return web.FileResponse(path, headers=headers)
    return await _stream_ranged(request, storage, row, headers)


@routes.get(r"/files/signed/{id:[0-9A-Za-z_-]{1,64}}", name="files_signed")
@raw(
    access="public",
    summary="A file's bytes through a signed, expiring link (images of an exported page)",
    content_type="*/*",
)
async def signed_download(request: web.Request) -> web.StreamResponse:
    """The file's bytes for whoever holds a link made by ``signed.signed_file_url``: no sign-in,
    403 when the signature does not match the id and expiry or the link has expired, 404 when
    the file is gone. Read-only, with the same protective headers as ``/api/files/{id}/content``."""
    file_id = _file_id(request)
    raw_expires, sig = request.query.get("exp", ""), request.query.get("sig", "")
    expires = int(raw_expires) if raw_expires.isdigit() and len(raw_expires) <= 12 else 0
    keys = request.app[SETTINGS].master_keys()
    if not signed.valid(keys, file_id, expires, sig, time.time()):
        raise Forbidden(
            "This file link is not valid or has expired.", fields={"sig": "invalid or expired"}
        )
    async with request.app[DB].read() as session:
        row = await session.get(File, file_id)
    if row is None:
        raise NotFound()
    storage = request.app[FILE_STORAGE]
    headers = _content_headers(row)
    headers["Cache-Control"] = "private"
    headers["X-Robots-Tag"] = "noindex, nofollow"
    path = storage.local_path(row.storage_key)
    if path is not None:
        headers.pop("ETag")
        return web.FileResponse(path, headers=headers)
    return await _stream_ranged(request, storage, row, headers)


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range as (start, end exclusive); None when absent or unusable."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                raise _unsatisfiable(size)
            return max(0, size - length), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        raise _unsatisfiable(size)
    return start, min(end, size)


async def _stream_ranged(
    request: web.Request, storage: Any, row: File, headers: dict[str, str]
) -> web.StreamResponse:
    wanted = _parse_range(request.headers.get("Range", ""), row.size)
    start, end = wanted or (0, row.size)
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    response.headers["Accept-Ranges"] = "bytes"
    response.content_length = end - start
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{row.size}"
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in storage.read(row.storage_key, start, end):
            await response.write(chunk)
    await response.write_eof()
    return response


@routes.get(r"/api/files/{id:[0-9A-Za-z_-]{1,64}}/preview", name="api_files_preview")
@endpoint(
    access="user",
    tags=["files"],
    errors=[404],
    content_type="image/png, image/jpeg, application/json",
)
async def preview(request: web.Request) -> web.StreamResponse:
    """A preview: images as a downscaled PNG or JPEG (at most 512 px a side); otherwise JSON
    with the metadata (and, for text, the first 4 KB as `text`)."""
    actor = require_user(request)
    row, _ = await access.file(request.app[DB], actor.user_id, _file_id(request))
    storage = request.app[FILE_STORAGE]
    kind = sniff.KINDS[row.kind]
    info: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "size": row.size,
        "content_type": row.content_type,
        "kind": row.kind,
        "family": kind.family,
    }
    if kind.family == "image":
        data = b"".join([c async for c in storage.read(row.storage_key)])
        rendered = await asyncio.to_thread(_thumbnail, data)
        if rendered is not None:
            body, ctype, width, height = rendered
            return web.Response(
                body=body,
                content_type=ctype,
                headers={
                    "X-Content-Type-Options": "nosniff",
                    "Cache-Control": "private, max-age=300",
                    "X-Image-Width": str(width),
                    "X-Image-Height": str(height),
                },
            )
        info["preview"] = None
    elif kind.family == "text":
        head = b"".join([c async for c in storage.read(row.storage_key, 0, PREVIEW_TEXT_BYTES)])
        info["text"] = head.decode("utf-8", errors="ignore")
        info["truncated"] = row.size > PREVIEW_TEXT_BYTES
    return web.json_response(info)


def _thumbnail(data: bytes) -> tuple[bytes, str, int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > PREVIEW_MAX_PIXELS:
                return None  # a decompression bomb, or just too big to preview cheaply
            fmt = "JPEG" if image.format == "JPEG" else "PNG"
            image.seek(0)
            frame = image.convert("RGB" if fmt == "JPEG" else "RGBA")
            frame.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
            out = io.BytesIO()
            frame.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return out.getvalue(), f"image/{fmt.lower()}", width, height


# -- changing -----------------------------------------------------------------------------------


@routes.patch(r"/api/files/{id:[0-9A-Za-z_-]{1,64}}", name="api_files_update")
@endpoint(access="user", body=FilePatch, response=FileOut, tags=["files"], errors=[404, 422])
async def update_file(request: web.Request, body: FilePatch) -> FileOut:
    """Rename (keeping an extension that matches the content) or move to a folder."""
    actor = require_user(request)
    changes = body.model_dump(exclude_unset=True)
    db, file_id = request.app[DB], _file_id(request)
    async with access.owner_only(db, actor.user_id, "file", file_id, "rename or move it"):
        row = await service.update_file(db, actor.user_id, file_id, changes)
    return FileOut.of(row)


@routes.delete(r"/api/files/{id:[0-9A-Za-z_-]{1,64}}", name="api_files_delete")
@endpoint(access="user", status=204, tags=["files"], errors=[404])
async def delete_file(request: web.Request) -> None:
    """Delete the file and its stored bytes."""
    actor = require_user(request)
    file_id = _file_id(request)
    async with access.owner_only(request.app[DB], actor.user_id, "file", file_id, "delete it"):
        await service.delete_file(request.app, actor.user_id, file_id)
