"""The tables of batch runs: a batch, its rows (one set of template values each) and each
row's answers (one per model)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

#: A batch: ``queued`` (waiting for its task), ``running``, then ``finished`` (every row ran),
#: ``cancelled`` (its owner stopped it) or ``stopped`` (the credits ran out).
BATCH_STATUSES = ("queued", "running", "finished", "cancelled", "stopped")
BATCH_OPEN = ("queued", "running")
#: A row: ``pending`` until a runner claims it (``running``), then ``done`` (every model
#: answered), ``failed`` (a model failed or the row could not be sent), ``skipped`` (not sent:
#: the credits ran out) or ``cancelled`` (not sent: the batch was cancelled).
ROW_STATUSES = ("pending", "running", "done", "failed", "skipped", "cancelled")
ROW_FINAL = ("done", "failed", "skipped", "cancelled")


class Batch(Base):
    """One run of a template over rows. The template's text and variables are copied in when
    it starts, so editing (or deleting) the template does not change a batch under way."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_user_created", "user_id", "created_at"),
        Index("ix_batches_status_heartbeat", "status", "heartbeat_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    template_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompt_templates.id", ondelete="SET NULL"), index=True
    )
    #: The conversation every row's prompt and answers are kept in (one per batch).
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: The input's column names in their order (the download repeats them).
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    concurrency: Mapped[int] = mapped_column(Integer, default=2)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    #: Why it ended early, in words for its owner (credits ran out, cancelled).
    stop_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Renewed by the task running it: a batch left open with an old heartbeat lost its task
    #: (a crashed process) and the sweep starts it again.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BatchRow(Base):
    """One row of input: the values filling the template (every column, by name)."""

    __tablename__ = "batch_rows"
    __table_args__ = (
        UniqueConstraint("batch_id", "position"),
        Index("ix_batch_rows_batch_status", "batch_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    #: 1 for the first row of data.
    position: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: Why it failed or was skipped.
    note: Mapped[str | None] = mapped_column(String(500))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BatchAnswer(Base):
    """One model's answer to one row. Linked to the pipeline's message and generation while
    it runs; its text, status and cost are copied in when the row ends, so the results stay
    whole even when the batch's conversation is deleted later."""

    __tablename__ = "batch_answers"
    __table_args__ = (
        UniqueConstraint("row_id", "model_id"),
        Index("ix_batch_answers_batch_id", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    row_id: Mapped[str] = mapped_column(ForeignKey("batch_rows.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    generation_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    text: Mapped[str] = mapped_column(Text, default="")
    cost: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
