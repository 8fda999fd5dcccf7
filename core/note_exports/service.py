"""Running exporters: one note at once (``export_now``), or a folder, several notes, a
conversation as a background job (``start_job`` → the ``core.build_note_export`` task).

A job's file is built on this machine's disk (a ZIP needs seeking) under
``<data dir>/exports/.<id>.part``, checked against ``Settings.note_export_max_bytes`` as it grows,
then put in the storage backend (``exports/<user id>/notes-<id>.<ext>``) and the partial file
removed. A job that fails — an exporter refusing a note, the size cap, anything else — keeps no
file, partial or whole, and says why in ``error`` (naming the note). A folder export is a ZIP
whose folders are the note's folders, below the exported one.

A job for a remote destination (Notion, Google Docs) makes no file: the task sends the target
there (``remote.send_job``) and keeps the address of what it made in ``url``.
"""

from __future__ import annotations

import asyncio
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import or_, select, update

from multinotes.chat.models import Message
from multinotes.db import Database, new_id, rows_affected, utcnow
from multinotes.errors import AppError, Invalid, NotFound, PayloadTooLarge, PluginError
from multinotes.exporters import ExportDocument, Exporter, ExportLink, ExportOptions
from multinotes.exporters import safe_filename as safe_name
from multinotes.keys import DB, PLUGINS, SETTINGS, TASKS
from multinotes.note_exports import documents as build
from multinotes.note_exports.models import NoteExport
from multinotes.notes.models import Document, Folder
from multinotes.plugin_host import TaskDef
from multinotes.plugin_settings import field_errors
from multinotes.sharing import access
from multinotes.storage import objects

log = structlog.get_logger(__name__)

BUILD_TASK = "core.build_note_export"
PURGE_TASK = "core.purge_note_exports"
#: A job still pending or running after this long died with its worker.
STALE_AFTER = timedelta(hours=1)
#: At most this many notes named in one request.
MAX_DOCUMENTS = 1000


# -- exporters ----------------------------------------------------------------------------------


def enabled_exporters(app: web.Application) -> dict[str, tuple[str, Exporter]]:
    """``{id: (plugin, exporter)}`` of the enabled exporter plugins, right now."""
    return {k: (r.plugin, r.obj) for k, r in app[PLUGINS].registries.exporters.items()}


def exporter_of(app: web.Application, format_id: str, field: str = "format") -> Exporter:
    found = enabled_exporters(app).get(format_id)
    if found is None:
        known = ", ".join(sorted(enabled_exporters(app))) or "none"
        raise Invalid(
            f"No export format {format_id!r} (available: {known}).",
            code="unknown_format",
            fields={field: f"Choose one of: {known}."},
        )
    return found[1]


def options_of(exporter: Exporter, raw: dict[str, Any], prefix: str = "") -> ExportOptions:
    """The exporter's options from ``raw``; a bad or unknown one is a 400 naming the field."""
    try:
        return exporter.Options.model_validate(raw)
    except ValidationError as exc:
        raise Invalid(fields=field_errors(exc, prefix)) from None


def cap_of(app: web.Application) -> int:
    return int(app[SETTINGS].note_export_max_bytes)


def too_large(cap: int, what: str) -> PayloadTooLarge:
    megabytes = cap / (1024 * 1024)
    return PayloadTooLarge(
        f"{what} is larger than the export limit of {megabytes:g} MB.",
        code="export_too_large",
    )


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str
    filename: str


async def render_file(
    exporter: Exporter, document: ExportDocument, options: ExportOptions, cap: int
) -> Rendered:
    """Run the exporter for one document; its bytes, within ``cap``. An exporter's ``Invalid``
    names the note; anything else it raises is its plugin's failure, not the user's."""
    if exporter.remote:  # it needs the user's connection: POST /api/documents/{id}/export
        raise Invalid(
            f"{exporter.name} sends notes elsewhere; it does not make files.",
            code="remote_exporter",
            fields={"format": "This format has no file to download."},
        )
    try:
        result = await exporter.render(document, options)
    except Invalid as exc:
        exc.message = f"{document.title!r}: {exc.message}"
        raise
    if isinstance(result, ExportLink):
        raise Invalid(
            f"{exporter.name} sends notes elsewhere; it does not make files.",
            code="remote_exporter",
            fields={"format": "This format has no file to download."},
        )
    what = f"The {exporter.name} file of {document.title!r}"
    if isinstance(result.content, bytes):
        data = result.content
    else:  # a stream: stop reading as soon as it passes the cap
        parts: list[bytes] = []
        size = 0
        async for chunk in result.content:
            size += len(chunk)
            if size > cap:
                raise too_large(cap, what)
            parts.append(chunk)
        data = b"".join(parts)
    if len(data) > cap:
        raise too_large(cap, what)
    return Rendered(data, result.media_type, result.filename)


