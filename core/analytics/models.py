"""Rollup tables of the analytics dashboards. Every row is derived from the app's own tables
and rebuilt by ``rollup.run`` (a day at a time, delete then insert, so a second run over the
same days gives the same rows): the dashboards read only these, never the million-row tables.

What counts as *active*: a user is active on a day (UTC) when they started at least one
generation that day — a prompt to any model, from the web or through the API. Signing in,
opening a page or a background job on their behalf is not use of the product.

Money is counted in credits (1 credit = US$0.00001): *revenue* is the credits users were
charged for generations (prepaid credits are earned when spent), *AI cost* what the providers
charge for the same usage at their list prices (``generations.provider_cost``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, utcnow


class ActiveDay(Base):
    """One row per user per day they were active."""

    __tablename__ = "analytics_active_days"
    __table_args__ = (Index("ix_analytics_active_days_user", "user_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class DailyActivity(Base):
    """Per day: daily, weekly (7 days to it) and monthly (30 days) active users, sign-ups."""

    __tablename__ = "analytics_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dau: Mapped[int] = mapped_column(Integer, default=0)
    wau: Mapped[int] = mapped_column(Integer, default=0)
    mau: Mapped[int] = mapped_column(Integer, default=0)
    signups: Mapped[int] = mapped_column(Integer, default=0)


class UserMilestones(Base):
    """When each user first reached each step of the activation funnel."""

    __tablename__ = "analytics_milestones"
    __table_args__ = (Index("ix_analytics_milestones_signed_up", "signed_up_at"),)

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    signed_up_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_answer_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_note_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_payment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Retention(Base):
    """Of the users who signed up in the week starting ``cohort`` (a Monday), how many were
    active in week ``week`` after it (0: the sign-up week itself). The row of week -1 holds
    the cohort's size."""

    __tablename__ = "analytics_retention"

    cohort: Mapped[date] = mapped_column(Date, primary_key=True)
    week: Mapped[int] = mapped_column(Integer, primary_key=True)
    users: Mapped[int] = mapped_column(Integer, default=0)


class UsageDay(Base):
    """Generations per day, model, provider and the plan their users were on (``""``: none)."""

    __tablename__ = "analytics_usage"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    generations: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Credits charged to users (revenue).
    charged: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Credits the providers' list prices make of the same usage (cost).
    provider_cost: Mapped[int] = mapped_column(BigInteger, default=0)


class StorageDay(Base):
    """Files stored at the end of each day (of those not deleted since) and their bytes."""

    __tablename__ = "analytics_storage"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    files: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupRun(Base):
    """When the rollup last ran and which days it rebuilt (one row per run, newest kept); a run
    that failed, when and why (``failure``: the step and the kind of error, never a traceback)."""

    __tablename__ = "analytics_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure: Mapped[str | None] = mapped_column(String(300))
