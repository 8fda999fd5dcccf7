"""files: generated media and data exports are kept under relative storage keys

Revision ID: 0016_storage_keys
Revises: 0003_workspace
Create Date: 2026-12-06 02:30:00.000000

``message_media.path`` and ``data_exports.path`` held paths on the server's disk (absolute, or
relative to the working directory), so a restore into another data folder, or a second machine,
served 404s. They now hold the object's key in the storage backend: the part of the old path
from its ``media/`` or ``exports/`` folder on (``<data dir>/media/u1/m1.png`` becomes
``media/u1/m1.png``). The files themselves move from the data dir into the storage backend when
the app next starts (``multinotes.storage.objects.adopt_legacy_files``).

There is no way back: the old paths named one machine's folders, which a downgrade cannot know.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import sqlalchemy as sa
from alembic import op

revision = "0016_storage_keys"
down_revision = "0003_workspace"
branch_labels = None
depends_on = "0009_privacy"

FOLDERS = ("media", "exports")


def storage_key(path: str) -> str | None:
    """The key for an old path; None when it is one already or names no known folder.

    (A copy of ``multinotes.storage.objects.key_of``: a migration must not change with the app.)"""
    if path.startswith(tuple(f"{folder}/" for folder in FOLDERS)):
        return None
    parts = PurePosixPath(path).parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] in FOLDERS:
            return "/".join(parts[index:])
    return None


def _rewrite(name: str) -> None:
    table = sa.table(name, sa.column("id", sa.String), sa.column("path", sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(table.c.id, table.c.path).where(table.c.path.is_not(None)))
    for row_id, path in rows.all():
        key = storage_key(path)
        if key is not None:
            connection.execute(table.update().where(table.c.id == row_id).values(path=key))


def upgrade() -> None:
    _rewrite("message_media")
    _rewrite("data_exports")


def downgrade() -> None:
    pass