async def export_now(
    app: web.Application,
    user_id: str,
    document_id: str,
    format_id: str | None,
    raw: dict[str, Any],
    base_url: str,
) -> Rendered:
    """One note as a file, right away (``GET /api/documents/{id}/export``). Whether the person
    may read the note is checked first: to anyone else, a bad format is a 404 like any other."""
    await access.document(app[DB], user_id, document_id)
    if not format_id:
        raise Invalid("Say which format to export to.", fields={"format": "Field required"})
    exporter = exporter_of(app, format_id)
    options = options_of(exporter, raw)
    document = await build.document_export(
        app[DB], objects.storage_of(app), user_id, document_id, base_url
    )
    return await render_file(exporter, document, options, cap_of(app))


# -- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str  # folder | documents | conversation | message | comparison | answer
    ids: list[str]


async def check_target(app: web.Application, user_id: str, target: Target) -> None:
    """Refuse now (404, as for reading) what the person may not read, so a job never starts
    for something they cannot see. The task checks again when it runs."""
    db = app[DB]
    if target.kind == "folder":
        await access.folder(db, user_id, target.ids[0])
    elif target.kind == "documents":
        async with db.read() as session:
            for document_id in target.ids:
                await access.document_in(session, user_id, document_id)
    elif target.kind == "conversation":
        await access.conversation(db, user_id, target.ids[0])
    elif target.kind in ("message", "comparison", "answer"):
        # A comparison is a prompt (with its answers); an answer is a model's message.
        role = {"comparison": "user", "answer": "assistant"}.get(target.kind)
        missing = {"comparison": "No such prompt.", "answer": "No such answer."}
        async with db.read() as session:
            found = (
                await session.execute(
                    select(Message.conversation_id, Message.role).where(Message.id == target.ids[0])
                )
            ).first()
        missing_one = NotFound(missing.get(target.kind, "No such message."))
        if found is None or (role is not None and found.role != role):
            raise missing_one
        try:
            await access.conversation(db, user_id, found.conversation_id)
        except NotFound:
            raise missing_one from None


async def check_remote(
    app: web.Application, user_id: str, exporter: Exporter, target: Target
) -> None:
    """What a remote destination cannot take is refused now (422), and so is a missing or
    revoked connection (409 ``not_connected``/``reconnect_required``), before a job starts."""
    if target.kind == "documents":
        raise Invalid(
            f"{exporter.name} takes one note at a time: send each note with "
            "POST /api/documents/{id}/export, or export their folder.",
            code="remote_exporter",
            fields={"document_ids": f"not for {exporter.name}"},
        )
    if target.kind == "folder" and not exporter.takes_folders:
        raise Invalid(
            f"{exporter.name} cannot take a folder: export its notes one by one.",
            code="remote_exporter",
            fields={"folder_id": f"not for {exporter.name}"},
        )
    if exporter.connection:
        from multinotes.connections import service as connections

        await connections.connection_for(app, user_id, exporter.connection)


async def start_job(
    app: web.Application,
    user_id: str,
    format_id: str,
    raw_options: dict[str, Any],
    target: Target,
    base_url: str,
) -> NoteExport:
    await check_target(app, user_id, target)  # first: to a stranger, every answer is 404
    exporter = exporter_of(app, format_id)
    options = options_of(exporter, raw_options, prefix="options.")
    if exporter.remote:
        await check_remote(app, user_id, exporter, target)
    job = NoteExport(
        id=new_id(),
        user_id=user_id,
        format=format_id,
        options=options.model_dump(mode="json"),
        target_type=target.kind,
        target_ids=target.ids,
        status="pending",
        done=0,
        total=len(target.ids) if target.kind == "documents" else 1,
    )
    job.created_at = utcnow()
    async with app[DB].transaction() as session:
        session.add(job)
    await app[TASKS].enqueue(BUILD_TASK, job_id=job.id, base_url=base_url)
    return job


