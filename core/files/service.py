"""Files as seen by their owner: ingest a stream within the limits, list, rename, delete.

Every function takes the owner's id and filters on it; another user's file is NotFound.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select

from multinotes.db import Database, new_id, utcnow
from multinotes.domain_events import EVENTS
from multinotes.errors import Invalid, NotFound, PayloadTooLarge
from multinotes.files import sniff
from multinotes.files.models import File
from multinotes.files.quota import (
    FilesQuota,
    claim_space_in,
    quota_exceeded,
    quota_of,  # noqa: F401 - the pages and the API read the quota through this module
    space_usage,
    used_bytes,  # noqa: F401 - as quota_of
)
from multinotes.keys import DB, SETTINGS
from multinotes.notes.folders import own_folder_in
from multinotes.storage import FILE_STORAGE, STORAGE_QUOTA, Storage

log = structlog.get_logger(__name__)

MAX_NAME = 255


def setup_files(app: web.Application) -> None:
    """The storage quota the rest of the app checks (``app[STORAGE_QUOTA]``), and the copy of
    what a model made into Files (after setup_events and setup_storage)."""
    app[STORAGE_QUOTA] = FilesQuota(app)
    from multinotes.files import generated

    generated.subscribe(app[EVENTS])


# -- limits -------------------------------------------------------------------------------------


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than the {limit} byte limit per file.",
        code="file_too_large",
        fields={"file": f"larger than {limit} bytes"},
    )


def clean_name(name: str | None) -> str:
    # Browsers may send a path ("C:\\fakepath\\x.png"); keep the last part only.
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = "".join(ch for ch in base if ch.isprintable())
    if not base or base in (".", ".."):
        raise Invalid(fields={"name": "A file name is required."})
    if len(base) > MAX_NAME:
        raise Invalid(fields={"name": f"At most {MAX_NAME} characters."})
    return base


def refused(problem: str) -> Invalid:
    return Invalid(
        "This file type is not allowed, or the file is not what it claims to be.",
        code="file_type_refused",
        fields={"file": problem},
    )


# -- ingest -------------------------------------------------------------------------------------


class _Meter:
    """Watches the stream go by: limits, hash, the sniffed kind, the text check."""

    def __init__(
        self,
        name: str,
        declared_type: str,
        limit: int,
        room: int,
        quota: int,
        used: int,
        organisation: bool = False,
    ) -> None:
        self.organisation = organisation
        self.name = name
        self.declared_type = declared_type
        self.limit = limit
        self.room = room
        self.quota = quota
        self.used = used
        self.size = 0
        self.sha = hashlib.sha256()
        self.kind: sniff.Kind | None = None
        self.text = sniff.TextCheck()

    def _count(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        if self.size > self.room:
            raise quota_exceeded(self.quota, self.used, organisation=self.organisation)

    def _judge(self, head: bytes) -> None:
        try:
            self.kind = sniff.judge(head, self.name, self.declared_type)
        except sniff.Refused as exc:
            raise refused(str(exc)) from None

    async def watch(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        head = b""
        async for chunk in chunks:
            if not chunk:
                continue
            self._count(chunk)
            self.sha.update(chunk)
            self.text.feed(chunk)
            if self.kind is None:
                head += chunk
                if len(head) < sniff.HEAD_BYTES:
                    continue
                self._judge(head)
                chunk, head = head, b""
            yield chunk
        self.text.feed(b"", final=True)
        if self.size == 0:
            raise Invalid("The file is empty.", fields={"file": "The file is empty."})
        if self.kind is None:
            self._judge(head)
            yield head


def _office_kind_at(path: Path) -> str | None:
    with open(path, "rb") as handle:
        return sniff.office_kind(handle)


async def _confirm_office(storage: Storage, key: str, expected: str) -> bool:
    path = storage.local_path(key)
    if path is not None:
        return await asyncio.to_thread(_office_kind_at, path) == expected
    with tempfile.TemporaryFile() as spool:  # the zip directory is at the end: fetch it all
        async for chunk in storage.read(key):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        return await asyncio.to_thread(sniff.office_kind, spool) == expected


async def ingest(
    app: web.Application,
    user_id: str,
    *,
    name: str | None,
    declared_type: str,
    chunks: AsyncIterator[bytes],
    declared_size: int | None = None,
    folder_id: str | None = None,
    source: str = "upload",
    organisation_id: str | None = None,
) -> File:
    """Stream an upload into storage and record it, or keep nothing at all.

    Refused before a byte is stored when the declared size is over a limit; stopped as soon as
    the stream passes the per-file limit or the room left in the quota; re-checked under a lock
    on the owner's row before the row is written, so concurrent uploads cannot overshoot.

    With ``organisation_id`` (the caller checked the uploader is a member) the file is in that
    organisation's space: its quota is checked, under a lock on the organisation's row."""
    settings = app[SETTINGS]
    db = app[DB]
    storage = app[FILE_STORAGE]
    clean = clean_name(name)
    if folder_id is not None:
        async with db.read() as session:
            await own_folder_in(session, user_id, folder_id)
    quota, used = await space_usage(app, user_id, organisation_id)
    room = quota - used
    in_organisation = organisation_id is not None
    if declared_size is not None:
        if declared_size > settings.max_upload_bytes:
            raise too_large(settings.max_upload_bytes)
        if declared_size > room:
            raise quota_exceeded(quota, used, organisation=in_organisation)
    meter = _Meter(
        clean, declared_type, settings.max_upload_bytes, room, quota, used, in_organisation
    )
    file_id = new_id()
    key = f"{user_id}/{file_id}"
    await storage.put(key, meter.watch(chunks))
    try:
        kind = meter.kind
        assert kind is not None
        if kind.family == "text" and not meter.text.ok:
            raise refused("The file is named as text but is not UTF-8 text without NUL bytes.")
        if kind.family == "office" and not await _confirm_office(storage, key, kind.name):
            raise refused(
                f"The file is named .{sniff.extension(clean)} but is not a "
                f"{kind.name.upper()} document (a zip archive without the matching "
                "[Content_Types].xml)."
            )
        row = File(
            id=file_id,
            user_id=user_id,
            name=clean,
            content_type=kind.content_type,
            kind=kind.name,
            size=meter.size,
            sha256=meter.sha.hexdigest(),
            storage_key=key,
            folder_id=folder_id,
            source=source,
            organisation_id=organisation_id,
        )
        async with db.transaction() as session:
            # Serialise this space's quota checks (SQLite's write lock already does).
            await claim_space_in(session, app, user_id, meter.size, organisation_id)
            if folder_id is not None:
                await own_folder_in(session, user_id, folder_id)
            session.add(row)
    except BaseException:
        await storage.delete(key)
        raise
    log.info("file_stored", file_id=file_id, size=meter.size, kind=kind.name, source=source)
    return row


async def _once(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256 * 1024):
        yield data[start : start + 256 * 1024]


async def store_bytes(
    app: web.Application,
    user_id: str,
    name: str,
    content_type: str,
    data: bytes,
    *,
    source: str = "generated",
    folder_id: str | None = None,
) -> File:
    """Keep bytes produced on the user's behalf (generated images, audio) as one of their files.

    Same checks as an upload (type allowlist, per-file limit, quota); raises the same errors."""
    return await ingest(
        app,
        user_id,
        name=name,
        declared_type=content_type,
        chunks=_once(data),
        declared_size=len(data),
        folder_id=folder_id,
        source=source,
    )


# -- reading and changing -----------------------------------------------------------------------


async def get_file(db: Database, user_id: str, file_id: str) -> File:
    """The file as its owner sees it; anyone else's (or no) file is NotFound."""
    async with db.read() as session:
        row = await session.scalar(select(File).where(File.id == file_id, File.user_id == user_id))
    if row is None:
        raise NotFound("No such file.")
    return row


