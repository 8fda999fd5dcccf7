"""Folders and documents as seen by their owner: every query filters on ``user_id``, and an id
that is someone else's is ``NotFound`` (ids leak nothing).

Transactions are short and never span a remote call.
"""

from __future__ import annotations

import base64
import difflib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, Text, and_, delete, func, or_, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, iso_utc, rows_affected, utc_text, utcnow
from multinotes.domain_events import (
    FOLDER_CREATED,
    NOTE_CREATED,
    NOTE_DELETED,
    NOTE_UPDATED,
    DomainEvent,
    FolderCreated,
    NoteChange,
    NoteCreated,
    NoteDeleted,
    NoteSource,
    NoteUpdated,
    stage,
)
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.markdown import render_markdown
from multinotes.notes.models import Document, DocumentActivity, DocumentVersion, Folder

#: How long deleted folders and documents stay restorable.
TRASH_DAYS = 30
RESTORED_SUFFIX = " (restored)"
SORTS = ("updated", "-updated", "created", "-created", "title", "-title")


class StaleVersion(Conflict):
    """An edit based on an older version: the body carries the current one so nothing is lost."""

    code = "stale_version"
    default_message = "This note changed since you loaded it. Merge with the current version."

    def __init__(self, document: Document) -> None:
        super().__init__()
        self.current = {
            "version": document.version,
            "title": document.title,
            "content": document.content,
            "updated_at": document.updated_at.isoformat(),
        }

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"]["current"] = self.current
        return body


# -- folders -----------------------------------------------------------------------------------


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise Invalid(fields={"name": "must not be blank"})
    if "/" in name:
        raise Invalid(fields={"name": "must not contain '/'"})
    return name


def name_key(name: str) -> str:
    return name.casefold()[:200]


async def _live_folder(session: AsyncSession, user_id: str, folder_id: str) -> Folder:
    folder = await session.scalar(
        select(Folder).where(
            Folder.id == folder_id, Folder.user_id == user_id, Folder.deleted_at.is_(None)
        )
    )
    if folder is None:
        raise NotFound("No such folder.")
    return folder


async def _name_taken(
    session: AsyncSession,
    user_id: str,
    parent_id: str | None,
    name: str,
    except_id: str | None = None,
) -> bool:
    query = select(Folder.id).where(
        Folder.user_id == user_id,
        Folder.parent_key == (parent_id or ""),
        Folder.name_key == name_key(name),
        Folder.live_key == "",
    )
    if except_id is not None:
        query = query.where(Folder.id != except_id)
    return (await session.scalar(query.limit(1))) is not None


def _name_clash() -> Invalid:
    return Invalid(
        "A folder with this name already exists here.",
        code="name_taken",
        fields={"name": "already used in this folder"},
    )


async def _flush_unique(session: AsyncSession) -> None:
    """The unique index is the last word when two requests race past the service's check."""
    try:
        await session.flush()
    except IntegrityError:
        raise _name_clash() from None


async def list_folders(db: Database, user_id: str) -> list[Folder]:
    async with db.read() as session:
        rows = await session.scalars(
            select(Folder)
            .where(Folder.user_id == user_id, Folder.deleted_at.is_(None))
            .order_by(Folder.name_key, Folder.id)
        )
        return list(rows)


async def create_folder(db: Database, user_id: str, name: str, parent_id: str | None) -> Folder:
    name = clean_name(name)
    async with db.transaction() as session:
        if parent_id is not None:
            await _live_folder(session, user_id, parent_id)
        if await _name_taken(session, user_id, parent_id, name):
            raise _name_clash()
        folder = Folder(
            user_id=user_id,
            parent_id=parent_id,
            parent_key=parent_id or "",
            name=name,
            name_key=name_key(name),
        )
        session.add(folder)
        await _flush_unique(session)
        stage(
            session,
            FOLDER_CREATED.of(
                user_id, FolderCreated(folder_id=folder.id, name=folder.name, parent_id=parent_id)
            ),
        )
    return folder


