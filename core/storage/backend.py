"""Where file bytes live: one small interface, a local folder or an S3-compatible store.

``put`` consumes an async iterator of chunks and keeps the object only if the iterator ends
normally: an exception from the iterator (a limit, a refused type, a client gone) discards what
was written, so a half upload never becomes visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024


class Storage(Protocol):
    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Store the chunks under ``key`` atomically; returns the number of bytes."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The object's bytes from ``start`` up to ``end`` (exclusive; None: to the end)."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to the object when the backend has one (for sendfile/Range)."""

    async def delete(self, key: str) -> None:
        """Remove the object; missing objects are not an error."""

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int | None:
        """The object's size, or None if it does not exist."""


class LocalStorage:
    """Objects as files under ``root``; uploads go to ``root/.tmp`` and are renamed in place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") or "\\" in p for p in parts):
            raise ValueError(f"bad storage key {key!r}")
        return self.root.joinpath(*parts)

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        final = self._path(key)
        tmp_dir = self.root / ".tmp"
        await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
        temp = tmp_dir / f"{secrets.token_hex(12)}.part"
        handle = await asyncio.to_thread(open, temp, "wb")
        written = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
                written += len(chunk)
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
            handle.close()
            await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(os.replace, temp, final)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        return written

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._path(key)
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                size = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def purge_partial(self, older_than_seconds: float) -> int:
        """Remove uploads a crash left half written (older than any upload still running)."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for temp in (self.root / ".tmp").glob("*.part"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
        return removed

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def size(self, key: str) -> int | None:
        try:
            stat = await asyncio.to_thread(self._path(key).stat)
        except FileNotFoundError:
            return None
        return stat.st_size
