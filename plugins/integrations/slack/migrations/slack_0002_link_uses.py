"""slack_link_uses: each account link is used once

Revision ID: slack_0002
Revises: slack_0001
Create Date: 2026-12-06 09:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from multinotes.plugin import UTCDateTime

revision = "slack_0002"
down_revision = "slack_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_link_uses",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_slack_link_uses")),
    )


def downgrade() -> None:
    op.drop_table("slack_link_uses")