async def _ancestors(session: AsyncSession, user_id: str, folder_id: str) -> list[str]:
    """``folder_id`` and every folder above it."""
    parents: dict[str, str | None] = dict(
        (
            await session.execute(
                select(Folder.id, Folder.parent_id).where(Folder.user_id == user_id)
            )
        ).all()
    )
    chain = []
    current: str | None = folder_id
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    return chain


async def update_folder(
    db: Database, user_id: str, folder_id: str, changes: dict[str, Any]
) -> Folder:
    """Rename and/or move (``parent_id`` None moves to the root). A folder cannot move into
    itself or below itself."""
    async with db.transaction() as session:
        folder = await _live_folder(session, user_id, folder_id)
        name = clean_name(changes["name"]) if changes.get("name") is not None else folder.name
        parent_id = changes.get("parent_id", folder.parent_id)
        if parent_id is not None and parent_id != folder.parent_id:
            await _live_folder(session, user_id, parent_id)
            if folder.id in await _ancestors(session, user_id, parent_id):
                raise Invalid(
                    "A folder cannot be moved into itself or one of its subfolders.",
                    code="folder_cycle",
                    fields={"parent_id": "is this folder or one of its subfolders"},
                )
        if await _name_taken(session, user_id, parent_id, name, except_id=folder.id):
            raise _name_clash()
        folder.name = name
        folder.name_key = name_key(name)
        folder.parent_id = parent_id
        folder.parent_key = parent_id or ""
        folder.updated_at = utcnow()
        await _flush_unique(session)
    return folder


async def _subtree(session: AsyncSession, user_id: str, root_id: str) -> list[str]:
    """``root_id`` and all live folders below it."""
    rows = (
        await session.execute(
            select(Folder.id, Folder.parent_id).where(
                Folder.user_id == user_id, Folder.deleted_at.is_(None)
            )
        )
    ).all()
    children: dict[str | None, list[str]] = {}
    for fid, parent in rows:
        children.setdefault(parent, []).append(fid)
    found, stack = [], [root_id]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


async def trash_folder(db: Database, user_id: str, folder_id: str) -> None:
    """Move a folder, its subfolders and their documents to the trash, as one restorable item."""
    async with db.transaction() as session:
        await _live_folder(session, user_id, folder_id)
        await _trash_subtree(session, user_id, folder_id, utcnow())


async def _trash_subtree(
    session: AsyncSession, user_id: str, folder_id: str, now: datetime
) -> None:
    ids = await _subtree(session, user_id, folder_id)
    for chunk in _chunks(ids):
        await session.execute(
            update(Folder)
            .where(Folder.user_id == user_id, Folder.id.in_(chunk))
            .values(deleted_at=now, trash_root=folder_id, live_key=Folder.id)
        )
        live = and_(
            Document.user_id == user_id,
            Document.folder_id.in_(chunk),
            Document.deleted_at.is_(None),
        )
        # Each note that goes along is deleted like one trashed alone: webhooks, search and
        # the other subscribers hear of every one of them.
        going = (
            await session.execute(
                select(Document.id, Document.title).where(live).order_by(Document.id)
            )
        ).all()
        for note_id, title in going:
            stage(session, _note_deleted(user_id, note_id, title, user_id))
        await session.execute(
            update(Document).where(live).values(deleted_at=now, trash_root=folder_id)
        )


def _chunks(ids: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)] or [[]]


async def _restored_parent(
    session: AsyncSession, user_id: str, parent_id: str | None
) -> str | None:
    """Where a restored item goes: back where it was, or the root if that folder is gone."""
    if parent_id is None:
        return None
    live = await session.scalar(
        select(Folder.id).where(
            Folder.id == parent_id, Folder.user_id == user_id, Folder.deleted_at.is_(None)
        )
    )
    return live


