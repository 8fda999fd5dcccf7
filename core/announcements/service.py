"""Announcements: the operator publishes and removes them, to everyone or to a segment; a user
sees the live ones meant for them that they have not dismissed, and dismisses each once (a row
per user, so it stays gone on every device). Someone outside an announcement's segment never
sees it: not in the banners, not in the list, not in the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from multinotes.announcements.models import Announcement, AnnouncementDismissal
from multinotes.db import Database, utcnow
from multinotes.errors import NotFound
from multinotes.segments import Segment, traits_of


async def publish(
    db: Database,
    author_id: str,
    *,
    title: str,
    body: str,
    severity: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    kind: str = "banner",
    segment: Segment | dict[str, Any] | None = None,
) -> Announcement:
    now = utcnow()
    if not isinstance(segment, Segment):
        segment = Segment.model_validate(segment or {})
    row = Announcement(
        title=title,
        body=body,
        severity=severity,
        kind=kind,
        segment=segment.model_dump(mode="json", exclude_defaults=True),
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


def segment_of(row: Announcement) -> Segment:
    return Segment.model_validate(row.segment or {})


async def _for_user(db: Database, user_id: str, rows: Sequence[Announcement]) -> list[Announcement]:
    """The rows whose segment takes ``user_id`` (the user's traits read once, and only when
    some row has a segment)."""
    segments = [(row, segment_of(row)) for row in rows]
    if all(segment.everyone for _, segment in segments):
        return list(rows)
    traits = await traits_of(db, user_id)
    return [
        row
        for row, segment in segments
        if segment.everyone or (traits is not None and segment.matches(traits))
    ]


async def live(db: Database, user_id: str) -> list[Announcement]:
    """What is showing now to ``user_id``, the newest first (the list page keeps dismissed
    ones)."""
    async with db.read() as session:
        rows = list(
            await session.scalars(
                select(Announcement)
                .where(*_live(utcnow()))  # type: ignore[arg-type]
                .order_by(Announcement.starts_at.desc(), Announcement.id.desc())
                .limit(200)
            )
        )
    return (await _for_user(db, user_id, rows))[:50]


async def banners_for(db: Database, user_id: str) -> list[Announcement]:
    """Live announcements for ``user_id`` they have not dismissed: the banners and in-app
    messages to show them."""
    dismissed = select(AnnouncementDismissal.announcement_id).where(
        AnnouncementDismissal.user_id == user_id
    )
    async with db.read() as session:
        rows = list(
            await session.scalars(
                select(Announcement)
                .where(*_live(utcnow()), Announcement.id.not_in(dismissed))  # type: ignore[arg-type]
                .order_by(Announcement.starts_at.desc(), Announcement.id.desc())
                .limit(100)
            )
        )
    return (await _for_user(db, user_id, rows))[:5]


async def dismiss(db: Database, user_id: str, announcement_id: str) -> None:
    """Hide one announcement's banner for ``user_id``; dismissing twice is no error. One outside
    its segment is told it does not exist (as for any other it cannot see)."""
    async with db.read() as session:
        row = await session.scalar(select(Announcement).where(Announcement.id == announcement_id))
    if row is None or not await _for_user(db, user_id, [row]):
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
