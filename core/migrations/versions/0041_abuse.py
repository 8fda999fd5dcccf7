"""abuse_rules, abuse_hits, users.blocked_reason (issue #19)

Revision ID: 0041_abuse
Revises: 0001_core
Create Date: 2026-12-06 16:05:00.000000

Abuse detection: each rule's settings, every hit with its evidence and review, and the reason a
blocked account is told at login.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0041_abuse"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("blocked_reason", sa.String(length=500), nullable=True))
    op.create_table(
        "abuse_rules",
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("rule", name=op.f("pk_abuse_rules")),
    )
    op.create_table(
        "abuse_hits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("action_taken", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("reviewed_by", sa.String(length=32), nullable=True),
        sa.Column("reviewed_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("review_note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_abuse_hits_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"],
            ["users.id"],
            name=op.f("fk_abuse_hits_reviewed_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abuse_hits")),
    )
    op.create_index("ix_abuse_hits_status", "abuse_hits", ["status", "created_at"])
    op.create_index("ix_abuse_hits_rule", "abuse_hits", ["rule", "created_at"])
    op.create_index("ix_abuse_hits_network", "abuse_hits", ["rule", "network", "created_at"])
    op.create_index(op.f("ix_abuse_hits_user_id"), "abuse_hits", ["user_id"])


def downgrade() -> None:
    op.drop_table("abuse_hits")
    op.drop_table("abuse_rules")
    op.drop_column("users", "blocked_reason")
