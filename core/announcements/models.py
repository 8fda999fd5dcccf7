"""Tables of announcements and of who dismissed which.

``body`` is Markdown, rendered sanitised (``multinotes.markdown``) wherever it is shown. An
announcement is live from ``starts_at`` until ``ends_at`` (none: until it is removed).
Its ``kind`` says how it shows: a ``banner`` across the top of every page, or an in-app
``message`` (a dialog the user sees once). Its ``segment`` (``multinotes.segments``, as JSON; none
or empty: everyone) says who sees it at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

SEVERITIES = ("info", "warning")
KINDS = ("banner", "message")


class Announcement(Base):
    __tablename__ = "announcements"
    __table_args__ = (Index("ix_announcements_starts_at", "starts_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16), default="info")
    kind: Mapped[str] = mapped_column(String(16), default="banner", server_default="banner")
    segment: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnnouncementDismissal(Base):
    """One user dismissed one announcement: its banner stays hidden for them."""

    __tablename__ = "announcement_dismissals"

    announcement_id: Mapped[str] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    dismissed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
