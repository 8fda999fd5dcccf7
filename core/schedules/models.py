"""Tables of scheduled runs: the schedules and the history of their runs.

A schedule belongs to its owner (``owner_id``) and every user-facing query filters on it. While
``status`` is ``active``, ``next_run_at`` is the UTC instant of its next run; the due-finder
claims a run by moving ``next_run_at`` forward with a conditional UPDATE, so a slot is claimed
once however many schedulers look. A run row is the record of one execution (scheduled or run
now), with its cost and the notes it saved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

#: What a schedule runs: a prompt template (``multinotes.prompts``) or a chain
#: (``multinotes.chains``).
TARGET_TYPES = ("template", "chain")
STATUSES = ("active", "paused")
#: Why a paused schedule is paused: its owner paused it, the wallet could not cover a run, or
#: what it runs is gone (deleted, or no longer shared with the owner).
PAUSE_REASONS = ("user", "out_of_credits", "target_missing")
#: ``queued`` (claimed, waiting for a worker), ``running``, then ``succeeded`` (every model
#: answered), ``partial`` (some did) or ``failed`` (none did, or the run could not start).
RUN_STATUSES = ("queued", "running", "succeeded", "partial", "failed")
#: ``schedule``: claimed by the due-finder at its time; ``manual``: "Run now".
TRIGGERS = ("schedule", "manual")


class Schedule(Base):
    __tablename__ = "schedules"
    __table_args__ = (
        Index("ix_schedules_owner_id", "owner_id", "created_at"),
        Index("ix_schedules_due", "status", "next_run_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    target_type: Mapped[str] = mapped_column(String(16), default="template")
    #: A template id (no foreign key: the target may be a template or a chain; a run finds a
    #: target that went away and pauses the schedule).
    target_id: Mapped[str] = mapped_column(String(32))
    #: The template's variable values (a chain's: ``input``), fixed for every run.
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    cron: Mapped[str] = mapped_column(String(120))
    #: IANA zone the expression is read in (the owner's at creation unless chosen).
    timezone: Mapped[str] = mapped_column(String(64))
    #: Where the answers are saved as notes; None: outside any folder.
    folder_id: Mapped[str | None] = mapped_column(
        ForeignKey("folders.id", ondelete="SET NULL"), index=True
    )
    email_results: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    paused_reason: Mapped[str | None] = mapped_column(String(32))
    #: UTC; None while paused.
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduleRun(Base):
    __tablename__ = "schedule_runs"
    __table_args__ = (
        Index("ix_schedule_runs_schedule_id", "schedule_id", "created_at"),
        Index("ix_schedule_runs_status", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    #: The slot this run was claimed for (scheduled), or when "Run now" was pressed.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(Text)
    #: Credits the run's answers cost in all.
    cost: Mapped[int] = mapped_column(Integer, default=0)
    conversation_id: Mapped[str | None] = mapped_column(String(32))
    #: One entry per model: ``{"model", "status", "cost", "message_id", "note_id", "error"}``.
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
