"""The storage quota: every byte a user keeps counts, their files and the media kept with their
chats (prompt attachments, generated images and audio). The chat checks it for attachments and
the Files feature for uploads; both go through here.

The limit is the deploy's default, unless ``app[STORAGE_LIMIT]`` (set by whoever sells storage:
billing's storage plans) gives the user another while their plan is active.

A file uploaded in an organisation's space counts against the organisation's quota instead (its
``organisation_id``; the limit an administrator set for it, else the deploy's default for
organisations), and not against its uploader's."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import column, func, select, table
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
    """Every stored byte the user owns in their own space: their files (not those in an
    organisation's space) and the media kept with their chats (prompt attachments, generated
    images and audio)."""
    files = await session.scalar(
        select(func.coalesce(func.sum(File.size), 0)).where(
            File.user_id == user_id, File.organisation_id.is_(None)
        )
    )
    media = await session.scalar(
        select(func.coalesce(func.sum(MessageMedia.size), 0)).where(MessageMedia.user_id == user_id)
    )
    return int(files or 0) + int(media or 0)


async def used_bytes(db: Database, user_id: str) -> int:
    async with db.read() as session:
        return await used_in(session, user_id)


def quota_exceeded(
    quota: int, used: int, field: str = "file", *, organisation: bool = False
) -> PayloadTooLarge:
    left = max(0, quota - used)
    if organisation:
        message = (
            f"This upload does not fit in the organisation's storage quota ({left} of {quota} "
            "bytes left). Delete files in its space or ask an administrator for more."
        )
    else:
        message = (
            f"This upload does not fit in your storage quota ({left} of {quota} bytes left). "
            "Delete files or upgrade your storage plan."
        )
    return PayloadTooLarge(
        message, code="quota_exceeded", fields={field: "exceeds the storage quota"}
    )


# The organisation's row, named here rather than imported: Files sits below organisations.
_organisations = table("organisations", column("id"), column("storage_quota_bytes"))


async def organisation_quota_in(
    session: AsyncSession, app: web.Application, organisation_id: str
) -> int:
    """The organisation's storage quota: what an administrator set, else the default."""
    chosen = await session.scalar(
        select(_organisations.c.storage_quota_bytes).where(_organisations.c.id == organisation_id)
    )
    if chosen is None:
        return app[SETTINGS].default_organisation_storage_quota_bytes
    return int(chosen)


async def organisation_used_in(session: AsyncSession, organisation_id: str) -> int:
    """Bytes of the files in the organisation's space, whoever uploaded them."""
    used = await session.scalar(
        select(func.coalesce(func.sum(File.size), 0)).where(File.organisation_id == organisation_id)
    )
    return int(used or 0)


async def space_usage(
    app: web.Application, user_id: str, organisation_id: str | None
) -> tuple[int, int]:
    """(quota, used) of the space an upload goes to: the user's own, or the organisation's."""
    async with app[DB].read() as session:
        if organisation_id is not None:
            return (
                await organisation_quota_in(session, app, organisation_id),
                await organisation_used_in(session, organisation_id),
            )
        return await quota_in(session, app, user_id), await used_in(session, user_id)


async def claim_space_in(
    session: AsyncSession,
    app: web.Application,
    user_id: str,
    size: int,
    organisation_id: str | None,
    field: str = "file",
) -> None:
    """``claim_room_in`` for the space an upload goes to: in an organisation's, lock the
    organisation's row (its members' concurrent uploads take turns) and check its quota."""
    if organisation_id is None:
        await claim_room_in(session, app, user_id, size, field)
        return
    await session.execute(
        select(_organisations.c.id).where(_organisations.c.id == organisation_id).with_for_update()
    )
    quota = await organisation_quota_in(session, app, organisation_id)
    used = await organisation_used_in(session, organisation_id)
    if used + size > quota:
        raise quota_exceeded(quota, used, field, organisation=True)


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
