"""The storage backend's life: chosen by settings, opened with the app, closed with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from multinotes.keys import SETTINGS
from multinotes.settings import Settings
from multinotes.storage import FILE_STORAGE
from multinotes.storage.backend import LocalStorage, Storage
from multinotes.storage.objects import adopt_legacy_files

log = structlog.get_logger(__name__)

#: A temporary upload file older than this was left by a crash (no upload takes a day).
PARTIAL_UPLOAD_MAX_AGE = 24 * 3600


def make_storage(settings: Settings) -> Storage:
    if settings.storage_backend == "s3":
        from multinotes.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    return LocalStorage(settings.data_dir / "files")


def setup_storage(app: web.Application) -> None:
    """``app[FILE_STORAGE]``, opened with the app and closed with it."""

    async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
        storage = make_storage(app[SETTINGS])
        if isinstance(storage, LocalStorage):
            removed = await asyncio.to_thread(storage.purge_partial, PARTIAL_UPLOAD_MAX_AGE)
            if removed:
                log.info("partial_uploads_removed", count=removed)
        app[FILE_STORAGE] = storage
        # Files an older version kept in the data dir (avatars, media, exports) move in once.
        await adopt_legacy_files(storage, app[SETTINGS].data_dir)
        yield
        close = getattr(storage, "close", None)
        if close is not None:
            await close()

    app.cleanup_ctx.append(storage_ctx)
