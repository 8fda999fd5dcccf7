"""Tables of smart assistance: a note's accepted tags and summary, the latest suggestion for it,
and a user's switch for automatic suggestions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, utcnow


class NoteDetails(Base):
    """What the owner accepted (or wrote) for a note: its tags and a one-line summary."""

    __tablename__ = "note_details"

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NoteSuggestion(Base):
    """The latest suggestion of tags and a summary for a note, until the owner accepts or
    dismisses it. ``status``: pending (queued or running), ready, failed, accepted, dismissed.
    ``run_id`` names the run whose result may be stored (a newer request replaces it) and is the
    ledger reference's tail (``note-suggestion:<run_id>``)."""

    __tablename__ = "note_suggestions"

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(String(300), default="")
    model_id: Mapped[str | None] = mapped_column(String(200))
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssistPreference(Base):
    """A user's switch for suggestions made automatically when an answer is saved as a note
    (no row: on). Suggestions asked for on demand are not affected."""

    __tablename__ = "assist_preferences"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    note_suggestions: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def details_out(row: NoteDetails | None) -> dict[str, Any]:
    return {"tags": list(row.tags or []) if row else [], "summary": row.summary if row else ""}