async def restore_folder(db: Database, user_id: str, folder_id: str) -> Folder:
    """Bring back a trashed folder with everything that went to the trash with it."""
    async with db.transaction() as session:
        folder = await session.scalar(
            select(Folder).where(
                Folder.id == folder_id,
                Folder.user_id == user_id,
                Folder.trash_root == folder_id,
                Folder.deleted_at.is_not(None),
            )
        )
        if folder is None:
            raise NotFound("No such folder in the trash.")
        parent_id = await _restored_parent(session, user_id, folder.parent_id)
        name = folder.name
        while await _name_taken(session, user_id, parent_id, name, except_id=folder.id):
            name = (name + RESTORED_SUFFIX)[-200:]
        folder.name, folder.name_key = name, name_key(name)
        folder.parent_id, folder.parent_key = parent_id, parent_id or ""
        returning = list(
            await session.scalars(
                select(Document)
                .where(Document.user_id == user_id, Document.trash_root == folder_id)
                .order_by(Document.id)
            )
        )
        session.add_all(
            DocumentActivity(
                document_id=document.id, actor_id=user_id, kind="restore", detail={"folder": name}
            )
            for document in returning
        )
        # Each note that comes back is restored like one restored alone (note.updated).
        for document in returning:
            stage(session, note_updated(document, user_id, ["restored"]))
        await session.execute(
            update(Folder)
            .where(Folder.user_id == user_id, Folder.trash_root == folder_id)
            .values(deleted_at=None, trash_root=None, live_key="")
        )
        await session.execute(
            update(Document)
            .where(Document.user_id == user_id, Document.trash_root == folder_id)
            .values(deleted_at=None, trash_root=None)
        )
        folder.deleted_at, folder.trash_root, folder.live_key = None, None, ""
        await _flush_unique(session)
    return folder


async def list_trash(db: Database, user_id: str) -> dict[str, list[Any]]:
    """What the user deleted (not what went along with it), newest first."""
    async with db.read() as session:
        folders = list(
            await session.scalars(
                select(Folder)
                .where(Folder.user_id == user_id, Folder.trash_root == Folder.id)
                .order_by(Folder.deleted_at.desc(), Folder.id)
            )
        )
        documents = list(
            await session.scalars(
                select(Document)
                .where(Document.user_id == user_id, Document.trash_root == Document.id)
                .order_by(Document.deleted_at.desc(), Document.id)
            )
        )
    return {"folders": folders, "documents": documents}


async def purge_trash(db: Database, cutoff: datetime | None = None) -> int:
    """Delete for good what has been in the trash since before ``cutoff`` (default: 30 days
    ago). Children are always trashed no later than their folder, so the cutoff takes whole
    subtrees, deleted here deepest first (no cascade is relied on)."""
    cutoff = cutoff or utcnow() - timedelta(days=TRASH_DAYS)
    removed = 0
    async with db.transaction() as session:
        result = await session.execute(delete(Document).where(Document.deleted_at < cutoff))
        removed += rows_affected(result)
        rows = (
            await session.execute(
                select(Folder.id, Folder.parent_id).where(Folder.deleted_at < cutoff)
            )
        ).all()
    parents = dict(rows)

    def depth(fid: str) -> int:
        level, current = 0, parents.get(fid)
        while current is not None and current in parents and level < 10_000:
            level, current = level + 1, parents.get(current)
        return level

    for fid in sorted(parents, key=depth, reverse=True):
        async with db.transaction() as session:
            # Its subfolders (trashed with it or before it) have gone already.
            result = await session.execute(
                delete(Folder).where(Folder.id == fid, Folder.deleted_at < cutoff)
            )
            removed += rows_affected(result)
    return removed


def folder_out(folder: Folder) -> dict[str, Any]:
    return {
        "id": folder.id,
        "name": folder.name,
        "parent_id": folder.parent_id,
        "created_at": folder.created_at.isoformat(),
        "updated_at": folder.updated_at.isoformat(),
    }


def trashed_out(item: Folder | Document) -> dict[str, Any]:
    assert item.deleted_at is not None
    if isinstance(item, Folder):
        base = {"kind": "folder", "id": item.id, "name": item.name, "parent_id": item.parent_id}
    else:
        base = {"kind": "document", "id": item.id, "title": item.title, "folder_id": item.folder_id}
    return {
        **base,
        "deleted_at": item.deleted_at.isoformat(),
        "purge_after": (item.deleted_at + timedelta(days=TRASH_DAYS)).isoformat(),
    }


# -- documents ---------------------------------------------------------------------------------


def clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise Invalid(fields={"title": "must not be blank"})
    return title[:300]


async def _live_document(
    session: AsyncSession, user_id: str, document_id: str, *, for_update: bool = False
) -> Document:
    query = select(Document).where(
        Document.id == document_id, Document.user_id == user_id, Document.deleted_at.is_(None)
    )
    if for_update:
        query = query.with_for_update()
    document = await session.scalar(query)
    if document is None:
        raise NotFound("No such document.")
    return document


async def get_document(db: Database, user_id: str, document_id: str) -> Document:
    async with db.read() as session:
        return await _live_document(session, user_id, document_id)


async def create_document(
    db: Database,
    user_id: str,
    *,
    title: str,
    content: str,
    folder_id: str | None,
    provenance: dict[str, Any] | None = None,
    source: NoteSource = "editor",
) -> Document:
    """A new note (version 1); ``source`` says how it came to be (``note.created``)."""
    title = clean_title(title)
    async with db.transaction() as session:
        if folder_id is not None:
            await _live_folder(session, user_id, folder_id)
        document = Document(
            user_id=user_id,
            folder_id=folder_id,
            title=title,
            content=content,
            version=1,
            provenance=provenance,
        )
        session.add(document)
        await session.flush()
        session.add(_version_of(document, user_id))
        stage(session, note_created(document, user_id, source))
    return document


def note_created(document: Document, actor_id: str | None, source: NoteSource) -> DomainEvent:
    return NOTE_CREATED.of(
        document.user_id,
        NoteCreated(
            note_id=document.id,
            title=document.title,
            folder_id=document.folder_id,
            version=document.version,
            actor_id=actor_id,
            source=source,
        ),
    )


def note_updated(
    document: Document, actor_id: str | None, changes: list[NoteChange]
) -> DomainEvent:
    return NOTE_UPDATED.of(
        document.user_id,
        NoteUpdated(
            note_id=document.id,
            title=document.title,
            folder_id=document.folder_id,
            version=document.version,
            actor_id=actor_id,
            changes=changes,
        ),
    )


def note_deleted(document: Document, actor_id: str | None) -> DomainEvent:
    return _note_deleted(document.user_id, document.id, document.title, actor_id)


def _note_deleted(owner_id: str, note_id: str, title: str, actor_id: str | None) -> DomainEvent:
    return NOTE_DELETED.of(owner_id, NoteDeleted(note_id=note_id, title=title, actor_id=actor_id))


def _version_of(document: Document, by: str | None) -> DocumentVersion:
    return DocumentVersion(
        document_id=document.id,
        user_id=document.user_id,
        version=document.version,
        title=document.title,
        content=document.content,
        created_by=by,
    )


async def update_document(
    db: Database,
    user_id: str,
    document_id: str,
    version: int,
    changes: dict[str, Any],
    *,
    by: str | None = None,
) -> Document:
    """Save an edit made on ``version``. Title/content changes make a new version; a move alone
    keeps the version number. An edit on an older version is refused with the current one.
    ``user_id`` is the owner; ``by`` who saves, when not the owner (an editor it is shared with)."""
    async with db.transaction() as session:
        document = await _live_document(session, user_id, document_id, for_update=True)
        if document.version != version:
            raise StaleVersion(document)
        changed: list[NoteChange] = []
        if "folder_id" in changes and changes["folder_id"] != document.folder_id:
            if changes["folder_id"] is not None:
                await _live_folder(session, user_id, changes["folder_id"])
            document.folder_id = changes["folder_id"]
            changed.append("folder")
        title = clean_title(changes["title"]) if changes.get("title") is not None else None
        content = changes.get("content")
        edited = (title is not None and title != document.title) or (
            content is not None and content != document.content
        )
        if edited:
            # The conditional update is the guard when two saves race on the same version.
            result = await session.execute(
                update(Document)
                .where(Document.id == document.id, Document.version == version)
                .values(version=version + 1)
                .execution_options(synchronize_session=False)
            )
            if rows_affected(result) != 1:
                await session.refresh(document)
                raise StaleVersion(document)
            document.version = version + 1
            if title is not None and title != document.title:
                document.title = title
                changed.append("title")
            if content is not None and content != document.content:
                document.content = content
                changed.append("content")
            session.add(_version_of(document, by or user_id))
        document.updated_at = utcnow()
        if changed:
            stage(session, note_updated(document, by or user_id, changed))
    return document


