"""conversations and prompt_templates .organisation_id (issue #19, teams item 4)

Revision ID: 0043_org_space_chats_templates
Revises: 0037_org_spaces
Create Date: 2026-12-06 18:40:00.000000

Conversations and prompt templates can belong to an organisation's space, as folders and notes
already do (``0037_org_spaces``): its members see them by role. When the organisation goes, they
go back to the space of the person who made them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0043_org_space_chats_templates"
down_revision = "0037_org_spaces"
branch_labels = None
# conversations (0003_workspace) and prompt_templates (0026_prompt_library) gain a column.
depends_on = ("0003_workspace", "0026_prompt_library")
SPACE_TABLES = ("conversations", "prompt_templates")


def upgrade() -> None:
    for name in SPACE_TABLES:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("organisation_id", sa.String(length=32), nullable=True))
            batch.create_foreign_key(
                op.f(f"fk_{name}_organisation_id_organisations"),
                "organisations",
                ["organisation_id"],
                ["id"],
                ondelete="SET NULL",
            )
            batch.create_index(op.f(f"ix_{name}_organisation_id"), ["organisation_id"])


def downgrade() -> None:
    # The foreign key first: MySQL will not drop an index a foreign key needs.
    for name in SPACE_TABLES:
        with op.batch_alter_table(name) as batch:
            batch.drop_constraint(
                op.f(f"fk_{name}_organisation_id_organisations"), type_="foreignkey"
            )
            batch.drop_index(op.f(f"ix_{name}_organisation_id"))
            batch.drop_column("organisation_id")
