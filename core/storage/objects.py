"""Every user file the app writes, kept in the storage backend (``app[FILE_STORAGE]``: a local
folder or an S3-compatible store) under a relative key, never an absolute path: a restore into
another data folder, or a second machine behind a load balancer, finds the same objects.

Keys, next to the uploads' ``<user id>/<file id>``:

- ``media/<user id>/<media id>.<ext>``: images and audio a model made, and prompt attachments;
- ``avatars/<avatar id>.png``: profile pictures;
- ``exports/<user id>/<export id>.zip``: "download your data" archives.

Before keys, these lived under ``<data dir>/media``, ``<data dir>/avatars`` and
``<data dir>/exports`` and the database held absolute paths; migration 0016 rewrote the paths
to keys and ``adopt_legacy_files`` moves the files into the storage backend at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import structlog
from aiohttp import web

from multinotes.errors import NotFound
from multinotes.storage import FILE_STORAGE
from multinotes.storage.backend import CHUNK, LocalStorage, Storage

log = structlog.get_logger(__name__)

#: Folders of the data dir that held user files before they went through the storage backend.
LEGACY_FOLDERS = ("media", "avatars", "exports")


def storage_of(app: web.Application) -> Storage:
    return app[FILE_STORAGE]


def media_key(user_id: str, media_id: str, extension: str) -> str:
    return f"media/{user_id}/{media_id}.{extension}"


def avatar_key(avatar_id: str) -> str:
    return f"avatars/{avatar_id}.png"


def export_key(user_id: str, export_id: str) -> str:
    return f"exports/{user_id}/{export_id}.zip"


def key_of(stored: str) -> str:
    """The storage key a row holds. An old path the migration did not see (a row an old
    process wrote during the upgrade) maps to its key the way migration 0016 maps them."""
    if stored.startswith(tuple(f"{folder}/" for folder in LEGACY_FOLDERS)):
        return stored
    parts = PurePosixPath(stored).parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] in LEGACY_FOLDERS:
            return "/".join(parts[index:])
    return stored


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


async def put_bytes(storage: Storage, key: str, data: bytes) -> None:
    await storage.put(key, chunks_of(data))


async def read_bytes(storage: Storage, key: str) -> bytes:
    """The whole object; NotFound when it is missing."""
    if await storage.size(key) is None:
        raise NotFound("No such file.")
    return b"".join([chunk async for chunk in storage.read(key)])


async def put_file(storage: Storage, key: str, path: Path) -> int:
    """Upload a local file (built on scratch disk, such as an export's zip) as ``key``."""

    async def chunks() -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    return await storage.put(key, chunks())


async def serve(
    request: web.Request, storage: Storage, key: str, headers: dict[str, str]
) -> web.StreamResponse:
    """The object as a response: ``sendfile`` with Range from a local folder, streamed from
    an object store. Raises NotFound when the object is missing."""
    path = storage.local_path(key)
    if path is not None:
        if not await asyncio.to_thread(path.is_file):
            raise NotFound("No such file.")
        return web.FileResponse(path, headers=headers)
    size = await storage.size(key)
    if size is None:
        raise NotFound("No such file.")
    response = web.StreamResponse(headers=headers)
    response.content_length = size
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in storage.read(key):
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete_all(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        try:
            await storage.delete(key_of(key))
        except ValueError:  # not a key (a path outside the known folders): nothing of ours
            log.warning("stored_object_not_deleted", key=key)


async def adopt_legacy_files(storage: Storage, data_dir: Path) -> int:
    """Move files from the data dir's old folders into the storage backend under their keys
    (a rename for a local backend, an upload for S3); returns how many moved. Idempotent and
    safe to run in several processes at once: a file another process moved is skipped."""
    moved = 0
    for folder in LEGACY_FOLDERS:
        root = data_dir / folder
        if not await asyncio.to_thread(root.is_dir):
            continue
        files = await asyncio.to_thread(_files_under, root)
        for path in files:
            relative = path.relative_to(data_dir)
            if path.name.startswith("."):  # an export's partial zip: scratch, not a user file
                continue
            key = "/".join(relative.parts)  # what migration 0016 wrote into the rows
            try:
                if isinstance(storage, LocalStorage):
                    target = storage.local_path(key)
                    assert target is not None
                    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
                    await asyncio.to_thread(os.replace, path, target)
                else:
                    await put_file(storage, key, path)
                    await asyncio.to_thread(path.unlink)
            except FileNotFoundError:
                continue
            moved += 1
        with contextlib.suppress(OSError):
            await asyncio.to_thread(_remove_empty_dirs, root)
    if moved:
        log.info("legacy_files_adopted", count=moved)
    return moved


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def _remove_empty_dirs(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
    if root.name != "exports":  # exports/ stays: export builds keep their scratch files there
        root.rmdir()
