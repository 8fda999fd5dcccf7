"""organisations.seats; orders.organisation_id and orders.seats (issue #19, teams item 3)

Revision ID: 0044_org_plan_seats
Revises: 0043_org_space_chats_templates
Create Date: 2026-12-06 19:00:00.000000

Organisation plans are bought like any plan, per seat: an order names the organisation it buys
for and how many seats (its price and credits are the plan's times the seats; the credits go to
the organisation's wallet), and the organisation keeps the seats it paid for, which cap its
members (none bought: no cap).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0044_org_plan_seats"
down_revision = "0043_org_space_chats_templates"
branch_labels = None
# orders come from 0019_billing.
depends_on = ("0019_billing",)


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("seats", sa.Integer(), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("organisation_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("seats", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_orders_organisation_id_organisations"),
            "organisations",
            ["organisation_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_orders_organisation_id"), ["organisation_id"])


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("fk_orders_organisation_id_organisations"), type_="foreignkey")
        batch.drop_index(op.f("ix_orders_organisation_id"))
        batch.drop_column("seats")
        batch.drop_column("organisation_id")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("seats")
