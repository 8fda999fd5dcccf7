"""discord_links, discord_interactions, discord_saved_answers

Revision ID: discord_0001
Revises: (the first of the discord branch; depends on the core's users table)
Create Date: 2026-12-06 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from multinotes.plugin import UTCDateTime

revision = "discord_0001"
down_revision = None
branch_labels = ("discord",)
depends_on = "0001_core"


def _user_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "discord_links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("discord_user_id", sa.String(length=32), nullable=False),
        sa.Column("discord_name", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("default_model", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("discord_links", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discord_links")),
        sa.UniqueConstraint("discord_user_id", name=op.f("uq_discord_links_discord_user_id")),
    )
    op.create_index(op.f("ix_discord_links_user_id"), "discord_links", ["user_id"], unique=False)
    op.create_table(
        "discord_interactions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("discord_user_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("token", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("discord_interactions", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discord_interactions")),
    )
    op.create_index(
        op.f("ix_discord_interactions_user_id"), "discord_interactions", ["user_id"], unique=False
    )
    op.create_table(
        "discord_saved_answers",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("note_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("discord_saved_answers", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_discord_saved_answers")),
    )
    op.create_index(
        op.f("ix_discord_saved_answers_user_id"),
        "discord_saved_answers",
        ["user_id"],
        unique=False,
    )


def downgrade() -> None:
    for table in ("discord_saved_answers", "discord_interactions", "discord_links"):
        op.drop_index(op.f(f"ix_{table}_user_id"), table_name=table)
        op.drop_table(table)