async def trash_document(db: Database, user_id: str, document_id: str) -> None:
    async with db.transaction() as session:
        document = await _live_document(session, user_id, document_id)
        document.deleted_at = utcnow()
        document.trash_root = document.id
        stage(session, note_deleted(document, user_id))


async def restore_document(db: Database, user_id: str, document_id: str) -> Document:
    async with db.transaction() as session:
        document = await session.scalar(
            select(Document).where(
                Document.id == document_id,
                Document.user_id == user_id,
                Document.trash_root == document_id,
            )
        )
        if document is None:
            raise NotFound("No such document in the trash.")
        document.folder_id = await _restored_parent(session, user_id, document.folder_id)
        document.deleted_at = document.trash_root = None
        session.add(DocumentActivity(document_id=document.id, actor_id=user_id, kind="restore"))
        stage(session, note_updated(document, user_id, ["restored"]))
    return document


async def duplicate_document(db: Database, user_id: str, document_id: str) -> Document:
    async with db.read() as session:
        source = await _live_document(session, user_id, document_id)
    return await create_document(
        db,
        user_id,
        title=f"{source.title} (copy)",
        content=source.content,
        folder_id=source.folder_id,
        provenance=source.provenance,
        source="duplicate",
    )


def _encode_cursor(value: Any, row_id: str) -> str:
    raw = json.dumps([value, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return value, str(row_id)
    except (ValueError, TypeError):
        raise Invalid(fields={"cursor": "not a cursor from this list"}) from None


#: What the API's list of notes shows of each (``summary_from_text``), never the body: the
#: provenance as its JSON text and the timestamps as text, so no JSON document or datetime is
#: built per row only to be turned back into text.
SUMMARY_COLUMNS = (
    Document.id,
    Document.title,
    Document.folder_id,
    Document.version,
    type_coerce(Document.provenance, Text).label("provenance"),
    utc_text(Document.created_at),
    utc_text(Document.updated_at),
)


async def list_documents(
    db: Database,
    user_id: str,
    *,
    folder_id: str | None = None,
    q: str | None = None,
    sort: str = "-updated",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Document], str | None]:
    """Live documents, keyset-paginated: the cursor holds the last row's sort value and id.

    ``folder_id`` "root" lists the documents outside any folder; none lists all."""
    rows, next_cursor = await _document_page(
        db, user_id, select(Document), folder_id, q, sort, cursor, limit, rows=False
    )
    return rows, next_cursor


async def list_document_summaries(
    db: Database,
    user_id: str,
    *,
    folder_id: str | None = None,
    q: str | None = None,
    sort: str = "-updated",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """``list_documents`` as ``document_summary`` dicts, reading only their columns as text
    through a Core connection (no entities, no session: a list of titles does not carry every
    body along, nor build objects it only prints)."""
    summaries, next_cursor = await _document_page(
        db, user_id, select(*SUMMARY_COLUMNS), folder_id, q, sort, cursor, limit, rows=True
    )
    return summaries, next_cursor


async def _document_page(
    db: Database,
    user_id: str,
    query: Select[Any],
    folder_id: str | None,
    q: str | None,
    sort: str,
    cursor: str | None,
    limit: int,
    *,
    rows: bool,
) -> tuple[list[Any], str | None]:
    """A page of ``query``: entities, or with ``rows`` the summaries of its text rows."""
    column: Any = {
        "updated": Document.updated_at,
        "created": Document.created_at,
        "title": Document.title,
    }[sort.lstrip("-")]
    descending = sort.startswith("-")
    query = query.where(Document.user_id == user_id, Document.deleted_at.is_(None))
    if folder_id == "root":
        query = query.where(Document.folder_id.is_(None))
    elif folder_id is not None:
        async with db.read() as session:
            await _live_folder(session, user_id, folder_id)
        query = query.where(Document.folder_id == folder_id)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                func.lower(Document.title).like(pattern.lower(), escape="\\"),
                func.lower(Document.content).like(pattern.lower(), escape="\\"),
            )
        )
    if cursor:
        value, last_id = _decode_cursor(cursor)
        if column is not Document.title:
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise Invalid(fields={"cursor": "not a cursor from this list"}) from None
        if descending:
            query = query.where(or_(column < value, and_(column == value, Document.id < last_id)))
        else:
            query = query.where(or_(column > value, and_(column == value, Document.id > last_id)))
    order = (column.desc(), Document.id.desc()) if descending else (column, Document.id)
    query = query.order_by(*order).limit(limit + 1)
    found: list[Any]
    if rows:
        found = [summary_from_text(row) for row in await db.read_rows(query)]
    else:
        async with db.read() as session:
            found = list((await session.scalars(query)).all())
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last = found[-1]
        value = last[column.key] if rows else getattr(last, column.key)
        next_cursor = _encode_cursor(
            value if isinstance(value, str) else value.isoformat(),
            last["id"] if rows else last.id,
        )
    return found, next_cursor


