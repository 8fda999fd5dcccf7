"""Wallet tables.

``wallets.balance`` always equals the sum of the user's ``ledger_entries`` (both change in the
same transaction); ``wallets.reserved`` is the sum of open ``reservations``. Money only moves by
conditional UPDATEs that re-check ``balance - reserved`` inside the transaction, so concurrent
requests can never take a balance below zero.

An organisation's wallet (``organisation_wallets``) follows the same rules: its ledger entries
and reservations are the rows with its ``organisation_id`` (``user_id`` then names the member who
spent, or who added credits), and a person's own wallet is the rows without one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow
from multinotes.organisations import models as _organisations  # noqa: F401 (foreign keys' table)

LEDGER_KINDS = (
    "trial",
    "grant",
    "deduct",
    "usage",
    "purchase",
    "refund",
    "bonus",
    "expiry",
    "dispute",
    "transfer",
)


class Wallet(Base):
    __tablename__ = "wallets"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LedgerEntry(Base):
    """Append-only: rows are inserted, never updated or deleted (anonymised on account
    deletion by moving them to a tombstone user, not removed)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("kind", "reference", name="uq_ledger_entries_kind_reference"),
        Index("ix_ledger_entries_user_created", "user_id", "created_at"),
        Index("ix_ledger_entries_org_user_created", "organisation_id", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500), default="")
    #: Makes an entry idempotent: one "usage" entry per generation, one "trial" per user, ...
    reference: Mapped[str | None] = mapped_column(String(100))
    model_id: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set: an entry of this organisation's wallet, not of ``user_id``'s own.
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )


class Reservation(Base):
    """Credits held for a request in flight; settled exactly once to the real cost."""

    __tablename__ = "reservations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(100), unique=True)
    model_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cost: Mapped[int | None] = mapped_column(BigInteger)
    #: Set: held on this organisation's wallet for ``user_id``'s request.
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )


class OrganisationWallet(Base):
    """An organisation's shared wallet: the same columns and rules as ``Wallet``."""

    __tablename__ = "organisation_wallets"

    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
