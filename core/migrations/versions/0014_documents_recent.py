"""documents: index (user_id, updated_at)

Revision ID: 0014_documents_recent
Revises: 0013_search
Create Date: 2026-11-26 07:50:00.000000

A user's embedding job reads the notes that user changed lately; without this index it read
every live note the user has, once a second while they type.
"""

from __future__ import annotations

from alembic import op

revision = "0014_documents_recent"
down_revision = "0013_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_documents_user_updated", "documents", ["user_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_documents_user_updated", table_name="documents")