def document_summary(document: Document) -> dict[str, Any]:
    """A note in a list (``summary_from_text`` is the same from a row of ``SUMMARY_COLUMNS``)."""
    return {
        "id": document.id,
        "title": document.title,
        "folder_id": document.folder_id,
        "version": document.version,
        "has_provenance": bool(document.provenance),
        "created_at": document.created_at.isoformat(),
        "updated_at": document.updated_at.isoformat(),
    }


def summary_from_text(row: Row[Any]) -> dict[str, Any]:
    """``document_summary`` of a row of ``SUMMARY_COLUMNS``: the same dict, to the byte."""
    provenance = row.provenance
    return {
        "id": row.id,
        "title": row.title,
        "folder_id": row.folder_id,
        "version": row.version,
        "has_provenance": provenance is not None
        and provenance != "null"
        and (provenance.startswith('{"') or bool(json.loads(provenance))),
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
    }


def document_out(document: Document) -> dict[str, Any]:
    return {
        **document_summary(document),
        "content": document.content,
        "html": render_markdown(document.content),
        "provenance": document.provenance,
    }


# -- several items at once ---------------------------------------------------------------------


async def move_items(
    db: Database,
    user_id: str,
    *,
    folder_ids: Sequence[str],
    document_ids: Sequence[str],
    target_id: str | None,
) -> None:
    """Move folders and notes into ``target_id`` (None: the root) in one transaction: one refused
    item (not found, a folder into itself, a name taken there) leaves everything where it was."""
    now = utcnow()
    async with db.transaction() as session:
        above: list[str] = []
        if target_id is not None:
            await _live_folder(session, user_id, target_id)
            above = await _ancestors(session, user_id, target_id)
        for folder_id in dict.fromkeys(folder_ids):
            folder = await _live_folder(session, user_id, folder_id)
            if folder.id in above:
                raise Invalid(
                    f"“{folder.name}” cannot be moved into itself or one of its subfolders.",
                    code="folder_cycle",
                    fields={"parent_id": "is this folder or one of its subfolders"},
                )
            if folder.parent_id == target_id:
                continue
            if await _name_taken(session, user_id, target_id, folder.name, except_id=folder.id):
                raise Invalid(
                    f"A folder named “{folder.name}” already exists there.",
                    code="name_taken",
                    fields={"name": "already used in this folder"},
                )
            folder.parent_id, folder.parent_key, folder.updated_at = target_id, target_id or "", now
            await _flush_unique(session)  # the next name check sees this folder in its place
        for document_id in dict.fromkeys(document_ids):
            document = await _live_document(session, user_id, document_id, for_update=True)
            if document.folder_id != target_id:
                document.folder_id, document.updated_at = target_id, now
                stage(session, note_updated(document, user_id, ["folder"]))


