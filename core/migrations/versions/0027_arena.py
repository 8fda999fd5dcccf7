"""arena_comparisons, arena_entries: blind comparisons and their votes (issue #18 item 1)

Revision ID: 0027_arena
Revises: 0003_workspace
Create Date: 2026-12-06 09:40:00.000000

A blind comparison is one prompt answered by several models under the labels A, B, C, D; the
entries keep which model wrote which answer and, after the vote, each one's rank. They reference
``conversations`` and ``messages``, which 0003_workspace created.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0027_arena"
down_revision = "0003_workspace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "arena_comparisons",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("voted_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_arena_comparisons_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_arena_comparisons_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arena_comparisons")),
    )
    op.create_index(
        "ix_arena_comparisons_user_created",
        "arena_comparisons",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_arena_comparisons_conversation_id"),
        "arena_comparisons",
        ["conversation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_arena_comparisons_voted_at"), "arena_comparisons", ["voted_at"], unique=False
    )
    op.create_table(
        "arena_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("comparison_id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=1), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("place", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["arena_comparisons.id"],
            name=op.f("fk_arena_entries_comparison_id_arena_comparisons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_arena_entries_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arena_entries")),
        sa.UniqueConstraint("comparison_id", "label", name=op.f("uq_arena_entries_comparison_id")),
    )
    op.create_index(
        op.f("ix_arena_entries_message_id"), "arena_entries", ["message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("arena_entries")
    op.drop_table("arena_comparisons")
