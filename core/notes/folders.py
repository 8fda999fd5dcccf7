"""Filing something of one's own (a note, a file) in one of one's own folders."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.errors import NotFound
from multinotes.notes.models import Folder

NO_SUCH_FOLDER = "No such folder."


async def own_folder_in(session: AsyncSession, user_id: str, folder_id: str) -> Folder:
    """A live folder of the user's own, to file something of theirs in: a folder shared with
    them is someone else's tree, and it answers like one that does not exist (404 naming the
    ``folder_id`` field)."""
    folder = await session.scalar(
        select(Folder).where(
            Folder.id == folder_id, Folder.user_id == user_id, Folder.deleted_at.is_(None)
        )
    )
    if folder is None:
        raise NotFound(NO_SUCH_FOLDER, fields={"folder_id": NO_SUCH_FOLDER})
    return folder
