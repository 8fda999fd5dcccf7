"""files: uploaded and generated files within a storage quota

Revision ID: 0011_files
Revises: 0001_core
Create Date: 2026-11-26 02:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db  # noqa: F401 - custom column types


revision = "0011_files"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("folder_id", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_files_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("ix_files_user_created", ["user_id", "id"], unique=False)


def downgrade() -> None:
    # Dropping the table drops its indexes (MariaDB refuses to drop the user index first: the
    # foreign key needs it).
    op.drop_table("files")
