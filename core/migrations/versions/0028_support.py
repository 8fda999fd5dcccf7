"""support_tickets, support_messages, announcements, announcement_dismissals (issue #19)

Revision ID: 0028_support
Revises: 0001_core
Create Date: 2026-12-06 09:50:00.000000

Support tickets with their threads (replies and staff-only notes), and the operator's
announcements with the per-user record of dismissed banners.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0028_support"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def _users_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        _users_fk("support_tickets", "user_id", "CASCADE"),
        _users_fk("support_tickets", "assignee_id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_tickets")),
    )
    op.create_index("ix_support_tickets_user_id", "support_tickets", ["user_id", "id"])
    op.create_index("ix_support_tickets_status", "support_tickets", ["status", "updated_at"])
    op.create_index(op.f("ix_support_tickets_assignee_id"), "support_tickets", ["assignee_id"])
    op.create_table(
        "support_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=True),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("from_staff", sa.Boolean(), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["support_tickets.id"],
            name=op.f("fk_support_messages_ticket_id_support_tickets"),
            ondelete="CASCADE",
        ),
        _users_fk("support_messages", "author_id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_messages")),
    )
    op.create_index(
        "ix_support_messages_ticket_id", "support_messages", ["ticket_id", "created_at"]
    )
    op.create_table(
        "announcements",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("starts_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("ends_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        _users_fk("announcements", "created_by", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcements")),
    )
    op.create_index("ix_announcements_starts_at", "announcements", ["starts_at"])
    op.create_table(
        "announcement_dismissals",
        sa.Column("announcement_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("dismissed_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["announcement_id"],
            ["announcements.id"],
            name=op.f("fk_announcement_dismissals_announcement_id_announcements"),
            ondelete="CASCADE",
        ),
        _users_fk("announcement_dismissals", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint(
            "announcement_id", "user_id", name=op.f("pk_announcement_dismissals")
        ),
    )
    op.create_index(
        op.f("ix_announcement_dismissals_user_id"), "announcement_dismissals", ["user_id"]
    )


def downgrade() -> None:
    op.drop_table("announcement_dismissals")
    op.drop_table("announcements")
    op.drop_table("support_messages")
    op.drop_table("support_tickets")
