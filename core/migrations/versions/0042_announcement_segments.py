"""announcements.kind and announcements.segment (issue #19, operator item 6)

Revision ID: 0042_announcement_segments
Revises: 0028_support
Create Date: 2026-12-06 18:30:00.000000

An announcement is a banner (across the top of every page) or an in-app message (a dialog shown
once); it goes to everyone or to a segment of users (``multinotes.segments``: plan, organisation,
sign-up dates), stored as the segment's JSON (empty: everyone).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0042_announcement_segments"
down_revision = "0028_support"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("announcements") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="banner")
        )
        batch.add_column(sa.Column("segment", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("announcements") as batch:
        batch.drop_column("segment")
        batch.drop_column("kind")
