"""Tables of feature flags and experiments, and of who saw which variant.

A flag's ``allow_list`` (user ids and lower-cased emails) and ``segment`` (``multinotes.segments``
rules) are JSON: small, read whole into every process's cache, never queried by content.
An experiment's ``variants`` is a JSON list of ``{"name", "weight"}``; the first is the control.
``experiment_exposures`` has one row per experiment and user, written the first time code asks
for that user's variant; ``converted_at`` is set once, by the first conversion event after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

EXPERIMENT_STATUSES = ("draft", "running", "stopped")


class FeatureFlag(Base):
    __tablename__ = "feature_flags"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    #: The master switch: off is off for everyone, the allow-list included.
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Percent of users (0-100) it is on for, chosen by a hash of the flag's name and user id.
    rollout: Mapped[int] = mapped_column(Integer, default=100)
    allow_list: Mapped[list[str]] = mapped_column(JSON, default=list)
    segment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: The domain event (``note.created``, ...) that counts as converting.
    conversion_event: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ExperimentExposure(Base):
    """One user was shown one variant of one experiment (and maybe converted afterwards)."""

    __tablename__ = "experiment_exposures"
    __table_args__ = (Index("ix_experiment_exposures_variant", "experiment_id", "variant"),)

    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    variant: Mapped[str] = mapped_column(String(64))
    exposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
