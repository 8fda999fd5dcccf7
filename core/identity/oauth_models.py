"""Tables of social login: linked provider identities and sign-in flows in progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow


class OAuthIdentity(Base):
    """An account at a provider (Google, Facebook) that logs in as ``user_id``.

    ``subject`` is the provider's stable id for the person (the ID token's ``sub``, the Graph
    ``id``), never the email: addresses change hands, subjects do not. ``email`` is what the
    provider last reported, shown on the account page."""

    __tablename__ = "oauth_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthFlow(Base):
    """One sign-in (or link) started in a browser and not finished yet.

    The row is found by the SHA-256 of ``state`` and must be presented by the browser that started
    it (``browser_hash``: the SHA-256 of a random HttpOnly cookie). It is deleted when the
    callback uses it, so it works once, and it expires after a few minutes. ``nonce`` and
    ``code_verifier`` are only useful together with the provider's one-time code."""

    __tablename__ = "oauth_flows"
    __table_args__ = (Index("ix_oauth_flows_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    #: "login" (log in or sign up) or "link" (attach to ``user_id``, who started it).
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    next_url: Mapped[str] = mapped_column(String(500), default="/")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
