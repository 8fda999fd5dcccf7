"""Tables of abuse detection: each rule's settings as the operator chose them, and every hit
a rule made with its evidence and what the operator decided about it.

A hit's evidence never holds a full address: networks are truncated (/24, /64) and email
addresses masked, so the queue shows patterns, not people's data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

#: What a hit asks for: only flag it, throttle (refuse with 429 / 422), or suspend the account.
ACTIONS = ("none", "rate_limit", "suspend")
#: A hit's place in the review queue.
STATUSES = ("open", "dismissed", "warned", "blocked")


class AbuseRule(Base):
    """One rule's settings; a rule without a row runs with its defaults (``rules.RULES``)."""

    __tablename__ = "abuse_rules"

    rule: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    action: Mapped[str] = mapped_column(String(16), default="none")
    threshold: Mapped[int] = mapped_column(Integer, default=1)
    window_minutes: Mapped[int] = mapped_column(Integer, default=60)
    #: Rule-specific extras, e.g. the disposable-domain rule's ``extra_domains``.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AbuseHit(Base):
    __tablename__ = "abuse_hits"
    __table_args__ = (
        Index("ix_abuse_hits_status", "status", "created_at"),
        Index("ix_abuse_hits_rule", "rule", "created_at"),
        Index("ix_abuse_hits_network", "rule", "network", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    rule: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: What the rule did on its own: none, rate_limited or suspended.
    action_taken: Mapped[str] = mapped_column(String(16), default="none")
    #: The account the hit is about, when there is one (a refused sign-up has none).
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    #: The truncated network (``203.0.113.0/24``), when the rule is about one.
    network: Mapped[str | None] = mapped_column(String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_note: Mapped[str | None] = mapped_column(String(500))
