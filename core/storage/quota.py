"""The storage quota as the rest of the app sees it: an interface the Files feature implements
and registers under ``app[STORAGE_QUOTA]`` at setup. The generation pipeline stores prompt
attachments within the owner's quota through it, so it needs no import of the Files feature
(which reads the tables of both files and chat media to count what a user keeps)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession


class StorageQuota(Protocol):
    """Checks that new stored bytes fit in their owner's storage quota."""

    async def check_room(self, user_id: str, size: int, field: str = "file") -> None:
        """Refuse (``PayloadTooLarge``, code ``quota_exceeded``, naming ``field``) ``size`` more
        bytes that would not fit: a first check before anything is read or stored."""

    async def claim_room_in(
        self, session: AsyncSession, user_id: str, size: int, field: str = "file"
    ) -> None:
        """Inside the transaction that records ``size`` new stored bytes: serialise the owner's
        writers and refuse what does not fit (the check that holds under concurrency)."""


STORAGE_QUOTA: web.AppKey[StorageQuota] = web.AppKey("storage_quota", StorageQuota)

#: ``async (session, user_id) -> bytes | None``: the user's storage limit from elsewhere (an
#: active storage plan), or None for the default quota. Whoever sells storage (billing) sets
#: ``app[STORAGE_LIMIT]`` at setup; the quota reads it, so Files never imports billing.
StorageLimit = Callable[[AsyncSession, str], Awaitable[int | None]]
STORAGE_LIMIT: web.AppKey[StorageLimit] = web.AppKey("storage_limit")
