"""The export jobs table: one row per export that runs in the background (a folder, several
notes, a conversation), with its progress and, once built, the stored file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

JOB_STATUSES = ("pending", "running", "done", "failed")


class NoteExport(Base):
    """An export built by a task. ``target_type`` is ``folder``, ``documents``, ``conversation``,
    ``message`` (the branch ending there), ``comparison`` (a prompt and its answers) or
    ``answer``; ``target_ids`` the ids asked for. ``storage_key`` (never shown) is the file in
    the storage backend once ``done``; the requester downloads it until ``expires_at``. An
    export to a remote destination (Notion, Google Docs) keeps no file: ``url`` is what it made
    there (the page of a conversation, the parent page or Drive folder of a folder's notes)."""

    __tablename__ = "note_exports"
    __table_args__ = (
        Index("ix_note_exports_user_created", "user_id", "created_at"),
        Index("ix_note_exports_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target_type: Mapped[str] = mapped_column(String(16))
    target_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1000))
    filename: Mapped[str | None] = mapped_column(String(255))
    media_type: Mapped[str | None] = mapped_column(String(127))
    storage_key: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A remote destination's export: the page, document or folder made there (no file).
    url: Mapped[str | None] = mapped_column(String(2000))
