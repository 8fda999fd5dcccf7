"""organisation_domains, organisation_join_offers; organisations.join_policy and
storage_quota_bytes; files, folders and documents .organisation_id (issue #19, teams items 2-4)

Revision ID: 0037_org_spaces
Revises: 0031_organisations
Create Date: 2026-12-06 15:00:00.000000

Email domains an organisation claims (proved by a DNS TXT record or set by an administrator),
the offers to join it made to people who verify an address on one, whether such people join at
once or are offered to, the organisation's storage quota, and which organisation's quota an
uploaded file counts against, and which organisation's space a folder or note belongs to.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0037_org_spaces"
down_revision = "0031_organisations"
branch_labels = None
# files (0011_files), folders and documents (0010_notes) gain a column.
depends_on = ("0011_files", "0010_notes")
#: Tables that can belong to an organisation's space, and what happens when it goes.
SPACE_TABLES = (("files", "SET NULL"), ("folders", "SET NULL"), ("documents", "SET NULL"))


def _org_fk(table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organisation_id"],
        ["organisations.id"],
        name=op.f(f"fk_{table}_organisation_id_organisations"),
        ondelete=ondelete,
    )


def _users_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete=ondelete
    )


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(
            sa.Column("join_policy", sa.String(length=8), nullable=False, server_default="offer")
        )
        batch.add_column(sa.Column("storage_quota_bytes", sa.BigInteger(), nullable=True))
    op.create_table(
        "organisation_domains",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("verified_domain", sa.String(length=253), nullable=True),
        sa.Column("verified_by", sa.String(length=8), nullable=True),
        sa.Column("verified_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        _org_fk("organisation_domains"),
        _users_fk("organisation_domains", "created_by", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_domains")),
        sa.UniqueConstraint("organisation_id", "domain", name="uq_organisation_domains_org_domain"),
        sa.UniqueConstraint(
            "verified_domain", name=op.f("uq_organisation_domains_verified_domain")
        ),
    )
    op.create_table(
        "organisation_join_offers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("decided_at", multinotes.db.UTCDateTime(), nullable=True),
        _org_fk("organisation_join_offers"),
        _users_fk("organisation_join_offers", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_join_offers")),
        sa.UniqueConstraint(
            "organisation_id", "user_id", name="uq_organisation_join_offers_org_user"
        ),
    )
    op.create_index(
        "ix_organisation_join_offers_user_status",
        "organisation_join_offers",
        ["user_id", "status"],
    )
    for name, ondelete in SPACE_TABLES:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("organisation_id", sa.String(length=32), nullable=True))
            batch.create_foreign_key(
                op.f(f"fk_{name}_organisation_id_organisations"),
                "organisations",
                ["organisation_id"],
                ["id"],
                ondelete=ondelete,
            )
            batch.create_index(op.f(f"ix_{name}_organisation_id"), ["organisation_id"])


def downgrade() -> None:
    # The foreign key first: MySQL will not drop an index a foreign key needs.
    for name, _ in SPACE_TABLES:
        with op.batch_alter_table(name) as batch:
            batch.drop_constraint(
                op.f(f"fk_{name}_organisation_id_organisations"), type_="foreignkey"
            )
            batch.drop_index(op.f(f"ix_{name}_organisation_id"))
            batch.drop_column("organisation_id")
    op.drop_table("organisation_join_offers")
    op.drop_table("organisation_domains")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("storage_quota_bytes")
        batch.drop_column("join_policy")
