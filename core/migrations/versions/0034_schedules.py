"""schedules, schedule_runs (issue #18 item 5)

Revision ID: 0034_schedules
Revises: 0026_prompt_library
Create Date: 2026-12-06 15:10:00.000000

Scheduled runs of prompt templates and the history of their runs. Builds on the prompt library
(what a schedule runs) and on the notes (the folder its answers go to).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0034_schedules"
down_revision = "0026_prompt_library"
branch_labels = None
depends_on = "0010_notes"


def _users_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["owner_id"], ["users.id"], name=op.f(f"fk_{table}_owner_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("cron", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("folder_id", sa.String(length=32), nullable=True),
        sa.Column("email_results", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paused_reason", sa.String(length=32), nullable=True),
        sa.Column("next_run_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("last_run_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        _users_fk("schedules"),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["folders.id"],
            name=op.f("fk_schedules_folder_id_folders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index("ix_schedules_owner_id", "schedules", ["owner_id", "created_at"])
    op.create_index("ix_schedules_due", "schedules", ["status", "next_run_at"])
    op.create_index(op.f("ix_schedules_folder_id"), "schedules", ["folder_id"])
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("schedule_id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("due_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("started_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("finished_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_runs_schedule_id_schedules"),
            ondelete="CASCADE",
        ),
        _users_fk("schedule_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_runs")),
    )
    op.create_index("ix_schedule_runs_schedule_id", "schedule_runs", ["schedule_id", "created_at"])
    op.create_index("ix_schedule_runs_status", "schedule_runs", ["status", "created_at"])
    op.create_index(op.f("ix_schedule_runs_owner_id"), "schedule_runs", ["owner_id"])


def downgrade() -> None:
    op.drop_table("schedule_runs")
    op.drop_table("schedules")