async def trash_items(
    db: Database, user_id: str, *, folder_ids: Sequence[str], document_ids: Sequence[str]
) -> None:
    """Move folders (with their contents) and notes to the trash in one transaction. What lies
    inside another chosen folder goes along with that folder, and comes back with it."""
    now = utcnow()
    async with db.transaction() as session:
        folders = [await _live_folder(session, user_id, f) for f in dict.fromkeys(folder_ids)]
        documents = [await _live_document(session, user_id, d) for d in dict.fromkeys(document_ids)]
        chosen = {f.id for f in folders}
        parents: dict[str, str | None] = dict(
            (
                await session.execute(
                    select(Folder.id, Folder.parent_id).where(Folder.user_id == user_id)
                )
            ).all()
        )

        def inside_chosen(folder_id: str | None) -> bool:
            seen: set[str] = set()
            while folder_id is not None and folder_id not in seen:
                if folder_id in chosen:
                    return True
                seen.add(folder_id)
                folder_id = parents.get(folder_id)
            return False

        for document in documents:
            if not inside_chosen(document.folder_id):
                document.deleted_at, document.trash_root = now, document.id
                stage(session, note_deleted(document, user_id))
        await session.flush()
        for folder in folders:
            if not inside_chosen(folder.parent_id):
                await _trash_subtree(session, user_id, folder.id, now)


# -- versions ----------------------------------------------------------------------------------


async def list_versions(db: Database, user_id: str, document_id: str) -> list[DocumentVersion]:
    async with db.read() as session:
        await _live_document(session, user_id, document_id)
        rows = await session.scalars(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == document_id, DocumentVersion.user_id == user_id)
            .order_by(DocumentVersion.version.desc())
        )
        return list(rows)


async def get_version(db: Database, user_id: str, document_id: str, number: int) -> DocumentVersion:
    async with db.read() as session:
        await _live_document(session, user_id, document_id)
        version = await session.scalar(
            select(DocumentVersion).where(
                DocumentVersion.document_id == document_id,
                DocumentVersion.user_id == user_id,
                DocumentVersion.version == number,
            )
        )
    if version is None:
        raise NotFound("No such version.")
    return version


async def restore_version(
    db: Database, user_id: str, document_id: str, number: int, *, by: str | None = None
) -> Document:
    """Make an old version the current one, as a new version (history is never rewritten).
    ``user_id`` is the owner; ``by`` who restores, when not the owner (an editor)."""
    old = await get_version(db, user_id, document_id, number)
    async with db.transaction() as session:
        document = await _live_document(session, user_id, document_id, for_update=True)
        document.version += 1
        compared: tuple[tuple[NoteChange, str, str], ...] = (
            ("title", document.title, old.title),
            ("content", document.content, old.content),
        )
        changed: list[NoteChange] = [
            change for change, before, after in compared if before != after
        ]
        document.title, document.content = old.title, old.content
        document.updated_at = utcnow()
        session.add(_version_of(document, by or user_id))
        # The activity feed shows this version as the restore it is (multinotes.sharing.activity).
        session.add(
            DocumentActivity(
                document_id=document.id,
                actor_id=by or user_id,
                kind="restore_version",
                detail={"restored": number, "version": document.version},
            )
        )
        stage(session, note_updated(document, by or user_id, changed))
    return document


def version_out(version: DocumentVersion, *, content: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": version.version,
        "title": version.title,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "size": len(version.content),
    }
    if content:
        out["content"] = version.content
        out["html"] = render_markdown(version.content)
    return out


def diff_versions(old: DocumentVersion, new: DocumentVersion) -> dict[str, Any]:
    """A unified diff (as ``diff -u`` prints it) and the same as a list of line operations."""
    a, b = old.content.splitlines(), new.content.splitlines()
    unified = "\n".join(
        difflib.unified_diff(a, b, f"version {old.version}", f"version {new.version}", lineterm="")
    )
    lines: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            lines += [{"op": "equal", "text": t} for t in a[i1:i2]]
            continue
        lines += [{"op": "delete", "text": t} for t in a[i1:i2]]
        lines += [{"op": "insert", "text": t} for t in b[j1:j2]]
    return {
        "from_version": old.version,
        "to_version": new.version,
        "title_changed": old.title != new.title,
        "unified": unified,
        "lines": lines,
    }