async def get_job(db: Database, user_id: str, job_id: str) -> NoteExport:
    """One of the user's export jobs; anyone else's is as unknown as a made-up id."""
    async with db.read() as session:
        job = await session.scalar(
            select(NoteExport).where(NoteExport.id == job_id, NoteExport.user_id == user_id)
        )
    if job is None:
        raise NotFound("No such export.")
    return job


def downloadable(job: NoteExport) -> bool:
    return (
        job.status == "done"
        and job.storage_key is not None
        and (job.expires_at is None or job.expires_at > utcnow())
    )


# -- the task -----------------------------------------------------------------------------------


class Progress:
    """Counts notes done; stores the count and tells the owner's open tabs (``task.progress``),
    at most twice a second (and at the start and the end)."""

    def __init__(self, app: web.Application, job: NoteExport, total: int) -> None:
        from multinotes.live import Throttle

        self.app, self.db, self.job, self.total = app, app[DB], job, total
        self.done = 0
        self.told: tuple[int, int] | None = None
        self.throttle = Throttle()

    async def store(self, force: bool = False) -> None:
        from multinotes.live import task_progress

        if self.told == (self.done, self.total) or not self.throttle.ready(force):
            return
        self.told = (self.done, self.total)
        async with self.db.transaction() as session:
            await session.execute(
                update(NoteExport)
                .where(NoteExport.id == self.job.id)
                .values(done=self.done, total=self.total)
            )
        await task_progress(
            self.app,
            self.job.user_id,
            kind="note_export",
            task_id=self.job.id,
            done=self.done,
            total=self.total,
        )

    async def step(self) -> None:
        self.done += 1
        await self.store()


@dataclass(frozen=True)
class FolderTree:
    """A folder and the live folders below it as ``user_id`` may read them: each one's name,
    parent and path (folder names from the exported folder down), and the live notes in them
    (``items``: note id and its folder's id, by title)."""

    root: str
    names: dict[str, str]
    parents: dict[str, str | None]
    paths: dict[str, tuple[str, ...]]
    items: list[tuple[str, str]]


async def folder_tree(db: Database, user_id: str, folder_id: str) -> FolderTree:
    folder, rights = await access.folder(db, user_id, folder_id)
    owner = rights.owner_id
    async with db.read() as session:
        folders = {
            f.id: f
            for f in await session.scalars(
                select(Folder).where(Folder.user_id == owner, Folder.deleted_at.is_(None))
            )
        }
        paths: dict[str, tuple[str, ...]] = {folder.id: (folder.name,)}
        pending = [folder.id]
        while pending:
            parent = pending.pop()
            for child in folders.values():
                if child.parent_id == parent and child.id not in paths:
                    paths[child.id] = (*paths[parent], child.name)
                    pending.append(child.id)
        rows = await session.execute(
            select(Document.id, Document.folder_id)
            .where(
                Document.user_id == owner,
                Document.deleted_at.is_(None),
                Document.folder_id.in_(list(paths)),
            )
            .order_by(Document.title, Document.id)
        )
        items = [(doc_id, fid) for doc_id, fid in rows.all() if fid in paths]
    names = {fid: (folders[fid].name if fid in folders else folder.name) for fid in paths}
    parents = {fid: (None if fid == folder.id else folders[fid].parent_id) for fid in paths}
    return FolderTree(folder.id, names, parents, paths, items)


async def folder_items(
    db: Database, user_id: str, folder_id: str
) -> tuple[str, list[tuple[str, tuple[str, ...]]]]:
    """The exported folder's name and its live notes below it, each with its folder path
    (folder names from the exported folder down), as ``user_id`` may read them."""
    tree = await folder_tree(db, user_id, folder_id)
    return tree.names[tree.root], [(doc_id, tree.paths[fid]) for doc_id, fid in tree.items]


