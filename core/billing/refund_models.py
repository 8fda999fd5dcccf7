"""Refunds, one row each, partial or full: how much money went back and what that did to the
buyer's credits.

A refund takes back the order's credits in proportion to the money refunded, but only what is
still available (never below zero). What could not be taken because it was already spent is the
``shortfall``: recorded here, not turned into a debt (the product has no debt rule).
``refunded_total`` is the order's refunded amount after this refund; its unique key with the
order makes the same refund, seen twice (the admin's call, then the provider's webhook), count
once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow


class OrderRefund(Base):
    __tablename__ = "order_refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "refunded_total", name="uq_order_refunds_order_total"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: Money refunded by this refund, in the order's currency's minor unit.
    amount: Mapped[int] = mapped_column(BigInteger)
    #: The order's refunded money after this refund (at most the order's total).
    refunded_total: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: Credits this refund should take back (in proportion to the money).
    credits_due: Mapped[int] = mapped_column(BigInteger)
    #: What it took back (never more than was available).
    credits_taken: Mapped[int] = mapped_column(BigInteger)
    #: ``credits_due - credits_taken``: already spent, so not taken.
    shortfall: Mapped[int] = mapped_column(BigInteger)
    provider_refund_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
