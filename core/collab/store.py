"""Where a note's shared editing state lives while people edit it, so every web process holding
a room for the note starts from the same document.

A Yjs document merges updates by the ids of the pieces of text they carry, so two processes must
never seed the same note independently with different ids, or the text would appear twice. The
store keeps, per note:

- ``base``: the note version the document was seeded from (its *epoch*: a tab that reconnects to
  a document of another epoch starts afresh instead of merging into it);
- ``saved``: the latest version written from the document (a room opening on a note whose
  version is not this one seeds again from the note: the note was changed outside the room);
- ``log``: every update since the seed (the seed first), compacted to one after saves.

Production keeps it in Redis (``<prefix>collab:<note>:*``, expiring a day after the last edit),
with which processes have a room open on the note (a hash of process -> expiry), so the REST
API can refuse to overwrite a note being edited live. Embedded mode keeps it in this process.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Seconds the Redis state outlives the last update.
KEEP = 86400
#: Seconds a process's "room open" mark lasts unless refreshed (it refreshes every few seconds).
OPEN_TTL = 15.0


@dataclass
class Snapshot:
    base: int
    saved: int
    updates: list[bytes] = field(default_factory=list)


class Store:
    """In this process (embedded mode)."""

    def __init__(self) -> None:
        self._states: dict[str, Snapshot] = {}
        self._open: dict[str, dict[str, float]] = defaultdict(dict)

    async def load(self, note_id: str) -> Snapshot | None:
        found = self._states.get(note_id)
        if found is None:
            return None
        return Snapshot(found.base, found.saved, list(found.updates))

    async def seed(self, note_id: str, version: int, update: bytes) -> None:
        self._states[note_id] = Snapshot(version, version, [update])

    async def append(self, note_id: str, update: bytes) -> None:
        held = self._states.get(note_id)
        if held is not None:
            held.updates.append(update)

    async def saved(self, note_id: str, version: int) -> None:
        held = self._states.get(note_id)
        if held is not None:
            held.saved = version

    async def compact(self, note_id: str, merge: Callable[[list[bytes]], bytes]) -> None:
        """Replace the log by one update holding all of it (``merge`` of its updates)."""
        held = self._states.get(note_id)
        if held is not None and len(held.updates) > 1:
            count = len(held.updates)
            held.updates[:count] = [merge(held.updates)]

    async def length(self, note_id: str) -> int:
        held = self._states.get(note_id)
        return len(held.updates) if held is not None else 0

    async def forget(self, note_id: str) -> None:
        """Nobody edits the note any more (only called when no process has it open)."""
        self._states.pop(note_id, None)

    async def mark_open(self, note_id: str, process: str) -> None:
        self._open[note_id][process] = time.time() + OPEN_TTL

    async def mark_closed(self, note_id: str, process: str) -> None:
        held = self._open.get(note_id)
        if held is not None:
            held.pop(process, None)
            if not held:
                del self._open[note_id]

    async def is_open(self, note_id: str) -> bool:
        now = time.time()
        return any(until > now for until in self._open.get(note_id, {}).values())


def _b64(update: bytes) -> str:
    return base64.b64encode(update).decode()


class RedisStore(Store):
    """The same in Redis, shared by every web process. Updates are base64 (the client decodes
    responses as text)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        super().__init__()
        self._redis = redis
        self._prefix = prefix + "collab:"

    def _key(self, note_id: str, part: str) -> str:
        return f"{self._prefix}{note_id}:{part}"

    async def load(self, note_id: str) -> Snapshot | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key(note_id, "base"))
            pipe.get(self._key(note_id, "saved"))
            pipe.lrange(self._key(note_id, "log"), 0, -1)
            base, saved, raw = await pipe.execute()
        if base is None or saved is None or not raw:
            return None
        return Snapshot(int(base), int(saved), [base64.b64decode(item) for item in raw])

    async def seed(self, note_id: str, version: int, update: bytes) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(note_id, "log"))
            pipe.rpush(self._key(note_id, "log"), _b64(update))
            pipe.set(self._key(note_id, "base"), version, ex=KEEP)
            pipe.set(self._key(note_id, "saved"), version, ex=KEEP)
            pipe.expire(self._key(note_id, "log"), KEEP)
            await pipe.execute()

    async def append(self, note_id: str, update: bytes) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._key(note_id, "log"), _b64(update))
            for part in ("log", "base", "saved"):
                pipe.expire(self._key(note_id, part), KEEP)
            await pipe.execute()

    async def saved(self, note_id: str, version: int) -> None:
        await self._redis.set(self._key(note_id, "saved"), version, ex=KEEP)

    async def compact(self, note_id: str, merge: Callable[[list[bytes]], bytes]) -> None:
        # One process compacts at a time, from reading to trimming: two trimming the same head
        # would drop newer updates. What is appended meanwhile stays after the merged head.
        lock = self._key(note_id, "compacting")
        if not await self._redis.set(lock, "1", nx=True, ex=10):
            return
        try:
            raw = await self._redis.lrange(self._key(note_id, "log"), 0, -1)
            if len(raw) <= 1:
                return
            count = len(raw)
            state = merge([base64.b64decode(item) for item in raw])
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.ltrim(self._key(note_id, "log"), count, -1)
                pipe.lpush(self._key(note_id, "log"), _b64(state))
                await pipe.execute()
        finally:
            await self._redis.delete(lock)

    async def length(self, note_id: str) -> int:
        return int(await self._redis.llen(self._key(note_id, "log")))

    async def forget(self, note_id: str) -> None:
        """Kept: another process may still open the note; the keys expire by themselves."""

    async def mark_open(self, note_id: str, process: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(note_id, "open"), process, time.time() + OPEN_TTL)
            pipe.expire(self._key(note_id, "open"), int(OPEN_TTL * 2))
            await pipe.execute()

    async def mark_closed(self, note_id: str, process: str) -> None:
        await self._redis.hdel(self._key(note_id, "open"), process)

    async def is_open(self, note_id: str) -> bool:
        now = time.time()
        marks = await self._redis.hgetall(self._key(note_id, "open"))
        return any(float(until) > now for until in marks.values())
