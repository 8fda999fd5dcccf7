"""batches, batch_rows, batch_answers: batch runs of a prompt template (issue #18 item 4)

Revision ID: 0033_batches
Revises: 0026_prompt_library
Create Date: 2026-12-06 15:00:00.000000

A batch runs a template (``prompt_templates``, 0026) over rows of values on one or more models;
each row's answers are messages of one conversation per batch (``conversations`` and
``messages``, 0003_workspace).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0033_batches"
down_revision = "0026_prompt_library"
branch_labels = None
depends_on = ("0003_workspace",)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.String(length=32), nullable=True),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("stop_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("started_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("finished_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_batches_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["prompt_templates.id"],
            name=op.f("fk_batches_template_id_prompt_templates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_batches_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index("ix_batches_user_created", "batches", ["user_id", "created_at"], unique=False)
    op.create_index(
        "ix_batches_status_heartbeat", "batches", ["status", "heartbeat_at"], unique=False
    )
    op.create_index(op.f("ix_batches_template_id"), "batches", ["template_id"], unique=False)
    op.create_index(
        op.f("ix_batches_conversation_id"), "batches", ["conversation_id"], unique=False
    )
    op.create_table(
        "batch_rows",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("claimed_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("finished_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_rows_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_rows")),
        sa.UniqueConstraint("batch_id", "position", name=op.f("uq_batch_rows_batch_id")),
    )
    op.create_index(
        "ix_batch_rows_batch_status", "batch_rows", ["batch_id", "status"], unique=False
    )
    op.create_table(
        "batch_answers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("row_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("generation_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_answers_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_batch_answers_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["row_id"],
            ["batch_rows.id"],
            name=op.f("fk_batch_answers_row_id_batch_rows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_answers")),
        sa.UniqueConstraint("row_id", "model_id", name=op.f("uq_batch_answers_row_id")),
    )
    op.create_index("ix_batch_answers_batch_id", "batch_answers", ["batch_id"], unique=False)
    op.create_index(
        op.f("ix_batch_answers_message_id"), "batch_answers", ["message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("batch_answers")
    op.drop_table("batch_rows")
    op.drop_table("batches")
