"""api_keys: scopes and expiry

Revision ID: 0017_api_key_scopes
Revises: 0001_core
Create Date: 2026-12-06 02:30:00.000000

Keys made before scopes existed could do everything their owner could; they keep that: every
key gets read, notes and chat, and an administrator's keys also admin.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0017_api_key_scopes"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "scopes", sa.String(length=64), nullable=False, server_default="read notes chat"
            )
        )
        batch_op.add_column(sa.Column("expires_at", multinotes.db.UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE api_keys SET scopes = 'read notes chat admin' "
        "WHERE user_id IN (SELECT id FROM users WHERE role = 'admin')"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scopes")
