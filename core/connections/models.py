"""Tables of connected accounts: the accounts, the OAuth flows in progress, and what an export
made at a remote service (so exporting a note again updates it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

#: ``active``: usable; ``revoked``: the service refused the tokens, the user must reconnect.
CONNECTION_STATUSES = ("active", "revoked")


class ConnectedAccountRow(Base):
    """One user's account at one service (``kind``: a ``ConnectionKind`` id). At most one per
    user and kind: connecting again replaces the tokens. ``access_token`` and ``refresh_token``
    are encrypted with the instance's secret box and never shown."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("user_id", "kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(255))
    account_name: Mapped[str] = mapped_column(String(255))
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(String(1000), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConnectionFlow(Base):
    """A connection being made: found by the SHA-256 of ``state``, usable once, only by the
    session that started it (``session_hash``) and within ten minutes. ``code_verifier`` is the
    PKCE secret; ``next_url`` is where the browser goes afterwards (a path of this site)."""

    __tablename__ = "connection_flows"
    __table_args__ = (Index("ix_connection_flows_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    next_url: Mapped[str] = mapped_column(String(500), default="/account")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RemoteExport(Base):
    """What exporting to a remote destination made there (a Notion page, a Google Doc, a parent
    page or Drive folder holding a folder's notes): the service's id of it and its address.
    ``target`` says what it was made for (``note:<id>``, ``conversation:<id>``,
    ``branch:<message id>``, ``comparison:<prompt id>``, ``answer:<id>``, ``folder:<id>`` and
    ``folder-note:<id>``, a note's page under its folder's); exporting the same thing again
    through the same connection updates it. Gone with the connection or with what it names
    (the one of ``document_id``, ``conversation_id``, ``message_id``, ``folder_id`` set)."""

    __tablename__ = "remote_exports"
    __table_args__ = (
        UniqueConstraint(
            "connection_id", "exporter", "target", name="uq_remote_exports_connection_target"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    exporter: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(80))
    document_id: Mapped[str | None] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    folder_id: Mapped[str | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), index=True
    )
    remote_id: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
