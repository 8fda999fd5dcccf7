"""remote_exports.target, note_exports.url: conversations, comparisons and folders sent to
remote destinations (issue #15)

Revision ID: 0030_remote_export_targets
Revises: 0023_connections
Create Date: 2026-12-06 12:00:00.000000

A remote destination (Notion, Google Docs) now takes a conversation, a comparison, an answer and
a folder too, not only a note. ``remote_exports`` remembers what it made per ``target``
(``note:<id>``, ``conversation:<id>``, ``folder:<id>``, ...) instead of per note, with a foreign
key to what the target names (a note, a conversation, a message or a folder) so the row goes with
it; rows made before are the notes' (``note:<document_id>``). ``note_exports.url`` is what a
background export made at the remote destination (it has no file).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030_remote_export_targets"
down_revision = "0023_connections"
branch_labels = None
depends_on = ("0020_note_exports", "0003_workspace", "0010_notes")

TARGETS = (
    ("conversation_id", "conversations"),
    ("message_id", "messages"),
    ("folder_id", "folders"),
)


def upgrade() -> None:
    with op.batch_alter_table("note_exports") as batch:
        batch.add_column(sa.Column("url", sa.String(length=2000), nullable=True))

    with op.batch_alter_table("remote_exports") as batch:
        batch.add_column(sa.Column("target", sa.String(length=80), nullable=True))
        for column, _ in TARGETS:
            batch.add_column(sa.Column(column, sa.String(length=32), nullable=True))
    table = sa.table(
        "remote_exports", sa.column("target", sa.String), sa.column("document_id", sa.String)
    )
    op.execute(
        table.update().values(target=sa.literal("note:", sa.String).concat(table.c.document_id))
    )
    with op.batch_alter_table("remote_exports") as batch:
        batch.alter_column("target", existing_type=sa.String(length=80), nullable=False)
        batch.alter_column("document_id", existing_type=sa.String(length=32), nullable=True)
        # The new unique key first: on MariaDB the old one also indexes connection_id's key.
        batch.create_unique_constraint(
            "uq_remote_exports_connection_target", ["connection_id", "exporter", "target"]
        )
        batch.drop_constraint("uq_remote_exports_connection_id", type_="unique")
        for column, referred in TARGETS:
            batch.create_foreign_key(
                op.f(f"fk_remote_exports_{column}_{referred}"),
                referred,
                [column],
                ["id"],
                ondelete="CASCADE",
            )
            batch.create_index(op.f(f"ix_remote_exports_{column}"), [column], unique=False)


def downgrade() -> None:
    table = sa.table(
        "remote_exports", sa.column("target", sa.String), sa.column("document_id", sa.String)
    )
    # Only a note's own page can be kept in the table as it was.
    op.execute(
        table.delete().where(
            sa.or_(table.c.document_id.is_(None), sa.not_(table.c.target.like("note:%")))
        )
    )
    with op.batch_alter_table("remote_exports") as batch:
        for column, referred in TARGETS:  # the key first: MariaDB's needs its index
            batch.drop_constraint(
                op.f(f"fk_remote_exports_{column}_{referred}"), type_="foreignkey"
            )
            batch.drop_index(op.f(f"ix_remote_exports_{column}"))
        batch.create_unique_constraint(
            "uq_remote_exports_connection_id", ["connection_id", "exporter", "document_id"]
        )
        batch.drop_constraint("uq_remote_exports_connection_target", type_="unique")
        batch.alter_column("document_id", existing_type=sa.String(length=32), nullable=False)
        for column, _ in TARGETS:
            batch.drop_column(column)
        batch.drop_column("target")

    with op.batch_alter_table("note_exports") as batch:
        batch.drop_column("url")
