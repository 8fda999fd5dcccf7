"""Conversations as trees of messages, the generations that produced assistant messages, the
media they produced, and users' ratings of answers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    or_,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from multinotes.db import Base, StrEnumType, UTCDateTime, new_id, utcnow

# MySQL's TEXT holds 64 KiB; answers and prompts can be longer.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class MessageStatus(StrEnum):
    """Where an answer is. A prompt is ``complete`` when stored; an answer is ``pending``
    while its model streams, then ``complete``, ``stopped`` (Stop was pressed: the text so far
    is kept) or ``failed``."""

    PENDING = "pending"
    COMPLETE = "complete"
    STOPPED = "stopped"
    FAILED = "failed"


#: A generation ends the way its answer does (the pipeline stores both from one outcome).
GenerationStatus = MessageStatus


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    #: The tool it was started from ("text", "image", ...), for listing per tool.
    tool: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Pinned conversations head the sidebar; archived ones leave it (and stay searchable).
    pinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What happens when it outgrows a model's context window (``ContextPolicy``).
    context_policy: Mapped[str] = mapped_column(String(16), default="drop", server_default="drop")
    #: The organisation whose space it is in (its members read it; ``multinotes.sharing.access``),
    #: or None: its owner's own space. Its owner's generations there draw from that
    #: organisation's wallet.
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )


#: The tool of a blind comparison's conversation (issue #18). Its answers must not say which
#: model wrote them, so the chat layer treats it as no conversation at all: no chat path lists,
#: searches, shows, follows, continues, exports or shares it, before the vote or after. It lives
#: under /comparisons, which names the models once the owner has voted.
SEALED_TOOL = "arena"


def open_to_chat() -> ColumnElement[bool]:
    """SQL: the conversation may be read through the chat paths (it is not sealed)."""
    return or_(Conversation.tool.is_(None), Conversation.tool != SEALED_TOOL)


class Message(Base):
    """A node of the conversation tree. Siblings (same parent) are alternatives: several
    models' answers to one prompt, a regenerated answer, or an edited prompt."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_created", "conversation_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(LongText, default="")
    model_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[MessageStatus] = mapped_column(
        StrEnumType(MessageStatus), default=MessageStatus.COMPLETE
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Generation(Base):
    """One model's work on one prompt: options, usage, cost, timing and outcome."""

    __tablename__ = "generations"
    #: Per model, its recent generations: the catalogue's latency and availability (assist.stats).
    __table_args__ = (Index("ix_generations_model_created", "model_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    model_id: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[str] = mapped_column(String(100))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Prices in force when it started (credits), so settlement matches the reservation.
    pricing: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    status: Mapped[GenerationStatus] = mapped_column(
        StrEnumType(GenerationStatus), default=GenerationStatus.PENDING
    )
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(String(500))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    audio_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What the provider's list prices make of the usage, in credits (the charge without the
    #: markup): the AI cost the analytics set against ``cost``. None for answers settled
    #: before it was recorded, or by the sweep after a crash.
    provider_cost: Mapped[int | None] = mapped_column(BigInteger)
    dropped_turns: Mapped[int] = mapped_column(Integer, default=0)
    #: How the conversation was fitted to the model's window, when it did not fit whole:
    #: "drop" (oldest turns left out), "summarise" (they were summarised: ``summary_id``) or
    #: "summarise_failed" (summarising failed, so they were left out). None: it all fitted.
    context_policy: Mapped[str | None] = mapped_column(String(20))
    summary_id: Mapped[str | None] = mapped_column(
        ForeignKey("context_summaries.id", ondelete="SET NULL")
    )
    latency_ms: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ContextSummary(Base):
    """The older turns of a conversation summarised by a cheap model, sent in their place once
    they no longer fit a model's window (the conversation's "summarise" policy). It covers the
    conversation's turns from the root down to ``through_message_id``, and is reused until more
    turns overflow; ``cost`` is what summarising was charged (ledger reference
    ``summary:<id>``)."""

    __tablename__ = "context_summaries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    through_message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    #: How many turns (messages) it stands for.
    turns: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(LongText)
    model_id: Mapped[str] = mapped_column(String(200))
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageMedia(Base):
    """A generated image or audio clip, stored in the data dir and served to its owner."""

    __tablename__ = "message_media"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    media_type: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id"),
        Index("ix_ratings_model", "model_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(200))
    stars: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ModelFavourite(Base):
    """A model someone starred in the model picker: listed first, for them only."""

    __tablename__ = "model_favourites"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