class CappedZip:
    """A ZIP on disk that refuses to grow past ``cap`` bytes (compressed), with unique names."""

    def __init__(self, path: Path, cap: int) -> None:
        self.path, self.cap = path, cap
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self.names: set[str] = set()

    def unique(self, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        candidate, n = name, 1
        while candidate.lower() in self.names:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        self.names.add(candidate.lower())
        return candidate

    def add(self, name: str, data: bytes) -> None:
        self.zip.writestr(self.unique(name), data)
        if self.zip.fp is not None:
            self.zip.fp.flush()
        if self.path.stat().st_size > self.cap:
            raise too_large(self.cap, "This export")

    def close(self) -> None:
        self.zip.close()


async def _write(
    app: web.Application, job: NoteExport, base_url: str, partial: Path
) -> tuple[str, str]:
    """Build the job's file at ``partial``; its file name and media type."""
    db, storage = app[DB], objects.storage_of(app)
    exporter = exporter_of(app, job.format)
    options = options_of(exporter, job.options or {})
    cap = cap_of(app)
    if job.target_type in ("conversation", "message", "comparison", "answer"):
        from multinotes.note_exports import answers

        loaders: dict[str, Callable[..., Awaitable[ExportDocument]]] = {
            "conversation": build.conversation_export,
            "message": build.message_export,
            "comparison": answers.comparison_export,
            "answer": answers.answer_export,
        }
        document = await loaders[job.target_type](
            db, storage, job.user_id, job.target_ids[0], base_url
        )
        progress = Progress(app, job, 1)
        result = await render_file(exporter, document, options, cap)
        await asyncio.to_thread(partial.write_bytes, result.data)
        await progress.step()
        await progress.store(force=True)
        return result.filename, result.media_type
    if job.target_type == "folder":
        name, items = await folder_items(db, job.user_id, job.target_ids[0])
        archive = safe_name(name, "zip", default="folder")
    else:
        items = [(document_id, ()) for document_id in job.target_ids]
        archive = safe_name(f"notes-{utcnow():%Y%m%d-%H%M}", "zip")
    progress = Progress(app, job, len(items))
    await progress.store(force=True)
    sink = CappedZip(partial, cap)
    try:
        for document_id, path in items:
            try:
                document = await build.document_export(
                    db, storage, job.user_id, document_id, base_url, folder_path=path
                )
            except NotFound:  # deleted, or unshared, while the export ran
                await progress.step()
                continue
            result = await render_file(exporter, document, options, cap)
            folders = [safe_name(part, "", default="folder") for part in path[1:]]
            arcname = "/".join([*folders, result.filename])
            await asyncio.to_thread(sink.add, arcname, result.data)
            await progress.step()
    finally:
        await asyncio.to_thread(sink.close)
    await progress.store(force=True)
    return archive, "application/zip"


async def build_note_export(app: web.Application, *, job_id: str, base_url: str) -> None:
    """The task: build a job's file, store it, and record the outcome."""
    db, settings = app[DB], app[SETTINGS]
    async with db.transaction() as session:
        claimed = await session.execute(
            update(NoteExport)
            .where(NoteExport.id == job_id, NoteExport.status == "pending")
            .values(status="running")
        )
        job = await session.get(NoteExport, job_id)
    if rows_affected(claimed) != 1 or job is None:
        log.info("note_export_skipped", job_id=job_id)
        return
    folder = settings.data_dir / "exports"
    partial = folder / f".{job_id}.part"
    storage = objects.storage_of(app)
    key: str | None = None
    try:
        if exporter_of(app, job.format).remote:
            await _send_remote(app, job, base_url)
            return
        await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
        filename, media_type = await _write(app, job, base_url, partial)
        extension = filename.rpartition(".")[2] or "bin"
        key = f"exports/{job.user_id}/notes-{job_id}.{extension}"
        size = await objects.put_file(storage, key, partial)
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        now = utcnow()
        async with db.transaction() as session:
            stored = await session.execute(
                update(NoteExport)
                .where(NoteExport.id == job_id)
                .values(
                    status="done",
                    filename=filename,
                    media_type=media_type,
                    storage_key=key,
                    size=size,
                    finished_at=now,
                    expires_at=now + timedelta(days=settings.data_export_expiry_days),
                )
            )
        if rows_affected(stored) != 1:  # the row went (its account was deleted) while building
            await storage.delete(key)
        else:
            await _tell_owner(app, job, "done", filename=filename)
    except Exception as exc:
        if isinstance(exc, AppError) and not isinstance(exc, PluginError):
            # The user's to read: a note an exporter refused, the size cap, a service that
            # is down or no longer accepts the connection.
            error = exc.message
            log.info("note_export_refused", job_id=job_id, error=error)
        else:
            error = "The export failed. Try again, or try another format."
            log.exception("note_export_failed", job_id=job_id)
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        if key is not None:
            await storage.delete(key)
        async with db.transaction() as session:
            failed = await session.execute(
                update(NoteExport)
                .where(NoteExport.id == job_id)
                .values(status="failed", error=error[:1000], finished_at=utcnow())
            )
        if rows_affected(failed) == 1:
            await _tell_owner(app, job, "failed", error=error)


async def _tell_owner(
    app: web.Application,
    job: NoteExport,
    status: str,
    *,
    filename: str | None = None,
    error: str | None = None,
    sent: bool = False,
) -> None:
    """The owner's open tabs show a toast: the file to download (or that it was ``sent`` to a
    remote destination), or why it failed."""
    from multinotes.live import task_finished

    what = {"folder": "folder", "conversation": "conversation"}.get(job.target_type, "export")
    if status == "done" and sent:
        title, excerpt, download = f"Your {what} export was sent", "", None
    elif status == "done":
        title = f"Your {what} export is ready"
        excerpt, download = filename or "", f"/api/exports/{job.id}/download"
    else:
        title, excerpt, download = f"Your {what} export failed", error or "", None
    await task_finished(
        app,
        job.user_id,
        kind="note_export",
        task_id=job.id,
        status=status,
        title=title,
        excerpt=excerpt,
        url=f"/exports/{job.id}",
        download_url=download,
    )


async def _send_remote(app: web.Application, job: NoteExport, base_url: str) -> None:
    """A job for a remote destination: no file, the address of what was made there."""
    from multinotes.note_exports import remote

    url = await remote.send_job(app, job, base_url)
    now = utcnow()
    async with app[DB].transaction() as session:
        sent = await session.execute(
            update(NoteExport)
            .where(NoteExport.id == job.id)
            .values(
                status="done",
                url=url[:2000],
                finished_at=now,
                expires_at=now + timedelta(days=app[SETTINGS].data_export_expiry_days),
            )
        )
    if rows_affected(sent) == 1:
        await _tell_owner(app, job, "done", sent=True)


async def purge_note_exports(app: web.Application) -> int:
    """Remove expired exports (file and row), failed ones after the same time, and mark jobs
    that died with their worker as failed (their partial files go too)."""
    db = app[DB]
    now = utcnow()
    keep = timedelta(days=app[SETTINGS].data_export_expiry_days)
    async with db.transaction() as session:
        await session.execute(
            update(NoteExport)
            .where(
                NoteExport.status.in_(("pending", "running")),
                NoteExport.created_at < now - STALE_AFTER,
            )
            .values(status="failed", error="The export was interrupted.", finished_at=now)
        )
        expired = list(
            await session.scalars(
                select(NoteExport).where(
                    or_(
                        NoteExport.expires_at < now,
                        (NoteExport.status == "failed") & (NoteExport.created_at < now - keep),
                    )
                )
            )
        )
        for job in expired:
            await session.delete(job)
    await objects.delete_all(
        objects.storage_of(app), [j.storage_key for j in expired if j.storage_key]
    )
    folder = app[SETTINGS].data_dir / "exports"
    await asyncio.to_thread(_remove_partials, folder)
    return len(expired)


async def remove_user_note_exports(app: web.Application, user_id: str) -> None:
    """Delete every export file of a user (their account is being deleted; the rows go with
    the user's row)."""
    async with app[DB].read() as session:
        keys = list(
            await session.scalars(
                select(NoteExport.storage_key).where(
                    NoteExport.user_id == user_id, NoteExport.storage_key.is_not(None)
                )
            )
        )
    await objects.delete_all(objects.storage_of(app), [key for key in keys if key])


def _remove_partials(folder: Path) -> None:
    if not folder.exists():
        return
    cutoff = time.time() - STALE_AFTER.total_seconds()
    for path in folder.glob(".*.part"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def note_export_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", BUILD_TASK, build_note_export, None),
        TaskDef("core", PURGE_TASK, purge_note_exports, "37 * * * *"),
    ]
