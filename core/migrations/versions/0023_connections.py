"""connections, connection_flows, remote_exports: connected accounts (issue #15)

Revision ID: 0023_connections
Revises: 0001_core
Create Date: 2026-12-06 08:40:00.000000

A user's accounts at outside services (Notion, Google), connected through OAuth 2.0: the tokens
(encrypted), the flows in progress (one use, ten minutes, bound to the session) and what an
export made at a service, so exporting the same note again updates it. ``remote_exports``
references ``documents``, so this revision depends on 0010_notes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0023_connections"
down_revision = "0001_core"
branch_labels = None
depends_on = "0010_notes"


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("account_name", sa.String(length=255), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("scopes", sa.String(length=1000), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_connections_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("user_id", "kind", name=op.f("uq_connections_user_id")),
    )
    op.create_index(op.f("ix_connections_user_id"), "connections", ["user_id"], unique=False)
    op.create_table(
        "connection_flows",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=500), nullable=False),
        sa.Column("next_url", sa.String(length=500), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_connection_flows_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_flows")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_connection_flows_state_hash")),
    )
    op.create_index(
        "ix_connection_flows_expires_at", "connection_flows", ["expires_at"], unique=False
    )
    op.create_table(
        "remote_exports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.String(length=32), nullable=False),
        sa.Column("exporter", sa.String(length=64), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_remote_exports_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_remote_exports_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_remote_exports_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_exports")),
        sa.UniqueConstraint(
            "connection_id",
            "exporter",
            "document_id",
            name=op.f("uq_remote_exports_connection_id"),
        ),
    )
    op.create_index(
        op.f("ix_remote_exports_document_id"), "remote_exports", ["document_id"], unique=False
    )
    op.create_index(
        op.f("ix_remote_exports_user_id"), "remote_exports", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_remote_exports_user_id"), table_name="remote_exports")
    op.drop_index(op.f("ix_remote_exports_document_id"), table_name="remote_exports")
    op.drop_table("remote_exports")
    op.drop_index("ix_connection_flows_expires_at", table_name="connection_flows")
    op.drop_table("connection_flows")
    op.drop_index(op.f("ix_connections_user_id"), table_name="connections")
    op.drop_table("connections")