async def list_files(
    db: Database,
    user_id: str,
    *,
    limit: int = 50,
    before: str | None = None,
    folder_id: str | None = None,
) -> tuple[list[File], str | None]:
    """Newest first; ``before`` is the cursor from the previous page."""
    query = select(File).where(File.user_id == user_id)
    if before:
        query = query.where(File.id < before)
    if folder_id:
        query = query.where(File.folder_id == folder_id)
    query = query.order_by(File.id.desc()).limit(limit + 1)
    async with db.read() as session:
        rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


async def update_file(db: Database, user_id: str, file_id: str, changes: dict[str, Any]) -> File:
    async with db.transaction() as session:
        row = await session.scalar(
            select(File).where(File.id == file_id, File.user_id == user_id).with_for_update()
        )
        if row is None:
            raise NotFound("No such file.")
        if "name" in changes:
            new_name = clean_name(changes["name"])
            if sniff.extension(new_name) not in sniff.KINDS[row.kind].extensions:
                raise Invalid(
                    fields={
                        "name": "Keep an extension that matches the content: ."
                        + ", .".join(sorted(sniff.KINDS[row.kind].extensions))
                    }
                )
            row.name = new_name
        if "folder_id" in changes:
            if changes["folder_id"] is not None:
                await own_folder_in(session, user_id, changes["folder_id"])
            row.folder_id = changes["folder_id"]
        row.updated_at = utcnow()
    return row


async def delete_file(app: web.Application, user_id: str, file_id: str) -> None:
    db = app[DB]
    async with db.transaction() as session:
        row = await session.scalar(
            select(File).where(File.id == file_id, File.user_id == user_id).with_for_update()
        )
        if row is None:
            raise NotFound("No such file.")
        key = row.storage_key
        await session.delete(row)
    await app[FILE_STORAGE].delete(key)


async def delete_all_of(app: web.Application, user_ids: Iterable[str]) -> None:
    """Remove the stored objects of these users' files (for account deletion)."""
    db = app[DB]
    for user_id in user_ids:
        async with db.read() as session:
            keys = list(
                await session.scalars(select(File.storage_key).where(File.user_id == user_id))
            )
        for key in keys:
            await app[FILE_STORAGE].delete(key)
