"""webhook_endpoints, webhook_deliveries, webhook_attempts

Revision ID: webhooks_0001
Revises: (the first of the webhooks branch; depends on the core's users table)
Create Date: 2026-12-06 08:40:00.000000

The plugin's tables, first created by the core revision ``0021_webhooks`` before plugins could
ship migrations. That revision stays in the core's history as a no-op; a database that ran it
has the tables already, so each is created here only if it is absent (same definition), and
this branch carries on from there on every database alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from multinotes.plugin import UTCDateTime

revision = "webhooks_0001"
down_revision = None
branch_labels = ("webhooks",)
depends_on = "0001_core"

LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def _absent(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent("webhook_endpoints"):
        op.create_table(
            "webhook_endpoints",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("user_id", sa.String(length=32), nullable=False),
            sa.Column("scope", sa.String(length=16), nullable=False),
            sa.Column("url", sa.String(length=2000), nullable=False),
            sa.Column("description", sa.String(length=500), nullable=False),
            sa.Column("events", sa.JSON(), nullable=False),
            sa.Column("secret", sa.String(length=500), nullable=False),
            sa.Column("previous_secret", sa.String(length=500), nullable=True),
            sa.Column("previous_secret_until", UTCDateTime(), nullable=True),
            sa.Column("enabled", sa.Boolean(), nullable=False),
            sa.Column("disabled_reason", sa.String(length=32), nullable=True),
            sa.Column("failing_since", UTCDateTime(), nullable=True),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
            sa.ForeignKeyConstraint(
                ["user_id"],
                ["users.id"],
                name=op.f("fk_webhook_endpoints_user_id_users"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
        )
        op.create_index(
            op.f("ix_webhook_endpoints_user_id"), "webhook_endpoints", ["user_id"], unique=False
        )
    if _absent("webhook_deliveries"):
        op.create_table(
            "webhook_deliveries",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("endpoint_id", sa.String(length=32), nullable=False),
            sa.Column("event_type", sa.String(length=100), nullable=False),
            sa.Column("event_key", sa.String(length=64), nullable=False),
            sa.Column("body", LONG_TEXT, nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.ForeignKeyConstraint(
                ["endpoint_id"],
                ["webhook_endpoints.id"],
                name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
            sa.UniqueConstraint("endpoint_id", "event_key", name="uq_webhook_deliveries_event"),
        )
        op.create_index(
            "ix_webhook_deliveries_due",
            "webhook_deliveries",
            ["status", "next_attempt_at"],
            unique=False,
        )
    if _absent("webhook_attempts"):
        op.create_table(
            "webhook_attempts",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("delivery_id", sa.String(length=32), nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("trigger", sa.String(length=16), nullable=False),
            sa.Column("started_at", UTCDateTime(), nullable=False),
            sa.Column("status_code", sa.Integer(), nullable=True),
            sa.Column("latency_ms", sa.Integer(), nullable=False),
            sa.Column("response_excerpt", sa.String(length=1000), nullable=False),
            sa.Column("error", sa.String(length=500), nullable=True),
            sa.ForeignKeyConstraint(
                ["delivery_id"],
                ["webhook_deliveries.id"],
                name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        )
        op.create_index(
            op.f("ix_webhook_attempts_delivery_id"),
            "webhook_attempts",
            ["delivery_id"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_attempts_delivery_id"), table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index(op.f("ix_webhook_endpoints_user_id"), table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
