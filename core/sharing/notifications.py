"""In-app notifications (a share received, a mention in a comment, a plugin's message): writing,
listing, marking read and opening them.

What causes a share's or a mention's notification publishes a domain event; the notification
and its mail are written in reaction to it, after that change committed
(``multinotes.sharing.notifier``), so a rolled-back share notifies no one and no mail is ever
sent from inside a request's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, rows_affected, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.sharing.models import Notification

KINDS = ("share", "mention")
EXCERPT = 300


def excerpt(text: str, length: int = EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"


def notify(
    session: AsyncSession,
    *,
    user_id: str,
    kind: str,
    actor_id: str | None,
    actor_name: str,
    object_type: str,
    object_id: str,
    title: str,
    url: str,
    text: str = "",
) -> Notification:
    row = Notification(
        user_id=user_id,
        kind=kind,
        actor_id=actor_id,
        actor_name=actor_name[:200],
        object_type=object_type,
        object_id=object_id,
        title=title[:300],
        excerpt=excerpt(text),
        url=url[:500],
    )
    session.add(row)
    return row


async def unread_count(db: Database, user_id: str) -> int:
    async with db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
    return int(count or 0)


async def list_notifications(
    db: Database,
    user_id: str,
    *,
    before: str | None = None,
    limit: int = 20,
    unread_only: bool = False,
) -> tuple[list[Notification], str | None, int]:
    """Newest first; ``before`` is the previous page's cursor. Also returns the unread count."""
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    if before:
        query = query.where(Notification.id < before)
    async with db.read() as session:
        rows = list(await session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None), await unread_count(db, user_id)


async def mark_read(db: Database, user_id: str, ids: list[str] | None) -> int:
    """Mark these notifications (None: all of them) read; returns how many changed. Ids that are
    not the user's are ignored, as ids already read are."""
    if ids is not None and not ids:
        raise Invalid(fields={"ids": "name at least one notification, or send all: true"})
    query = update(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if ids is not None:
        query = query.where(Notification.id.in_(ids))
    async with db.transaction() as session:
        result = await session.execute(query.values(read_at=utcnow()))
    return rows_affected(result)


def notification_out(row: Notification) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "actor": {"id": row.actor_id, "name": row.actor_name},
        "object_type": row.object_type,
        "object_id": row.object_id,
        "title": row.title,
        "excerpt": row.excerpt,
        "url": row.url,
        "read": row.read_at is not None,
        "created_at": row.created_at.isoformat(),
    }


async def open_notification(db: Database, user_id: str, notification_id: str) -> str:
    """Mark one of the user's notifications read; returns where it leads."""
    async with db.transaction() as session:
        row = await session.scalar(
            select(Notification).where(
                Notification.id == notification_id, Notification.user_id == user_id
            )
        )
        if row is None:
            raise NotFound("No such notification.")
        if row.read_at is None:
            row.read_at = utcnow()
    return row.url
