"""Background jobs of the notes: emptying the trash of what is older than 30 days."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from multinotes.keys import DB
from multinotes.notes.service import purge_trash
from multinotes.plugin_host import TaskDef


async def purge_notes_trash(app: web.Application, cutoff: datetime | None = None) -> int:
    """Delete folders and documents trashed more than 30 days ago (or before ``cutoff``)."""
    return await purge_trash(app[DB], cutoff)


def notes_tasks() -> list[TaskDef]:
    return [TaskDef("core", "core.purge_notes_trash", purge_notes_trash, "37 3 * * *")]
