"""notes: folders, documents, versions

Revision ID: 0010_notes
Revises: 0001_core
Create Date: 2026-11-26 02:46:04.542426
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import multinotes.db  # noqa: F401 - custom column types
from sqlalchemy.dialects import mysql

revision = '0010_notes'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('folders',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_key', sa.String(length=32), nullable=False),
    sa.Column('name_key', sa.String(length=200), nullable=False),
    sa.Column('live_key', sa.String(length=32), nullable=False),
    sa.Column('deleted_at', multinotes.db.UTCDateTime(), nullable=True),
    sa.Column('trash_root', sa.String(length=32), nullable=True),
    sa.Column('created_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['folders.id'], name=op.f('fk_folders_parent_id_folders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_folders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_folders')),
    sa.UniqueConstraint('user_id', 'parent_key', 'name_key', 'live_key', name=op.f('uq_folders_user_id'))
    )
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_folders_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index('ix_folders_user_deleted', ['user_id', 'deleted_at'], unique=False)

    op.create_table('documents',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('folder_id', sa.String(length=32), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('content', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('provenance', sa.JSON(), nullable=True),
    sa.Column('deleted_at', multinotes.db.UTCDateTime(), nullable=True),
    sa.Column('trash_root', sa.String(length=32), nullable=True),
    sa.Column('created_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['folder_id'], ['folders.id'], name=op.f('fk_documents_folder_id_folders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_documents_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_folder_id'), ['folder_id'], unique=False)
        batch_op.create_index('ix_documents_user_deleted', ['user_id', 'deleted_at'], unique=False)
        batch_op.create_index('ix_documents_user_folder_updated', ['user_id', 'folder_id', 'updated_at'], unique=False)

    op.create_table('document_versions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('document_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('content', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=True),
    sa.Column('created_at', multinotes.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_document_versions_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_document_versions_document_id_documents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_document_versions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_versions')),
    sa.UniqueConstraint('document_id', 'version', name=op.f('uq_document_versions_document_id'))
    )
    with op.batch_alter_table('document_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_versions_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('document_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_versions_user_id'))

    op.drop_table('document_versions')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_user_folder_updated')
        batch_op.drop_index('ix_documents_user_deleted')
        batch_op.drop_index(batch_op.f('ix_documents_folder_id'))

    op.drop_table('documents')
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.drop_index('ix_folders_user_deleted')
        batch_op.drop_index(batch_op.f('ix_folders_parent_id'))

    op.drop_table('folders')
