"""Exporting to a remote destination (Notion, Google Docs): the exporter creates or updates a
page (a document) at the service, through the user's connected account, and returns its address.

A note runs in the request (``export_remote``): a handful of calls, each retried by the plugin on
429/5xx with the service's ``Retry-After``, so the person gets the link (or a clear error) at
once. A conversation (its branch), a prompt with its answers, an answer and a folder run as a
background export (``send_job``, from the ``core.build_note_export`` task) whose row ends with
the link: one page for a conversation or a comparison; for a folder one page per note, each
under a page (a Drive folder) named after its folder, below the exported folder's.

What was made is kept per connection and target (``remote_exports``: ``note:<id>``,
``conversation:<id>``, ``folder:<id>``, ``folder-note:<id>``...), so exporting the same thing
again updates the same pages. A refused token is refreshed once and the call tried again; a
refusal after that marks the connection revoked and asks the user to reconnect.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.connections import Connection
from multinotes.connections import service as connections
from multinotes.connections.models import RemoteExport
from multinotes.db import Database, utcnow
from multinotes.errors import Invalid, NotFound, PluginError
from multinotes.exporters import ExportDocument, Exporter, ExportLink, ExportOptions
from multinotes.files import signed
from multinotes.keys import DB
from multinotes.note_exports import answers, service
from multinotes.note_exports import documents as build
from multinotes.note_exports.models import NoteExport
from multinotes.note_exports.service import exporter_of, options_of
from multinotes.sharing import access
from multinotes.storage import objects


@dataclass(frozen=True)
class Key:
    """What a remote page is remembered by: ``target`` (``note:<id>``...) and the foreign key
    column (with its id) of the thing it was made for, so the row goes with it."""

    target: str
    column: str
    object_id: str


def note_key(document_id: str) -> Key:
    return Key(f"note:{document_id}", "document_id", document_id)


#: A job's target type → (the target's prefix, the column its id goes in).
JOB_KEYS = {
    "conversation": ("conversation", "conversation_id"),
    "message": ("branch", "message_id"),
    "comparison": ("comparison", "message_id"),
    "answer": ("answer", "message_id"),
}


def folder_key(folder_id: str) -> Key:
    return Key(f"folder:{folder_id}", "folder_id", folder_id)


def folder_note_key(document_id: str) -> Key:
    """A note's page under its folder's page (apart from the note's own export)."""
    return Key(f"folder-note:{document_id}", "document_id", document_id)


async def _remote_id(db: Database, connection_id: str, exporter_id: str, key: Key) -> str | None:
    async with db.read() as session:
        found = await session.scalar(
            select(RemoteExport.remote_id).where(
                RemoteExport.connection_id == connection_id,
                RemoteExport.exporter == exporter_id,
                RemoteExport.target == key.target,
            )
        )
    return str(found) if found else None


async def _remember(
    db: Database,
    *,
    user_id: str,
    connection_id: str,
    exporter_id: str,
    key: Key,
    link: ExportLink,
) -> None:
    if not link.remote_id:
        return
    now = utcnow()
    async with db.transaction() as session:
        row = await session.scalar(
            select(RemoteExport).where(
                RemoteExport.connection_id == connection_id,
                RemoteExport.exporter == exporter_id,
                RemoteExport.target == key.target,
            )
        )
        if row is None:
            row = RemoteExport(
                user_id=user_id,
                connection_id=connection_id,
                exporter=exporter_id,
                target=key.target,
                remote_id=link.remote_id[:255],
                url=link.url[:2000],
                created_at=now,
                updated_at=now,
            )
            setattr(row, key.column, key.object_id)
            session.add(row)
        else:
            row.remote_id, row.url, row.updated_at = link.remote_id[:255], link.url[:2000], now


def _checked(exporter: Exporter, result: object, what: str) -> ExportLink:
    if not isinstance(result, ExportLink) or not result.url.startswith(("https://", "http://")):
        raise PluginError(
            f"{exporter.name} did not say where it put {what}.", plugin=exporter.exporter_id
        )
    return result


def with_signed_images(app: web.Application, document: ExportDocument) -> ExportDocument:
    """``document`` with a signed link (``ExportImage.url``) to each image of the user's files:
    a remote service fetches them from there, without signing in."""
    images = {
        src: image
        if image.file_id is None
        else replace(image, url=signed.signed_file_url(app, image.file_id))
        for src, image in document.images.items()
    }
    return replace(document, images=images)


async def _render(
    app: web.Application,
    exporter: Exporter,
    document: ExportDocument,
    options: ExportOptions,
    connection: Connection | None,
) -> ExportLink:
    document = with_signed_images(app, document)
    try:
        if connection is None:
            result = await exporter.render(document, options)
        else:
            render: Any = exporter.render  # the connection keyword is the remote contract's
            result = await render(document, options, connection=connection)
    except Invalid as exc:
        exc.message = f"{document.title!r}: {exc.message}"
        raise
    return _checked(exporter, result, "the note")


async def send(
    app: web.Application,
    user_id: str,
    exporter: Exporter,
    key: Key,
    act: Callable[[Connection | None], Awaitable[ExportLink]],
    parent_id: str | None = None,
) -> ExportLink:
    """Run ``act`` with the user's connection for ``exporter`` (its ``remote_id``: what was made
    for ``key`` before; ``parent_id``: where new pages go), refreshing a refused token once,
    and remember what it made."""
    db = app[DB]
    kind = exporter.connection
    if kind is None:
        return await act(None)
    usable = await connections.connection_for(app, user_id, kind)
    previous = await _remote_id(db, usable.id, exporter.exporter_id, key)

    async def attempt(current: connections.Usable) -> tuple[str, ExportLink]:
        connection = replace(current.connection, remote_id=previous, parent_id=parent_id)
        return current.id, await act(connection)

    connection_id, link = await connections.with_connection(app, user_id, kind, attempt)
    await _remember(
        db,
        user_id=user_id,
        connection_id=connection_id,
        exporter_id=exporter.exporter_id,
        key=key,
        link=link,
    )
    return link


def remote_exporter_of(app: web.Application, format_id: str) -> Exporter:
    exporter = exporter_of(app, format_id)
    if not exporter.remote:
        raise Invalid(
            f"{exporter.name} makes a file: download it with GET instead.",
            code="file_exporter",
            fields={"format": "Choose a remote destination (GET /api/exporters: remote)."},
        )
    return exporter


async def export_remote(
    app: web.Application,
    user_id: str,
    document_id: str,
    format_id: str,
    raw_options: dict[str, Any],
    base_url: str,
) -> ExportLink:
    """Send one note to a remote destination; the link to what was created or updated.
    Whether the person may read the note is checked first (404 like reading)."""
    db = app[DB]
    await access.document(db, user_id, document_id)
    exporter = remote_exporter_of(app, format_id)
    options = options_of(exporter, raw_options, prefix="options.")
    storage = objects.storage_of(app)
    document = await build.document_export(db, storage, user_id, document_id, base_url)
    return await send(
        app,
        user_id,
        exporter,
        note_key(document_id),
        functools.partial(_render, app, exporter, document, options),
    )


# -- background exports -------------------------------------------------------------------------


async def send_job(app: web.Application, job: NoteExport, base_url: str) -> str:
    """Send a job's target (a conversation, a branch, a comparison, an answer or a folder) to
    its remote destination; the address of what was made (a folder: its page or Drive
    folder)."""
    db, storage = app[DB], objects.storage_of(app)
    exporter = exporter_of(app, job.format)
    options = options_of(exporter, job.options or {})
    target_id = job.target_ids[0]
    if job.target_type == "folder":
        return await _send_folder(app, job, exporter, options, base_url)
    if job.target_type not in JOB_KEYS:
        raise Invalid(
            f"{exporter.name} takes one note at a time: send each note from its page.",
            code="remote_exporter",
            fields={"document_ids": "not for a remote destination"},
        )
    loaders: dict[str, Callable[..., Awaitable[ExportDocument]]] = {
        "conversation": build.conversation_export,
        "message": build.message_export,
        "comparison": answers.comparison_export,
        "answer": answers.answer_export,
    }
    document = await loaders[job.target_type](db, storage, job.user_id, target_id, base_url)
    prefix, column = JOB_KEYS[job.target_type]
    progress = service.Progress(app, job, 1)
    link = await send(
        app,
        job.user_id,
        exporter,
        Key(f"{prefix}:{target_id}", column, target_id),
        functools.partial(_render, app, exporter, document, options),
    )
    await progress.step()
    await progress.store(force=True)
    return link.url


async def _send_folder(
    app: web.Application,
    job: NoteExport,
    exporter: Exporter,
    options: ExportOptions,
    base_url: str,
) -> str:
    """One page per note, under a page (a Drive folder) per folder, the exported folder's at the
    top: made on the first export, updated (renamed, rewritten) on the next ones."""
    if not exporter.takes_folders:
        raise Invalid(
            f"{exporter.name} cannot take a folder: export its notes one by one.",
            code="remote_exporter",
            fields={"folder_id": "not for this destination"},
        )
    db, storage = app[DB], objects.storage_of(app)
    tree = await service.folder_tree(db, job.user_id, job.target_ids[0])
    progress = service.Progress(app, job, len(tree.items))
    await progress.store(force=True)
    places: dict[str, ExportLink] = {}

    async def place(folder_id: str) -> str:
        """The remote id of the folder's page, made (with those above it) when first needed."""
        if folder_id not in places:
            parent = tree.parents.get(folder_id)
            above = await place(parent) if parent is not None and folder_id != tree.root else None
            title, link = tree.names[folder_id], f"{base_url}/notes?folder={folder_id}"

            async def make(connection: Connection | None) -> ExportLink:
                if connection is None:
                    raise Invalid(f"{exporter.name} needs a connected account for folders.")
                made = await exporter.container(title, link, options, connection=connection)
                return _checked(exporter, made, f"the folder {title!r}")

            made = await send(app, job.user_id, exporter, folder_key(folder_id), make, above)
            if not made.remote_id:
                raise PluginError(
                    f"{exporter.name} did not say which folder page it made.",
                    plugin=exporter.exporter_id,
                )
            places[folder_id] = made
        return str(places[folder_id].remote_id)

    await place(tree.root)
    for document_id, folder_id in tree.items:
        parent = await place(folder_id)
        try:
            document = await build.document_export(
                db, storage, job.user_id, document_id, base_url, tree.paths[folder_id]
            )
        except NotFound:  # deleted, or unshared, while the export ran
            await progress.step()
            continue
        await send(
            app,
            job.user_id,
            exporter,
            folder_note_key(document_id),
            functools.partial(_render, app, exporter, document, options),
            parent,
        )
        await progress.step()
    await progress.store(force=True)
    return places[tree.root].url
