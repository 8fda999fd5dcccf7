"""The storage quota: every byte a user keeps counts, their files and the media kept with their
chats (prompt attachments, generated images and audio). The chat checks it for attachments and
the Files feature for uploads; both go through here.

The limit is the deploy's default, unless ``app[STORAGE_LIMIT]`` (set by whoever sells storage:
billing's storage plans) gives the user another while their plan is active."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.chat.models import MessageMedia
from multinotes.db import Database
from multinotes.errors import PayloadTooLarge
from multinotes.files.models import File
from multinotes.keys import DB, SETTINGS
from multinotes.models import User
from multinotes.storage.quota import STORAGE_LIMIT


async def quota_in(session: AsyncSession, app: web.Application, user_id: str) -> int:
    """The user's storage quota: an active storage plan's limit, else the default."""
    limit = app.get(STORAGE_LIMIT)
    planned = await limit(session, user_id) if limit is not None else None
    return app[SETTINGS].default_storage_quota_bytes if planned is None else planned


async def quota_of(app: web.Application, user_id: str) -> int:
    async with app[DB].read() as session:
        return await quota_in(session, app, user_id)


async def used_in(session: AsyncSession, user_id: str) -> int:
    """Every stored byte the user owns: their files and the media kept with their chats
    (prompt attachments, generated images and audio)."""
    files = await session.scalar(
        select(func.coalesce(func.sum(File.size), 0)).where(File.user_id == user_id)
    )
    media = await session.scalar(
        select(func.coalesce(func.sum(MessageMedia.size), 0)).where(MessageMedia.user_id == user_id)
    )
    return int(files or 0) + int(media or 0)


async def used_bytes(db: Database, user_id: str) -> int:
    async with db.read() as session:
        return await used_in(session, user_id)


def quota_exceeded(quota: int, used: int, field: str = "file") -> PayloadTooLarge:
    left = max(0, quota - used)
    return PayloadTooLarge(
        f"This upload does not fit in your storage quota ({left} of {quota} bytes left). "
        "Delete files or upgrade your storage plan.",
        code="quota_exceeded",
        fields={field: "exceeds the storage quota"},
    )


async def check_room(app: web.Application, user_id: str, size: int, field: str = "file") -> None:
    """Refuse ``size`` more bytes that would not fit in the owner's quota (a first check, before
    anything is read or stored; ``claim_room_in`` re-checks under the lock)."""
    quota = await quota_of(app, user_id)
    used = await used_bytes(app[DB], user_id)
    if used + size > quota:
        raise quota_exceeded(quota, used, field)


async def claim_room_in(
    session: AsyncSession, app: web.Application, user_id: str, size: int, field: str = "file"
) -> None:
    """Inside the transaction that records ``size`` new stored bytes: lock the owner's row (so
    concurrent writers of this user's bytes take turns) and refuse what does not fit."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    quota = await quota_in(session, app, user_id)
    used = await used_in(session, user_id)
    if used + size > quota:
        raise quota_exceeded(quota, used, field)


class FilesQuota:
    """The quota as ``app[STORAGE_QUOTA]`` (a ``multinotes.storage.StorageQuota``): how the
    pipeline stores prompt attachments within the owner's quota without importing Files."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def check_room(self, user_id: str, size: int, field: str = "file") -> None:
        await check_room(self.app, user_id, size, field)

    async def claim_room_in(
        self, session: AsyncSession, user_id: str, size: int, field: str = "file"
    ) -> None:
        await claim_room_in(session, self.app, user_id, size, field)
