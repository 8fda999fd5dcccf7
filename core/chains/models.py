"""Tables of chains: a chain (its steps as JSON), its runs and each run's steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

# MySQL's TEXT holds 64 KiB; a document's text or a step's prompt can be longer.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

#: Where a run is: ``running`` until it ends ``complete`` (every step answered), ``stopped``
#: (Stop was pressed) or ``failed`` (a step failed or could not be paid for).
RUN_STATUSES = ("running", "complete", "stopped", "failed")
#: Where a run's step is: ``waiting`` for its turn, ``running``, then as its answer ended
#: (``complete``, ``stopped``, ``failed``); ``reused`` (an earlier run's answer, when a run starts
#: from a later step), ``skipped`` (the run ended before it).
STEP_STATUSES = ("waiting", "running", "complete", "stopped", "failed", "reused", "skipped")


class Chain(Base):
    """A user's chain. ``steps`` is the list of step definitions
    (``multinotes.chains.steps.Step`` as JSON); only its owner sees, runs and changes it."""

    __tablename__ = "chains"
    __table_args__ = (Index("ix_chains_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500), default="")
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChainRun(Base):
    """One run of a chain: its input, the steps as they were when it started (``steps``, so
    a later edit does not change what a run shows), its conversation and outcome."""

    __tablename__ = "chain_runs"
    __table_args__ = (Index("ix_chain_runs_chain_created", "chain_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    chain_id: Mapped[str] = mapped_column(ForeignKey("chains.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: Where every step's prompt and answer is saved.
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: The text ``{{input}}`` stands for (typed, or extracted from ``file_id``'s document).
    input: Mapped[str] = mapped_column(LongText, default="")
    #: The uploaded document the input was read from, if any (None once it is deleted).
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    #: The run this one re-runs from ``start_step`` on (its earlier answers are reused).
    rerun_of: Mapped[str | None] = mapped_column(String(32))
    #: The first step this run answers (0-based); earlier ones are reused.
    start_step: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Set by Stop: the run ends after (or by cancelling) the step that is running.
    stop_requested: Mapped[bool] = mapped_column(default=False)
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChainRunStep(Base):
    """One step of a run: the prompt it sent (with the variables put in) and its answer, a
    message of the run's conversation (whose generation holds usage and cost)."""

    __tablename__ = "chain_run_steps"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("chain_runs.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    prompt: Mapped[str] = mapped_column(LongText, default="")
    message_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    #: The answer's generation, so Stop can cancel it and followers find its live text.
    generation_id: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(String(500))
