"""chains, chain_runs, chain_run_steps: chains of prompts and their runs (issue #18 item 3)

Revision ID: 0032_chains
Revises: 0003_workspace
Create Date: 2026-12-06 14:50:00.000000

A chain keeps its steps as JSON; a run keeps the steps it ran, its input (typed, or a document's
text: ``file_id`` names the file, 0011_files), its conversation (0003_workspace) and each step's
prompt and answer (a message of that conversation).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import multinotes.db

revision = "0032_chains"
down_revision = "0003_workspace"
branch_labels = None
depends_on = "0011_files"

LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "chains",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chains_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chains")),
    )
    op.create_index("ix_chains_user_updated", "chains", ["user_id", "updated_at"], unique=False)
    op.create_table(
        "chain_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("chain_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input", LongText, nullable=False),
        sa.Column("file_id", sa.String(length=32), nullable=True),
        sa.Column("rerun_of", sa.String(length=32), nullable=True),
        sa.Column("start_step", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["chain_id"],
            ["chains.id"],
            name=op.f("fk_chain_runs_chain_id_chains"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_chain_runs_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_chain_runs_file_id_files"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chain_runs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_runs")),
    )
    op.create_index(
        "ix_chain_runs_chain_created", "chain_runs", ["chain_id", "created_at"], unique=False
    )
    op.create_index(op.f("ix_chain_runs_user_id"), "chain_runs", ["user_id"], unique=False)
    op.create_index(
        op.f("ix_chain_runs_conversation_id"), "chain_runs", ["conversation_id"], unique=False
    )
    op.create_table(
        "chain_run_steps",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("prompt", LongText, nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("generation_id", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_chain_run_steps_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["chain_runs.id"],
            name=op.f("fk_chain_run_steps_run_id_chain_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "position", name=op.f("pk_chain_run_steps")),
    )
    op.create_index(
        op.f("ix_chain_run_steps_message_id"), "chain_run_steps", ["message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("chain_run_steps")
    op.drop_table("chain_runs")
    op.drop_table("chains")
