"""feature_flags, experiments, experiment_exposures (issue #19)

Revision ID: 0038_flags
Revises: 0001_core
Create Date: 2026-12-06 15:00:00.000000

Feature flags (switch, rollout percentage, allow-list, segment), A/B experiments (variants with
weights, a conversion event, draft/running/stopped) and one row per user an experiment showed a
variant to, with when they converted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0038_flags"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def _users_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "feature_flags",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("rollout", sa.Integer(), nullable=False),
        sa.Column("allow_list", sa.JSON(), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        _users_fk("feature_flags", "created_by", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_flags")),
        sa.UniqueConstraint("name", name=op.f("uq_feature_flags_name")),
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("conversion_event", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("stopped_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        _users_fk("experiments", "created_by", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    op.create_table(
        "experiment_exposures",
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("exposed_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("converted_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_exposures_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        _users_fk("experiment_exposures", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "user_id", name=op.f("pk_experiment_exposures")),
    )
    op.create_index(
        "ix_experiment_exposures_variant", "experiment_exposures", ["experiment_id", "variant"]
    )
    op.create_index(op.f("ix_experiment_exposures_user_id"), "experiment_exposures", ["user_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes and foreign keys with it (on MariaDB and SQLite).
    op.drop_table("experiment_exposures")
    op.drop_table("experiments")
    op.drop_table("feature_flags")
