"""billing: plans, coupons, orders, provider events, plan periods

Revision ID: 0019_billing
Revises: 0003_workspace
Create Date: 2026-12-06 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0019_billing"
down_revision = "0003_workspace"  # the wallet's tables; credits move in the same transactions
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("archived_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    op.create_table(
        "coupons",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("percent_off", sa.Integer(), nullable=True),
        sa.Column("amount_off", sa.BigInteger(), nullable=True),
        sa.Column("max_discount", sa.BigInteger(), nullable=True),
        sa.Column("min_order", sa.BigInteger(), nullable=True),
        sa.Column("bonus_credits", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("ends_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("max_uses_per_user", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("archived_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("code", name=op.f("uq_coupons_code")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("discount", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("bonus_credits", sa.BigInteger(), nullable=False),
        sa.Column("coupon_id", sa.String(length=32), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("payment_reference", sa.String(length=255), nullable=True),
        sa.Column("customer_reference", sa.String(length=255), nullable=True),
        sa.Column("subscription_reference", sa.String(length=255), nullable=True),
        sa.Column("subscription_status", sa.String(length=16), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("expires_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("paid_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_orders_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_orders_plan_id_plans")),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_orders_coupon_id_coupons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("backend", "reference", name="uq_orders_backend_reference"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_user_created", ["user_id", "created_at"], unique=False)
        batch_op.create_index("ix_orders_coupon_status", ["coupon_id", "status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_orders_subscription_reference"),
            ["subscription_reference"],
            unique=False,
        )
    op.create_table(
        "billing_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("provider_type", sa.String(length=100), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("received_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_events")),
        sa.UniqueConstraint("backend", "event_id", name="uq_billing_events_backend_event_id"),
    )
    with op.batch_alter_table("billing_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_events_order_id"), ["order_id"], unique=False)
    op.create_table(
        "plan_periods",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=True),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("expires_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("storage_plan_id", sa.String(length=32), nullable=True),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_plan_periods_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_periods_plan_id_plans")
        ),
        sa.ForeignKeyConstraint(
            ["storage_plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_periods_storage_plan_id_plans"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_plan_periods")),
    )
    op.create_table(
        "referral_codes",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_referral_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_referral_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_referral_codes_code")),
    )
    op.create_table(
        "referrals",
        sa.Column("referee_id", sa.String(length=32), nullable=False),
        sa.Column("referrer_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("rewarded_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referee_id"],
            ["users.id"],
            name=op.f("fk_referrals_referee_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referrer_id"],
            ["users.id"],
            name=op.f("fk_referrals_referrer_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referee_id", name=op.f("pk_referrals")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referrals_referrer_id"), ["referrer_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("referrals")
    op.drop_table("referral_codes")
    op.drop_table("plan_periods")
    op.drop_table("billing_events")
    op.drop_table("orders")
    op.drop_table("coupons")
    op.drop_table("plans")
