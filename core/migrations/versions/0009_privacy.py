"""privacy: data exports and account deletions

Revision ID: 0009_privacy
Revises: 0001_core
Create Date: 2026-11-26 03:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db  # noqa: F401 - custom column types


revision = '0009_privacy'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_exports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.SmallInteger(), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('created_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', multinotes.db.UTCDateTime(), nullable=True),
    sa.Column('expires_at', multinotes.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_data_exports_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_exports'))
    )
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.create_index('ix_data_exports_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_data_exports_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table('account_deletions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.Column('purge_after', multinotes.db.UTCDateTime(), nullable=False),
    sa.Column('cancel_token_hash', sa.String(length=64), nullable=True),
    sa.Column('deleted_at', multinotes.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_account_deletions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_deletions')),
    sa.UniqueConstraint('cancel_token_hash', name=op.f('uq_account_deletions_cancel_token_hash')),
    sa.UniqueConstraint('user_id', name=op.f('uq_account_deletions_user_id'))
    )
    with op.batch_alter_table('account_deletions', schema=None) as batch_op:
        batch_op.create_index('ix_account_deletions_status_purge', ['status', 'purge_after'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account_deletions', schema=None) as batch_op:
        batch_op.drop_index('ix_account_deletions_status_purge')

    op.drop_table('account_deletions')
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.drop_index('ix_data_exports_user_created')
        batch_op.drop_index('ix_data_exports_expires_at')

    op.drop_table('data_exports')
