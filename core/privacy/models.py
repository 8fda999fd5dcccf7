"""Tables of the privacy features: data exports and account deletions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, StrEnumType, UTCDateTime, new_id, utcnow


class ExportStatus(StrEnum):
    """A data export: queued, being built, ready to download (until it expires), or failed."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DeletionStatus(StrEnum):
    """An account deletion: in its grace period (cancellable), or done (the row then points at
    the tombstone user)."""

    PENDING = "pending"
    DELETED = "deleted"


class DataExport(Base):
    """A zip of everything a user owns, built by a background task.

    ``path`` is on the server (``<data dir>/exports/``) and never shown; the owner downloads the
    file through the API until ``expires_at``, after which a scheduled task removes file and row.
    """

    __tablename__ = "data_exports"
    __table_args__ = (
        Index("ix_data_exports_user_created", "user_id", "created_at"),
        Index("ix_data_exports_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[ExportStatus] = mapped_column(
        StrEnumType(ExportStatus), default=ExportStatus.PENDING
    )
    progress: Mapped[int] = mapped_column(SmallInteger, default=0)
    path: Mapped[str | None] = mapped_column(String(500))
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccountDeletion(Base):
    """An account deletion: ``pending`` during the grace period (the account is deactivated and
    a single-use cancel link was mailed; only the SHA-256 of its token is kept), then
    ``deleted``, when the row points at the anonymous tombstone user that holds the ledger rows
    and says when the account went. A tombstone is recognised by this row."""

    __tablename__ = "account_deletions"
    __table_args__ = (Index("ix_account_deletions_status_purge", "status", "purge_after"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    status: Mapped[DeletionStatus] = mapped_column(
        StrEnumType(DeletionStatus), default=DeletionStatus.PENDING
    )
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purge_after: Mapped[datetime] = mapped_column(UTCDateTime)
    cancel_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
