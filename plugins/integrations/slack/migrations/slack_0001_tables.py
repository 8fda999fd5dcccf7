"""slack_installs, slack_links, slack_commands, slack_saved_answers

Revision ID: slack_0001
Revises: (the first of the slack branch; depends on the core's users table)
Create Date: 2026-12-06 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from multinotes.plugin import UTCDateTime

revision = "slack_0001"
down_revision = None
branch_labels = ("slack",)
depends_on = "0001_core"


def _user_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "slack_installs",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("team_name", sa.String(length=200), nullable=False),
        sa.Column("bot_user_id", sa.String(length=32), nullable=False),
        sa.Column("bot_token", sa.String(length=1000), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("installed_by", sa.String(length=32), nullable=True),
        sa.Column("installed_at", UTCDateTime(), nullable=False),
        _user_fk("slack_installs", "installed_by", "SET NULL"),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_slack_installs")),
    )
    op.create_index(
        op.f("ix_slack_installs_installed_by"), "slack_installs", ["installed_by"], unique=False
    )
    op.create_table(
        "slack_links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("team_name", sa.String(length=200), nullable=False),
        sa.Column("slack_user_id", sa.String(length=32), nullable=False),
        sa.Column("slack_name", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("default_model", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("slack_links", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_links")),
        sa.UniqueConstraint("team_id", "slack_user_id", name=op.f("uq_slack_links_team_id")),
    )
    op.create_index(op.f("ix_slack_links_user_id"), "slack_links", ["user_id"], unique=False)
    op.create_table(
        "slack_commands",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("trigger_id", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("slack_user_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("response_url", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("slack_commands", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_commands")),
        sa.UniqueConstraint("trigger_id", name=op.f("uq_slack_commands_trigger_id")),
    )
    op.create_index(op.f("ix_slack_commands_user_id"), "slack_commands", ["user_id"], unique=False)
    op.create_table(
        "slack_saved_answers",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("note_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("slack_saved_answers", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_slack_saved_answers")),
    )
    op.create_index(
        op.f("ix_slack_saved_answers_user_id"), "slack_saved_answers", ["user_id"], unique=False
    )


def downgrade() -> None:
    for table, column in (
        ("slack_saved_answers", "user_id"),
        ("slack_commands", "user_id"),
        ("slack_links", "user_id"),
        ("slack_installs", "installed_by"),
    ):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
        op.drop_table(table)
