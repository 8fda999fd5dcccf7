"""The Discord app's tables, on its own metadata; its revisions (``migrations/``) create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from multinotes.plugin import (
    LinkUseColumns,
    UTCDateTime,
    core_foreign_key,
    new_id,
    plugin_metadata,
    utcnow,
)


class Base(DeclarativeBase):
    metadata = plugin_metadata()


class Link(Base):
    """A Discord user speaking for a MultinotesAI account: their ``/ask`` is answered and
    charged as that account (Discord user ids are global, not per server)."""

    __tablename__ = "discord_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    discord_user_id: Mapped[str] = mapped_column(String(32), unique=True)
    discord_name: Mapped[str] = mapped_column(String(200), default="")
    user_id: Mapped[str] = mapped_column(
        core_foreign_key("users.id", ondelete="CASCADE"), index=True
    )
    #: The model ``/ask`` uses without its ``model`` option (None: the app's default).
    default_model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Interaction(Base):
    """One ``/ask``, recorded (by Discord's interaction id) before it is deferred: a replayed
    request is answered and charged once."""

    __tablename__ = "discord_interactions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    discord_user_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(
        core_foreign_key("users.id", ondelete="CASCADE"), index=True
    )
    prompt: Mapped[str] = mapped_column(Text)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The interaction's token (it edits the deferred reply for 15 minutes), encrypted.
    token: Mapped[str] = mapped_column(String(1000))
    #: "pending" → "running" → "answered", "refused" or "failed" (our error).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    answer_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Saved(Base):
    """An answer kept as a note from Discord: once, however often its button is pressed."""

    __tablename__ = "discord_saved_answers"

    message_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        core_foreign_key("users.id", ondelete="CASCADE"), index=True
    )
    note_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkUse(LinkUseColumns, Base):
    """A link token that was used: each one links once (``AccountLinks``)."""

    __tablename__ = "discord_link_uses"
