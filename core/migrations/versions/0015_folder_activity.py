"""sharing: folder_activity (a folder's share events, for the feeds of the notes inside it)

Revision ID: 0015_folder_activity
Revises: 0012_sharing
Create Date: 2026-11-27 09:00:00.000000

Until now only shares of a note itself were recorded (document_activity), so a note's feed said
nothing when a folder above it was shared. The existing folder shares are recorded here as they
stand: a "share" event at the time each was made, with its recipient and its current role (a
role changed earlier was never recorded, so it cannot be told apart), and an "unshare" event
at the time each revoked one was revoked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0015_folder_activity"
down_revision = "0012_sharing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    folder_activity = op.create_table(
        "folder_activity",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("folder_id", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_folder_activity_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["folders.id"],
            name=op.f("fk_folder_activity_folder_id_folders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_folder_activity")),
    )
    with op.batch_alter_table("folder_activity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_folder_activity_folder", ["folder_id", "created_at"], unique=False
        )
    assert folder_activity is not None
    _record_existing_shares(folder_activity)


def _record_existing_shares(folder_activity: sa.Table) -> None:
    shares = sa.table(
        "shares",
        sa.column("id", sa.String()),
        sa.column("owner_id", sa.String()),
        sa.column("object_type", sa.String()),
        sa.column("object_id", sa.String()),
        sa.column("recipient_email", sa.String()),
        sa.column("role", sa.String()),
        sa.column("token_hash", sa.String()),
        sa.column("created_at", multinotes.db.UTCDateTime()),
        sa.column("revoked_at", multinotes.db.UTCDateTime()),
    )
    folders = sa.table("folders", sa.column("id", sa.String()), sa.column("user_id", sa.String()))
    rows = (
        op.get_bind()
        .execute(
            sa.select(
                shares.c.id,
                shares.c.owner_id,
                shares.c.object_id,
                shares.c.recipient_email,
                shares.c.role,
                shares.c.token_hash,
                shares.c.created_at,
                shares.c.revoked_at,
            )
            .select_from(
                # Only shares of folders that still exist and still belong to whoever shared them.
                shares.join(
                    folders,
                    sa.and_(
                        folders.c.id == shares.c.object_id, folders.c.user_id == shares.c.owner_id
                    ),
                )
            )
            .where(shares.c.object_type == "folder")
        )
        .all()
    )
    events = []
    for share_id, owner_id, folder_id, email, role, token, created_at, revoked_at in rows:
        detail = {
            "share_id": share_id,
            "public": token is not None,
            "email": email,
            "role": role,
        }
        moments = [("share", created_at)] + ([("unshare", revoked_at)] if revoked_at else [])
        for kind, at in moments:
            events.append(
                {
                    "id": multinotes.db.new_id(),
                    "folder_id": folder_id,
                    "actor_id": owner_id,
                    "kind": kind,
                    "detail": detail,
                    "created_at": at,
                }
            )
    if events:
        op.bulk_insert(folder_activity, events)


def downgrade() -> None:
    op.drop_table("folder_activity")
