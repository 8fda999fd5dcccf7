"""Exporting a note to a remote destination (Notion, Google Docs): the exporter creates or
updates a page at the service, through the user's connected account, and returns its address.

It runs in the request: one note is a handful of calls, each retried by the plugin on 429/5xx
with the service's ``Retry-After``, so the person gets the link (or a clear error) at once. The
remote id of what was made is kept per connection and note (``remote_exports``), so exporting
the note again updates the same page. A refused token is refreshed once and the export tried
again; a refusal after that marks the connection revoked and asks the user to reconnect.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.connections import Connection
from multinotes.connections import service as connections
from multinotes.connections.models import RemoteExport
from multinotes.db import Database, utcnow
from multinotes.errors import Invalid, PluginError
from multinotes.exporters import ExportDocument, Exporter, ExportLink, ExportOptions
from multinotes.keys import DB
from multinotes.note_exports import documents as build
from multinotes.note_exports.service import exporter_of, options_of
from multinotes.sharing import access
from multinotes.storage import objects


async def _remote_id(
    db: Database, connection_id: str, exporter_id: str, document_id: str
) -> str | None:
    async with db.read() as session:
        found = await session.scalar(
            select(RemoteExport.remote_id).where(
                RemoteExport.connection_id == connection_id,
                RemoteExport.exporter == exporter_id,
                RemoteExport.document_id == document_id,
            )
        )
    return str(found) if found else None


async def _remember(
    db: Database,
    *,
    user_id: str,
    connection_id: str,
    exporter_id: str,
    document_id: str,
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
                RemoteExport.document_id == document_id,
            )
        )
        if row is None:
            session.add(
                RemoteExport(
                    user_id=user_id,
                    connection_id=connection_id,
                    exporter=exporter_id,
                    document_id=document_id,
                    remote_id=link.remote_id[:255],
                    url=link.url[:2000],
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            row.remote_id, row.url, row.updated_at = link.remote_id[:255], link.url[:2000], now


async def _render(
    exporter: Exporter,
    document: ExportDocument,
    options: ExportOptions,
    connection: Connection | None,
) -> ExportLink:
    try:
        if connection is None:
            result = await exporter.render(document, options)
        else:
            render: Any = exporter.render  # the connection keyword is the remote contract's
            result = await render(document, options, connection=connection)
    except Invalid as exc:
        exc.message = f"{document.title!r}: {exc.message}"
        raise
    if not isinstance(result, ExportLink) or not result.url.startswith(("https://", "http://")):
        raise PluginError(
            f"{exporter.name} did not say where it put the note.", plugin=exporter.exporter_id
        )
    return result


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
    exporter = exporter_of(app, format_id)
    if not exporter.remote:
        raise Invalid(
            f"{exporter.name} makes a file: download it with GET instead.",
            code="file_exporter",
            fields={"format": "Choose a remote destination (GET /api/exporters: remote)."},
        )
    options = options_of(exporter, raw_options, prefix="options.")
    kind = exporter.connection
    usable = await connections.connection_for(app, user_id, kind) if kind else None
    storage = objects.storage_of(app)
    document = await build.document_export(db, storage, user_id, document_id, base_url)
    if usable is None or kind is None:
        return await _render(exporter, document, options, None)
    previous = await _remote_id(db, usable.id, exporter.exporter_id, document_id)

    async def send(current: connections.Usable) -> tuple[str, ExportLink]:
        connection = replace(current.connection, remote_id=previous)
        return current.id, await _render(exporter, document, options, connection)

    connection_id, link = await connections.with_connection(app, user_id, kind, send)
    await _remember(
        db,
        user_id=user_id,
        connection_id=connection_id,
        exporter_id=exporter.exporter_id,
        document_id=document_id,
        link=link,
    )
    return link
