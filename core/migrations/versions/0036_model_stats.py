"""Smart assistance (issue #18 item 7): an index for per-model generation stats; note_details,
note_suggestions and assist_preferences

Revision ID: 0036_model_stats
Revises: 0010_notes
Create Date: 2026-12-06 15:00:00.000000

The catalogue's p50 latency and availability come from ``generations`` (``latency_ms`` is the
first-token latency, ``duration_ms`` the whole answer, ``status`` the outcome), read per model
over the last 7 days: ``ix_generations_model_created`` serves that query. The note tables
reference ``documents`` (0010_notes), which needs ``generations`` (0003_workspace) before it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db

revision = "0036_model_stats"
down_revision = "0010_notes"
branch_labels = None
depends_on = ("0003_workspace",)


def _note_keys(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f(f"fk_{table}_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_index(
        "ix_generations_model_created", "generations", ["model_id", "created_at"], unique=False
    )
    op.create_table(
        "note_details",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("summary", sa.String(length=300), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        *_note_keys("note_details"),
    )
    op.create_index(op.f("ix_note_details_user_id"), "note_details", ["user_id"], unique=False)
    op.create_table(
        "note_suggestions",
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("summary", sa.String(length=300), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=True),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        *_note_keys("note_suggestions"),
    )
    op.create_index(
        op.f("ix_note_suggestions_user_id"), "note_suggestions", ["user_id"], unique=False
    )
    op.create_table(
        "assist_preferences",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("note_suggestions", sa.Boolean(), nullable=False),
        sa.Column("updated_at", multinotes.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_assist_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_assist_preferences")),
    )


def downgrade() -> None:
    op.drop_table("assist_preferences")
    op.drop_index(op.f("ix_note_suggestions_user_id"), table_name="note_suggestions")
    op.drop_table("note_suggestions")
    op.drop_index(op.f("ix_note_details_user_id"), table_name="note_details")
    op.drop_table("note_details")
    op.drop_index("ix_generations_model_created", table_name="generations")
