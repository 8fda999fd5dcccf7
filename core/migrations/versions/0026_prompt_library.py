"""prompt_templates and their tags, shares, favourites and uses: the prompt library (issue #18)

Revision ID: 0026_prompt_library
Revises: 0001_core
Create Date: 2026-12-06 09:40:00.000000

Reusable prompts with typed ``{{variables}}``, a system prompt and preferred models; private,
shared with people or public to the instance. A use is a row (not a counter) so "trending" is a
count over the last seven days.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0026_prompt_library"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def _template_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["template_id"],
        ["prompt_templates.id"],
        name=op.f(f"fk_{table}_template_id_prompt_templates"),
        ondelete="CASCADE",
    )


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("preferred_models", sa.JSON(), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_prompt_templates_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_templates")),
    )
    op.create_index(
        op.f("ix_prompt_templates_owner_id"), "prompt_templates", ["owner_id"], unique=False
    )
    op.create_index(
        "ix_prompt_templates_visibility", "prompt_templates", ["visibility"], unique=False
    )
    op.create_table(
        "prompt_template_tags",
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=40), nullable=False),
        _template_fk("prompt_template_tags"),
        sa.PrimaryKeyConstraint("template_id", "tag", name=op.f("pk_prompt_template_tags")),
    )
    op.create_index(
        op.f("ix_prompt_template_tags_tag"), "prompt_template_tags", ["tag"], unique=False
    )
    for table in ("prompt_template_shares", "prompt_template_favourites"):
        op.create_table(
            table,
            sa.Column("template_id", sa.String(length=32), nullable=False),
            sa.Column("user_id", sa.String(length=32), nullable=False),
            sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
            _template_fk(table),
            _user_fk(table),
            sa.PrimaryKeyConstraint("template_id", "user_id", name=op.f(f"pk_{table}")),
        )
        op.create_index(op.f(f"ix_{table}_user_id"), table, ["user_id"], unique=False)
    op.create_table(
        "prompt_template_uses",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("used_at", multinotes.db.UTCDateTime(), nullable=False),
        _template_fk("prompt_template_uses"),
        _user_fk("prompt_template_uses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_template_uses")),
    )
    op.create_index(
        "ix_prompt_template_uses_template_id_used_at",
        "prompt_template_uses",
        ["template_id", "used_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_prompt_template_uses_user_id"), "prompt_template_uses", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("prompt_template_uses")
    op.drop_table("prompt_template_favourites")
    op.drop_table("prompt_template_shares")
    op.drop_table("prompt_template_tags")
    op.drop_table("prompt_templates")
