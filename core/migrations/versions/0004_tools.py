"""tools on the home screen (defaults are seeded lazily by multinotes.tools)

Revision ID: 0004_tools
Revises: 0001_core
Create Date: 2026-11-26 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db  # noqa: F401 - custom column types


revision = '0004_tools'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tools',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('capability', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('model_ids', sa.JSON(), nullable=True),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('updated_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tools'))
    )


def downgrade() -> None:
    op.drop_table('tools')
