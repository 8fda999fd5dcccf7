"""A note's activity feed: who did what to it, newest first.

Edits are the note's saved versions (``document_versions`` already says who saved which version
when); everything else (shares and revokes, comments, restores) is a ``document_activity`` row,
written in the same transaction as the change it records (restores by the notes service).
A restored version is both a version and a "restore_version" event; the feed shows it once, as
the restore.

Shares of the folders above the note (at any depth) change who sees and edits it too, so the feed
shows them as well: "folder_share", "folder_share_changed" and "folder_unshare", with the
folder's id and current name in ``detail``. They are the folders' own events
(``folder_activity``), read when the feed is shown, for the folders the note is in *now*: an
event of a folder shared before the note was moved into it is shown (that share is what lets
people see the note today), and a note moved out of a folder no longer shows its events.
A reader sees the events of the folders they may open (``access.folders_above``), so someone the
note alone is shared with learns neither the names of the owner's folders nor who else they are
shared with.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database
from multinotes.identity.models import User
from multinotes.notes.models import Document, DocumentVersion, Folder
from multinotes.sharing import access
from multinotes.sharing.models import Comment, DocumentActivity, FolderActivity
from multinotes.sharing.notifications import excerpt

KINDS = (
    "created",
    "edited",
    "restore",
    "restore_version",
    "share",
    "share_changed",
    "unshare",
    "comment",
    "folder_share",
    "folder_share_changed",
    "folder_unshare",
)


async def list_activity(
    db: Database, user_id: str, document_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest ``limit`` events of a note the user can see."""
    async with db.read() as session:
        document, _ = await access.document_in(session, user_id, document_id)
        versions = list(
            await session.scalars(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document.id)
                .order_by(DocumentVersion.version.desc())
                .limit(limit * 2)
            )
        )
        events = list(
            await session.scalars(
                select(DocumentActivity)
                .where(DocumentActivity.document_id == document.id)
                .order_by(DocumentActivity.created_at.desc(), DocumentActivity.id.desc())
                .limit(limit)
            )
        )
        folder_events = await _folder_events(session, user_id, document, limit)
        comment_ids = [e.detail.get("comment_id") for e in events if e.kind == "comment"]
        comments = {
            c.id: c
            for c in await session.scalars(
                select(Comment).where(Comment.id.in_([c for c in comment_ids if c] or [""]))
            )
        }
        people = (
            {v.created_by for v in versions}
            | {e.actor_id for e in events}
            | {e.actor_id for e, _ in folder_events}
        )
        names = await _names(session, {p for p in people if p})
    restored = {e.detail.get("version") for e in events if e.kind == "restore_version"}
    items: list[dict[str, Any]] = []
    for version in versions:
        if version.version in restored:
            continue
        items.append(
            {
                "kind": "created" if version.version == 1 else "edited",
                "actor": _person(version.created_by, names),
                "at": version.created_at,
                "detail": {"version": version.version, "title": version.title},
            }
        )
    for event in events:
        detail = dict(event.detail)
        if event.kind == "comment":
            comment = comments.get(detail.get("comment_id", ""))
            detail["excerpt"] = excerpt(comment.body, 140) if comment else None
        items.append(
            {
                "kind": event.kind,
                "actor": _person(event.actor_id, names),
                "at": event.created_at,
                "detail": detail,
            }
        )
    for folder_event, folder_name in folder_events:
        items.append(
            {
                "kind": f"folder_{folder_event.kind}",
                "actor": _person(folder_event.actor_id, names),
                "at": folder_event.created_at,
                "detail": {
                    **folder_event.detail,
                    "folder_id": folder_event.folder_id,
                    "folder": folder_name,
                },
            }
        )
    items.sort(key=lambda item: item["at"], reverse=True)
    return [{**item, "at": item["at"].isoformat()} for item in items[:limit]]


async def _folder_events(
    session: AsyncSession, user_id: str, document: Document, limit: int
) -> list[tuple[FolderActivity, str]]:
    """The newest share events of the folders above the note that the reader may open, each
    with the folder's name.

    Read here rather than copied to every note when a folder is shared: sharing a folder of
    10,000 notes stays one row, notes created in or moved into the folder later are covered, and
    a note moved out stops showing them, exactly as access to the note follows the folder."""
    folder_ids = await access.folders_above(session, user_id, document)
    if not folder_ids:
        return []
    rows = await session.execute(
        select(FolderActivity, Folder.name)
        .join(Folder, Folder.id == FolderActivity.folder_id)
        .where(
            FolderActivity.folder_id.in_(folder_ids),
            Folder.user_id == document.user_id,  # the note's owner's folders, nobody else's
        )
        .order_by(FolderActivity.created_at.desc(), FolderActivity.id.desc())
        .limit(limit)
    )
    return [(event, name) for event, name in rows.all()]


async def _names(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(sorted(ids))))
    return {key: value for key, value in rows.all()}


def _person(user_id: str | None, names: dict[str, str]) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return {"id": user_id, "name": names.get(user_id, "")}
