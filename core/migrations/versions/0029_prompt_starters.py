"""prompt_templates.builtin_key, owner_id nullable: the built-in starter templates (issue #18)

Revision ID: 0029_prompt_starters
Revises: 0026_prompt_library
Create Date: 2026-12-06 11:45:00.000000

The starter templates an install begins with belong to nobody (``owner_id`` NULL, public) and
carry the key of the starter they were seeded from, so seeding is idempotent (the unique key)
and a starter an admin deleted is not brought back (``multinotes.prompts.starters``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029_prompt_starters"
down_revision = "0026_prompt_library"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prompt_templates") as batch:
        batch.alter_column("owner_id", existing_type=sa.String(length=32), nullable=True)
        batch.add_column(sa.Column("builtin_key", sa.String(length=60), nullable=True))
        batch.create_unique_constraint(op.f("uq_prompt_templates_builtin_key"), ["builtin_key"])


def downgrade() -> None:
    op.execute("DELETE FROM prompt_templates WHERE owner_id IS NULL")
    with op.batch_alter_table("prompt_templates") as batch:
        batch.drop_constraint(op.f("uq_prompt_templates_builtin_key"), type_="unique")
        batch.drop_column("builtin_key")
        batch.alter_column("owner_id", existing_type=sa.String(length=32), nullable=False)
