"""context_summaries; conversations.context_policy; generations.context_policy, summary_id

Revision ID: 0035_context_summaries
Revises: 0018_workspace_sidebar
Create Date: 2026-12-06 15:10:00.000000

Context window management (issue #18 item 6): each conversation says what happens when it
outgrows a model's window ("drop" the oldest turns, or "summarise" them with a cheap model); the
summaries are stored and reused, and each generation records which policy applied and the
summary it was sent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import multinotes.db

revision = "0035_context_summaries"
down_revision = "0018_workspace_sidebar"
branch_labels = None
depends_on = None

LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "context_summaries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("through_message_id", sa.String(length=32), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("content", LONG_TEXT, nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_context_summaries_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["through_message_id"],
            ["messages.id"],
            name=op.f("fk_context_summaries_through_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_context_summaries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_context_summaries")),
    )
    for column in ("user_id", "conversation_id", "through_message_id"):
        op.create_index(
            op.f(f"ix_context_summaries_{column}"), "context_summaries", [column], unique=False
        )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("context_policy", sa.String(length=16), nullable=False, server_default="drop")
        )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context_policy", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("summary_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_generations_summary_id_context_summaries"),
            "context_summaries",
            ["summary_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_generations_summary_id_context_summaries"), type_="foreignkey"
        )
        batch_op.drop_column("summary_id")
        batch_op.drop_column("context_policy")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("context_policy")
    for column in ("through_message_id", "conversation_id", "user_id"):
        op.drop_index(op.f(f"ix_context_summaries_{column}"), table_name="context_summaries")
    op.drop_table("context_summaries")
