"""analytics rollup tables, generations.provider_cost (issue #19)

Revision ID: 0040_analytics
Revises: 0003_workspace
Create Date: 2026-12-06 18:30:00.000000

The operator's analytics read rollups, not the million-row tables: active users per day,
daily figures, each user's funnel milestones, cohort retention, generations and money per
model / provider / plan per day, storage per day, and the runs of the rollup. Generations
record what the provider's list prices make of their usage (the AI cost).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0040_analytics"
down_revision = "0003_workspace"
branch_labels = None
depends_on = ("0019_billing", "0010_notes", "0011_files")


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.add_column("generations", sa.Column("provider_cost", sa.BigInteger(), nullable=True))
    op.create_table(
        "analytics_active_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        _user_fk("analytics_active_days"),
        sa.PrimaryKeyConstraint("day", "user_id", name=op.f("pk_analytics_active_days")),
    )
    op.create_index("ix_analytics_active_days_user", "analytics_active_days", ["user_id", "day"])
    op.create_table(
        "analytics_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dau", sa.Integer(), nullable=False),
        sa.Column("wau", sa.Integer(), nullable=False),
        sa.Column("mau", sa.Integer(), nullable=False),
        sa.Column("signups", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_analytics_daily")),
    )
    op.create_table(
        "analytics_milestones",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("signed_up_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("verified_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("first_answer_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("first_note_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("first_payment_at", multinotes.db.UTCDateTime(), nullable=True),
        _user_fk("analytics_milestones"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_analytics_milestones")),
    )
    op.create_index("ix_analytics_milestones_signed_up", "analytics_milestones", ["signed_up_at"])
    op.create_table(
        "analytics_retention",
        sa.Column("cohort", sa.Date(), nullable=False),
        sa.Column("week", sa.Integer(), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cohort", "week", name=op.f("pk_analytics_retention")),
    )
    op.create_table(
        "analytics_usage",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.String(length=100), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("generations", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("charged", sa.BigInteger(), nullable=False),
        sa.Column("provider_cost", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "model_id", "provider_id", "plan_id", name=op.f("pk_analytics_usage")
        ),
    )
    op.create_table(
        "analytics_storage",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_analytics_storage")),
    )
    op.create_table(
        "analytics_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_runs")),
    )


def downgrade() -> None:
    for table in (
        "analytics_runs",
        "analytics_storage",
        "analytics_usage",
        "analytics_retention",
        "analytics_milestones",
        "analytics_daily",
        "analytics_active_days",
    ):
        op.drop_table(table)
    op.drop_column("generations", "provider_cost")
