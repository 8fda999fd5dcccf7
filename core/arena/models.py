"""The arena's tables: a blind comparison and its labelled answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

#: What a vote says the prompt was about (chosen when voting, filters the leaderboard).
CATEGORIES = ("code", "writing", "reasoning", "other")
LABELS = "ABCD"


class ArenaComparison(Base):
    """One prompt answered blind by several models. ``voted_at`` set: the names may be shown."""

    __tablename__ = "arena_comparisons"
    __table_args__ = (Index("ix_arena_comparisons_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    prompt: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    voted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class ArenaEntry(Base):
    """One answer of a comparison under its label. ``rank`` is the vote: 1 is best, equal ranks
    are ties; ``None`` until the vote."""

    __tablename__ = "arena_entries"
    __table_args__ = (UniqueConstraint("comparison_id", "label"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    comparison_id: Mapped[str] = mapped_column(
        ForeignKey("arena_comparisons.id", ondelete="CASCADE")
    )
    label: Mapped[str] = mapped_column(String(1))
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[str] = mapped_column(String(200))
    # Stored as "place": RANK is a reserved word in MySQL 8.
    rank: Mapped[int | None] = mapped_column("place", Integer)
