"""Tables of search: embeddings for semantic search, and each user's recent searches.

The full-text indexes live with the data they index (created by the search migration): FTS5
tables kept in sync by triggers on SQLite, FULLTEXT indexes on MySQL/MariaDB. They are not
mapped here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, TypeDecorator, UniqueConstraint, func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

KINDS = ("note", "conversation", "message")


class _HexBound(TypeDecorator[bytes]):
    """Bytes sent to MySQL as hex text and unhexed by the server: PyMySQL 1.2 no longer lends
    aiomysql the function it uses to quote bytes parameters, so bytes cannot be bound as such."""

    impl = String  # what is bound is text; what comes back from the BLOB is bytes as it is
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return func.unhex(bindvalue)

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> str | None:
        return None if value is None else value.hex()


class Vector(TypeDecorator[bytes]):
    """A BLOB of packed float16 values."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(_HexBound())
        return dialect.type_descriptor(LargeBinary())


class SearchEmbedding(Base):
    """One item's embedding. Exactly one of ``document_id``, ``conversation_id`` and
    ``message_id`` is set (per ``kind``); each is a cascading foreign key, so an embedding goes
    when its item is deleted, whatever deletes it."""

    __tablename__ = "search_embeddings"
    __table_args__ = (
        UniqueConstraint("document_id"),
        UniqueConstraint("conversation_id"),
        UniqueConstraint("message_id"),
        # Covers the vector cache's check (how many, the newest) without reading any row.
        Index("ix_search_embeddings_user_kind", "user_id", "kind", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    #: The item's owner (the sweep and per-user runs select by it).
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    message_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    #: Which model made ``vector``: a new model makes every stored vector stale.
    model: Mapped[str] = mapped_column(String(64))
    #: Unit-length float16 values, ``dimensions`` of them.
    vector: Mapped[bytes] = mapped_column(Vector)
    #: SHA-256 of the embedded text: an item whose text did not change is not embedded again.
    text_hash: Mapped[str] = mapped_column(String(64))
    #: The item's ``updated_at`` when it was embedded (messages have none: they never change
    #: once complete).
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecentSearch(Base):
    """A search someone ran; the newest ten per user are kept, one per distinct query."""

    __tablename__ = "recent_searches"
    __table_args__ = (
        UniqueConstraint("user_id", "query_key"),
        Index("ix_recent_searches_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(String(200))
    #: The query folded for comparison ("Cats " and "cats" are one recent search).
    query_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
