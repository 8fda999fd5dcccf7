"""auto_reloads, auto_reload_charges, order_refunds; plan_periods.storage_expires_at, _renewed_ref

Revision ID: 0022_auto_reload
Revises: 0019_billing
Create Date: 2026-12-06 09:00:00.000000

Auto-reload (a user's opt-in to buy a plan off-session when credits run low, and the orders it
opened), partial refunds (one row per refund with the credits taken back and the shortfall), and
the end of a storage plan (its quota applies until then) and the last invoice that renewed it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0022_auto_reload"
down_revision = "0019_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auto_reloads",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column("disabled_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_auto_reloads_plan_id_plans")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auto_reloads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_auto_reloads")),
    )
    op.create_table(
        "auto_reload_charges",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_auto_reload_charges_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auto_reload_charges_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_auto_reload_charges")),
    )
    op.create_index(
        "ix_auto_reload_charges_user_created",
        "auto_reload_charges",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "order_refunds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_total", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credits_due", sa.BigInteger(), nullable=False),
        sa.Column("credits_taken", sa.BigInteger(), nullable=False),
        sa.Column("shortfall", sa.BigInteger(), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_refunds_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_order_refunds_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refunds")),
        sa.UniqueConstraint("order_id", "refunded_total", name="uq_order_refunds_order_total"),
    )
    op.create_index(op.f("ix_order_refunds_order_id"), "order_refunds", ["order_id"], unique=False)
    op.create_index(op.f("ix_order_refunds_user_id"), "order_refunds", ["user_id"], unique=False)
    with op.batch_alter_table("plan_periods") as batch:
        batch.add_column(
            sa.Column("storage_expires_at", multinotes.db.UTCDateTime(), nullable=True)
        )
        batch.add_column(sa.Column("storage_renewed_ref", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan_periods") as batch:
        batch.drop_column("storage_renewed_ref")
        batch.drop_column("storage_expires_at")
    op.drop_index(op.f("ix_order_refunds_user_id"), table_name="order_refunds")
    op.drop_index(op.f("ix_order_refunds_order_id"), table_name="order_refunds")
    op.drop_table("order_refunds")
    op.drop_index("ix_auto_reload_charges_user_created", table_name="auto_reload_charges")
    op.drop_table("auto_reload_charges")
    op.drop_table("auto_reloads")
