"""Background jobs of sharing: dropping shares that can no longer grant anything."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import and_, delete, exists, select

from multinotes.chat.models import Conversation
from multinotes.db import rows_affected, utcnow
from multinotes.files.models import File
from multinotes.keys import DB
from multinotes.notes.models import Document, Folder
from multinotes.plugin_host import TaskDef
from multinotes.sharing.models import Share

#: How long a revoked public link keeps answering 410 Gone (after that: 404, like any bad link).
REVOKED_KEPT = timedelta(days=30)
TARGETS: dict[str, type[Document] | type[Folder] | type[File] | type[Conversation]] = {
    "document": Document,
    "folder": Folder,
    "file": File,
    "conversation": Conversation,
}


async def purge_stale_shares(app: web.Application) -> int:
    """Delete shares whose object is gone for good (purged from the trash, deleted) or that
    were revoked more than 30 days ago. Trashed notes and folders keep their shares: restoring
    them brings the access back."""
    removed = 0
    async with app[DB].transaction() as session:
        for object_type, model in TARGETS.items():
            gone = ~exists(select(model.id).where(model.id == Share.object_id))
            result = await session.execute(
                delete(Share)
                .where(and_(Share.object_type == object_type, gone))
                .execution_options(synchronize_session=False)
            )
            removed += rows_affected(result)
        result = await session.execute(
            delete(Share).where(Share.revoked_at < utcnow() - REVOKED_KEPT)
        )
        removed += rows_affected(result)
    return removed


def sharing_tasks() -> list[TaskDef]:
    return [TaskDef("core", "core.purge_stale_shares", purge_stale_shares, "47 3 * * *")]
