"""The plugin's tables, on its own metadata; its own revisions (``migrations/``) create them and
the schema test (``tests/test_models_match_migrations.py``) keeps the two equal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from multinotes.plugin import UTCDateTime, core_foreign_key, new_id, plugin_metadata, utcnow


class Base(DeclarativeBase):
    metadata = plugin_metadata()


class Endpoint(Base):
    """Where a user (or, for the whole instance, an admin) wants events delivered."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    #: The owner: deleting the account deletes its endpoints and their delivery log.
    user_id: Mapped[str] = mapped_column(
        String(32), core_foreign_key("users.id", ondelete="CASCADE"), index=True
    )
    #: "user": events about the owner's own objects; "instance" (admins only): every event.
    scope: Mapped[str] = mapped_column(String(16), default="user")
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: ``whsec_...``, encrypted under the master keys.
    secret: Mapped[str] = mapped_column(String(500))
    #: The secret before the last rotation, still signing until ``previous_secret_until``.
    previous_secret: Mapped[str | None] = mapped_column(String(500))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Why it is off: "owner", "admin" or "failing" (switched off after failing for days).
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    #: Start of the current run of failed attempts (None while the receiver answers).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One message (one event) to one endpoint; every retry sends it with the same
    ``webhook-id`` (``msg_<id>``) and body."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_key", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(100))
    #: The event's id (one delivery per event and endpoint, however often it is handed over).
    event_key: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"))
    #: "pending" (an attempt is due or running), "succeeded" or "failed" (retries exhausted).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When the next attempt is due; while one runs, when it counts as crashed.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Attempt(Base):
    """One HTTP request of a delivery, as the delivery log shows it."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    #: "auto" (the first try and the scheduled retries) or "manual" (the Retry button).
    trigger: Mapped[str] = mapped_column(String(16), default="auto")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    response_excerpt: Mapped[str] = mapped_column(String(1000), default="")
    error: Mapped[str | None] = mapped_column(String(500))
