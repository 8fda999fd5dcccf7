"""The Slack app's tables, on its own metadata; its revisions (``migrations/``) create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text, UniqueConstraint
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


class Install(Base):
    """A Slack workspace the app was added to (OAuth v2), with its bot token."""

    __tablename__ = "slack_installs"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_name: Mapped[str] = mapped_column(String(200), default="")
    bot_user_id: Mapped[str] = mapped_column(String(32), default="")
    #: ``xoxb-...``, encrypted under the master keys; never shown.
    bot_token: Mapped[str] = mapped_column(String(1000))
    scope: Mapped[str] = mapped_column(String(500), default="")
    #: Who added it (their account going away leaves the workspace installed).
    installed_by: Mapped[str | None] = mapped_column(
        core_foreign_key("users.id", ondelete="SET NULL"), index=True
    )
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Link(Base):
    """A Slack user (in one workspace) speaking for a MultinotesAI account: their commands are
    answered and charged as that account."""

    __tablename__ = "slack_links"
    __table_args__ = (UniqueConstraint("team_id", "slack_user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    team_id: Mapped[str] = mapped_column(String(32))
    team_name: Mapped[str] = mapped_column(String(200), default="")
    slack_user_id: Mapped[str] = mapped_column(String(32))
    slack_name: Mapped[str] = mapped_column(String(200), default="")
    user_id: Mapped[str] = mapped_column(
        core_foreign_key("users.id", ondelete="CASCADE"), index=True
    )
    #: The model a command without ``model:`` asks (None: the app's default).
    default_model: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Command(Base):
    """One ``/multinotes`` prompt, recorded before it is acknowledged: Slack's ``trigger_id`` is
    unique per invocation, so a replayed request is answered (and charged) once."""

    __tablename__ = "slack_commands"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    trigger_id: Mapped[str] = mapped_column(String(200), unique=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32), default="")
    slack_user_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(
        core_foreign_key("users.id", ondelete="CASCADE"), index=True
    )
    prompt: Mapped[str] = mapped_column(Text)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Where the answer goes (valid for 30 minutes), encrypted: it lets anyone post there.
    response_url: Mapped[str] = mapped_column(String(1000))
    #: "pending" → "running" → "answered", "refused" (no credits, unusable model, ...) or
    #: "failed" (our error).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: The answers' message ids in the user's conversation.
    answer_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Saved(Base):
    """An answer kept as a note from Slack (the "Save as note" button, or automatically), or a
    message kept with the "Save to MultinotesAI" shortcut: once, however often it is pressed.
    ``message_id`` is the answer's id, or for a Slack message a hash of workspace, channel,
    timestamp and Slack user."""

    __tablename__ = "slack_saved_answers"

    message_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        core_foreign_key("users.id", ondelete="CASCADE"), index=True
    )
    note_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkUse(LinkUseColumns, Base):
    """A link token that was used: each one links once (``AccountLinks``)."""

    __tablename__ = "slack_link_uses"
