"""search: full-text indexes, embeddings, recent searches

Revision ID: 0013_search
Revises: 0010_notes (and needs 0003_workspace: conversations and messages)
Create Date: 2026-11-26 04:30:00.000000

Full text on SQLite: one external-content FTS5 table per searched table (documents: title and
content; conversations: title; messages: content), keyed by the source row's rowid and kept in
sync by triggers. A later migration that rebuilds one of those tables in SQLite batch mode (copy,
drop, rename) drops its triggers and may renumber its rowids: the app notices the missing
triggers at its next start, creates them again and rebuilds the index
(``multinotes.search.sqlite_index``); such a migration may as well do it itself.

Full text on MySQL/MariaDB: InnoDB FULLTEXT indexes on the same columns (and one on document
titles alone, so title matches can weigh more); InnoDB keeps them in sync itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0013_search"
down_revision = "0010_notes"
branch_labels = None
depends_on = ("0003_workspace",)

#: FTS table → (source table, indexed columns).
FTS = {
    "documents_fts": ("documents", ("title", "content")),
    "conversations_fts": ("conversations", ("title",)),
    "messages_fts": ("messages", ("content",)),
}

# No stemming (MySQL has none either) and accents folded (as utf8mb4_unicode_ci does).
TOKENIZE = "unicode61 remove_diacritics 2"


def _sqlite_upgrade() -> None:
    for fts, (source, columns) in FTS.items():
        cols = ", ".join(columns)
        new = ", ".join(f"new.{c}" for c in columns)
        old = ", ".join(f"old.{c}" for c in columns)
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{source}', "
            f"content_rowid='rowid', tokenize='{TOKENIZE}')"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {source} BEGIN "
            f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.rowid, {new}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {source} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.rowid, {old}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {cols} ON {source} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.rowid, {old}); "
            f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.rowid, {new}); END"
        )
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def _mysql_upgrade() -> None:
    op.execute("ALTER TABLE documents ADD FULLTEXT INDEX ft_documents (title, content)")
    op.execute("ALTER TABLE documents ADD FULLTEXT INDEX ft_documents_title (title)")
    op.execute("ALTER TABLE conversations ADD FULLTEXT INDEX ft_conversations (title)")
    op.execute("ALTER TABLE messages ADD FULLTEXT INDEX ft_messages (content)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
    else:
        _mysql_upgrade()

    op.create_table(
        "search_embeddings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=True),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("source_updated_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_search_embeddings_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_search_embeddings_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_search_embeddings_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_search_embeddings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_embeddings")),
        sa.UniqueConstraint("conversation_id", name=op.f("uq_search_embeddings_conversation_id")),
        sa.UniqueConstraint("document_id", name=op.f("uq_search_embeddings_document_id")),
        sa.UniqueConstraint("message_id", name=op.f("uq_search_embeddings_message_id")),
    )
    with op.batch_alter_table("search_embeddings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_embeddings_user_kind", ["user_id", "kind", "updated_at"], unique=False
        )

    op.create_table(
        "recent_searches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("query", sa.String(length=200), nullable=False),
        sa.Column("query_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recent_searches_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recent_searches")),
        sa.UniqueConstraint("user_id", "query_key", name=op.f("uq_recent_searches_user_id")),
    )
    with op.batch_alter_table("recent_searches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recent_searches_user_created", ["user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs).
    op.drop_table("recent_searches")
    op.drop_table("search_embeddings")
    if op.get_bind().dialect.name == "sqlite":
        for fts, (source, _columns) in FTS.items():
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
    else:
        op.execute("ALTER TABLE messages DROP INDEX ft_messages")
        op.execute("ALTER TABLE conversations DROP INDEX ft_conversations")
        op.execute("ALTER TABLE documents DROP INDEX ft_documents_title")
        op.execute("ALTER TABLE documents DROP INDEX ft_documents")
