"""analytics_runs.failed_at and analytics_runs.failure (issue #19, operator's console item 8)

Revision ID: 0045_analytics_run_failures
Revises: 0040_analytics
Create Date: 2026-12-07 01:45:00.000000

A rollup run that fails is kept as failed, with when and a short reason (the step it was on
and the kind of error; the traceback goes to the server log only), instead of being forgotten:
the console and the status API say the last run failed, and the next run may start at once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0045_analytics_run_failures"
down_revision = "0040_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analytics_runs") as batch:
        batch.add_column(sa.Column("failed_at", multinotes.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("failure", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analytics_runs") as batch:
        batch.drop_column("failure")
        batch.drop_column("failed_at")
