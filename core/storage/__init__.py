"""Where user bytes live, below every feature: the storage backend (a local folder or an
S3-compatible store, ``app[FILE_STORAGE]``), the relative keys user objects are kept under, and
the storage quota's interface (``app[STORAGE_QUOTA]``).

Uploads, generated media, avatars and data exports all keep their bytes here, so the features
that write them (files, chat, identity, privacy, note exports) share this package instead of
importing one another. What counts against the quota is the Files feature's business (it knows
every table that holds stored bytes); it registers its ``StorageQuota`` at app setup and the
generation pipeline checks attachments through it without importing Files.
"""

from __future__ import annotations

from aiohttp import web

from multinotes.storage.backend import CHUNK, LocalStorage, Storage
from multinotes.storage.quota import STORAGE_LIMIT, STORAGE_QUOTA, StorageLimit, StorageQuota

#: The app's storage backend, opened with the app (``setup_storage``) and closed with it.
FILE_STORAGE: web.AppKey[Storage] = web.AppKey("file_storage", Storage)

__all__ = [
    "CHUNK",
    "FILE_STORAGE",
    "STORAGE_LIMIT",
    "STORAGE_QUOTA",
    "LocalStorage",
    "Storage",
    "StorageLimit",
    "StorageQuota",
]
