"""conversations: pinned_at, archived_at; model_favourites

Revision ID: 0018_workspace_sidebar
Revises: 0003_workspace
Create Date: 2026-12-06 03:10:00.000000

The chat page's sidebar pins and archives conversations, and the model picker lists each
person's starred models first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0018_workspace_sidebar"
down_revision = "0003_workspace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_at", multinotes.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("archived_at", multinotes.db.UTCDateTime(), nullable=True))
    op.create_table(
        "model_favourites",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_model_favourites_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "model_id", name=op.f("pk_model_favourites")),
    )


def downgrade() -> None:
    op.drop_table("model_favourites")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
        batch_op.drop_column("pinned_at")
