"""Announcements: the operator publishes and removes them; a user sees the live ones they have
not dismissed, and dismisses each once (a row per user, so it stays gone on every device)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from multinotes.announcements.models import Announcement, AnnouncementDismissal
from multinotes.db import Database, utcnow
from multinotes.errors import NotFound


async def publish(
    db: Database,
    author_id: str,
    *,
    title: str,
    body: str,
    severity: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
) -> Announcement:
    now = utcnow()
    row = Announcement(
        title=title,
        body=body,
        severity=severity,
        starts_at=starts_at or now,
        ends_at=ends_at,
        created_by=author_id,
        created_at=now,
    )
    async with db.transaction() as session:
        session.add(row)
    return row


async def remove(db: Database, announcement_id: str) -> None:
    async with db.transaction() as session:
        row = await session.scalar(select(Announcement).where(Announcement.id == announcement_id))
        if row is None:
            raise NotFound("No such announcement.")
        await session.delete(row)


async def all_announcements(db: Database) -> list[Announcement]:
    """Every announcement, the latest start first (the console's list)."""
    async with db.read() as session:
        return list(
            await session.scalars(
                select(Announcement)
                .order_by(Announcement.starts_at.desc(), Announcement.id.desc())
                .limit(200)
            )
        )


def _live(now: datetime) -> list[object]:
    return [
        Announcement.starts_at <= now,
        or_(Announcement.ends_at.is_(None), Announcement.ends_at > now),
    ]


async def live(db: Database) -> list[Announcement]:
    """What is showing now, the newest first (the list page keeps dismissed ones)."""
    async with db.read() as session:
        return list(
            await session.scalars(
                select(Announcement)
                .where(*_live(utcnow()))  # type: ignore[arg-type]
                .order_by(Announcement.starts_at.desc(), Announcement.id.desc())
                .limit(50)
            )
        )


async def banners_for(db: Database, user_id: str) -> list[Announcement]:
    """Live announcements ``user_id`` has not dismissed: the banners to show them."""
    dismissed = select(AnnouncementDismissal.announcement_id).where(
        AnnouncementDismissal.user_id == user_id
    )
    async with db.read() as session:
        return list(
            await session.scalars(
                select(Announcement)
                .where(*_live(utcnow()), Announcement.id.not_in(dismissed))  # type: ignore[arg-type]
                .order_by(Announcement.starts_at.desc(), Announcement.id.desc())
                .limit(5)
            )
        )


async def dismiss(db: Database, user_id: str, announcement_id: str) -> None:
    """Hide one announcement's banner for ``user_id``; dismissing twice is no error."""
    async with db.read() as session:
        exists = await session.scalar(
            select(Announcement.id).where(Announcement.id == announcement_id)
        )
    if exists is None:
        raise NotFound("No such announcement.")
    try:
        async with db.transaction() as session:
            already = await session.scalar(
                select(AnnouncementDismissal.user_id).where(
                    AnnouncementDismissal.announcement_id == announcement_id,
                    AnnouncementDismissal.user_id == user_id,
                )
            )
            if already is None:
                session.add(
                    AnnouncementDismissal(
                        announcement_id=announcement_id, user_id=user_id, dismissed_at=utcnow()
                    )
                )
    except IntegrityError:
        # Two tabs dismissing at once (or the announcement removed meanwhile): either way the
        # banner is gone for this user, which is all they asked.
        pass
