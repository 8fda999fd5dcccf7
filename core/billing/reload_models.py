"""Auto-reload tables: a user's opt-in, and the off-session charges it made.

``auto_reloads`` holds one row per user who set auto-reload up: buy ``plan_id`` with the saved
payment method when available credits fall below ``threshold``. Its row is also the lock that
serialises two reload attempts of the same user (at most one pending charge). A decline switches
it off (``enabled`` false, ``disabled_reason`` says why) until the user switches it on again.

``auto_reload_charges`` links each order an auto-reload opened to its user: the daily cap counts
them, and a failed one is recognised as a reload (its decline turns auto-reload off).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, utcnow


class AutoReload(Base):
    __tablename__ = "auto_reloads"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Reload when available credits (balance minus what is held) fall below this.
    threshold: Mapped[int] = mapped_column(BigInteger)
    #: A one-time credits plan, bought at its list price (no coupon) on each reload.
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    backend: Mapped[str] = mapped_column(String(64))
    #: Why auto-reload switched itself off (a decline's message), shown on /billing.
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AutoReloadCharge(Base):
    __tablename__ = "auto_reload_charges"
    __table_args__ = (Index("ix_auto_reload_charges_user_created", "user_id", "created_at"),)

    order_id: Mapped[str] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: The provider's refusal (``card_declined``, ``authentication_required``), if any.
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
