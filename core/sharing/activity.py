"""A note's activity feed: who did what to it, newest first.

Edits are the note's saved versions (``document_versions`` already says who saved which version
when); everything else (shares and revokes, comments, restores) is a ``document_activity`` row,
written in the same transaction as the change it records (restores by the notes service).
A restored version is both a version and a "restore_version" event; the feed shows it once, as
the restore.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database
from multinotes.models import User
from multinotes.notes.models import DocumentVersion
from multinotes.sharing import access
from multinotes.sharing.models import Comment, DocumentActivity
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
        comment_ids = [e.detail.get("comment_id") for e in events if e.kind == "comment"]
        comments = {
            c.id: c
            for c in await session.scalars(
                select(Comment).where(Comment.id.in_([c for c in comment_ids if c] or [""]))
            )
        }
        people = {v.created_by for v in versions} | {e.actor_id for e in events}
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
    items.sort(key=lambda item: item["at"], reverse=True)
    return [{**item, "at": item["at"].isoformat()} for item in items[:limit]]


async def _names(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(sorted(ids))))
    return {key: value for key, value in rows.all()}


def _person(user_id: str | None, names: dict[str, str]) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return {"id": user_id, "name": names.get(user_id, "")}
