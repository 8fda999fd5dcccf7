"""note_exports: background exports of folders, notes and conversations (issue #15)

Revision ID: 0020_note_exports
Revises: 0001_core
Create Date: 2026-12-06 05:30:00.000000

One row per export that runs as a task: what was asked (format, options, target), its progress
(``done`` of ``total`` notes), and the stored file once built. Rows belong to a user (ON DELETE
CASCADE); a scheduled task removes expired rows and their files.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0020_note_exports"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "note_exports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("media_type", sa.String(length=127), nullable=True),
        sa.Column("storage_key", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("expires_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_note_exports_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_note_exports")),
    )
    op.create_index(
        "ix_note_exports_user_created", "note_exports", ["user_id", "created_at"], unique=False
    )
    op.create_index("ix_note_exports_expires_at", "note_exports", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_note_exports_expires_at", table_name="note_exports")
    op.drop_index("ix_note_exports_user_created", table_name="note_exports")
    op.drop_table("note_exports")
