"""organisations, organisation_members, organisation_invitations, organisation_wallets; an
organisation's entries and holds in ledger_entries and reservations (issue #19)

Revision ID: 0031_organisations
Revises: 0003_workspace
Create Date: 2026-12-06 12:00:00.000000

Organisations (teams) with roles and email invitations, and their shared wallet: the wallet row
in organisation_wallets, its ledger entries and reservations marked with organisation_id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0031_organisations"
down_revision = "0003_workspace"
branch_labels = None
depends_on = None


def _users_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete=ondelete
    )


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organisation_id"],
        ["organisations.id"],
        name=op.f(f"fk_{table}_organisation_id_organisations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        _users_fk("organisations", "owner_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_index(op.f("ix_organisations_owner_id"), "organisations", ["owner_id"])
    op.create_table(
        "organisation_members",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("monthly_limit", sa.BigInteger(), nullable=True),
        sa.Column("joined_at", multinotes.db.UTCDateTime(), nullable=False),
        _org_fk("organisation_members"),
        _users_fk("organisation_members", "user_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_members")),
        sa.UniqueConstraint("organisation_id", "user_id", name="uq_organisation_members_org_user"),
    )
    op.create_index("ix_organisation_members_user_id", "organisation_members", ["user_id"])
    op.create_table(
        "organisation_invitations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("invited_by", sa.String(length=32), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("sent_at", multinotes.db.UTCDateTime(), nullable=True),
        sa.Column("expires_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("accepted_by", sa.String(length=32), nullable=True),
        sa.Column("accepted_at", multinotes.db.UTCDateTime(), nullable=True),
        _org_fk("organisation_invitations"),
        _users_fk("organisation_invitations", "invited_by", "SET NULL"),
        _users_fk("organisation_invitations", "accepted_by", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_organisation_invitations_token_hash")),
    )
    op.create_index(
        "ix_organisation_invitations_org_email",
        "organisation_invitations",
        ["organisation_id", "email"],
    )
    op.create_table(
        "organisation_wallets",
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        _org_fk("organisation_wallets"),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_organisation_wallets")),
    )
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("organisation_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_ledger_entries_organisation_id_organisations"),
            "organisations",
            ["organisation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(
            "ix_ledger_entries_org_user_created", ["organisation_id", "user_id", "created_at"]
        )
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("organisation_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_reservations_organisation_id_organisations"),
            "organisations",
            ["organisation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_reservations_organisation_id"), ["organisation_id"])


def downgrade() -> None:
    # The foreign key first: MySQL will not drop an index a foreign key needs.
    with op.batch_alter_table("reservations") as batch:
        batch.drop_constraint(
            op.f("fk_reservations_organisation_id_organisations"), type_="foreignkey"
        )
        batch.drop_index(op.f("ix_reservations_organisation_id"))
        batch.drop_column("organisation_id")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_constraint(
            op.f("fk_ledger_entries_organisation_id_organisations"), type_="foreignkey"
        )
        batch.drop_index("ix_ledger_entries_org_user_created")
        batch.drop_column("organisation_id")
    # Dropping a table drops its indexes (MySQL refuses to drop one a foreign key needs first).
    op.drop_table("organisation_wallets")
    op.drop_table("organisation_invitations")
    op.drop_table("organisation_members")
    op.drop_table("organisations")
