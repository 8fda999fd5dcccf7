"""Billing tables: plans, coupons, orders, the provider events applied, plan periods.

An order's money state only moves by conditional UPDATEs on its ``status`` inside the
transaction that also writes the ledger entries, so an event applied twice (or two events that
mean the same payment) change nothing the second time. ``billing_events`` has one row per
(backend, provider event id): the unique key is what makes a webhook delivered ten times at once
count once, on SQLite and MariaDB alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

#: ``organisation``: priced per seat, bought for an organisation (its credits, times the seats,
#: go to the organisation's wallet; the seats cap its members).
PLAN_KINDS = ("credits", "storage", "organisation")
INTERVALS = ("once", "month", "year")
ORDER_STATUSES = ("pending", "paid", "failed", "expired", "refunded", "disputed")


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: In the currency's minor unit (cents).
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8), default="once")
    duration_days: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(500), default="")
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Coupon(Base):
    __tablename__ = "coupons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    #: Stored upper case; matched case-insensitively.
    code: Mapped[str] = mapped_column(String(40), unique=True)
    percent_off: Mapped[int | None] = mapped_column(Integer)
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    max_discount: Mapped[int | None] = mapped_column(BigInteger)
    min_order: Mapped[int | None] = mapped_column(BigInteger)
    bonus_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    max_uses_per_user: Mapped[int | None] = mapped_column(Integer)
    #: Paid orders that used it (counted when the payment succeeds).
    uses: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("backend", "reference", name="uq_orders_backend_reference"),
        Index("ix_orders_user_created", "user_id", "created_at"),
        Index("ix_orders_coupon_status", "coupon_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    backend: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    subtotal: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_id: Mapped[str | None] = mapped_column(ForeignKey("coupons.id"))
    #: The backend's checkout reference (a Stripe Checkout Session id).
    reference: Mapped[str | None] = mapped_column(String(255))
    payment_reference: Mapped[str | None] = mapped_column(String(255))
    customer_reference: Mapped[str | None] = mapped_column(String(255))
    #: A recurring plan's subscription at the provider, and where it stands: ``active``,
    #: ``cancelling`` (ends at the period's end), ``cancelled``, ``past_due``.
    subscription_reference: Mapped[str | None] = mapped_column(String(255), index=True)
    subscription_status: Mapped[str | None] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    #: An organisation plan's order: the organisation it buys for, and how many seats (the
    #: price and credits are the plan's times the seats).
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    seats: Mapped[int | None] = mapped_column(Integer)
    #: A pending order no longer holds its coupon after this (the provider's page expires too).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProviderEvent(Base):
    """Every verified webhook, raw, with what core did with it."""

    __tablename__ = "billing_events"
    __table_args__ = (
        UniqueConstraint("backend", "event_id", name="uq_billing_events_backend_event_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    backend: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    provider_type: Mapped[str] = mapped_column(String(100))
    order_id: Mapped[str | None] = mapped_column(String(32), index=True)
    #: What applying it did: ``applied``, ``no_change``, ``ignored``, ``unknown_order``,
    #: ``amount_mismatch``.
    outcome: Mapped[str] = mapped_column(String(32))
    raw: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlanPeriod(Base):
    """A user's current credit plan: what stacks onto it, and when its leftover expires."""

    __tablename__ = "plan_periods"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
    order_id: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    storage_plan_id: Mapped[str | None] = mapped_column(ForeignKey("plans.id"))
    #: The storage quota while the storage plan is active (it replaces the default quota).
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: When the storage plan ends (None: it does not); then the default quota applies again.
    storage_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The last purchase or renewal invoice applied to the storage plan (a renewal counts once).
    storage_renewed_ref: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReferralCode(Base):
    """A user's referral link is ``/r/<code>`` (random, so it tells nothing about the user)."""

    __tablename__ = "referral_codes"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Referral(Base):
    """Who brought whom. Both get the bonus on the referee's first paid order, once
    (``rewarded_at`` is set by a conditional UPDATE in that payment's transaction)."""

    __tablename__ = "referrals"

    referee_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    referrer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rewarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
