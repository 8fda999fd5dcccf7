"""Per-user fan-out of live events, and the short history a reconnecting tab resumes from.

``Hub.publish(user_id, type, data)`` gives the event the user's next id, keeps it in that user's
ring (the last ``RING_SIZE`` events, for ``RING_SECONDS``) and sends it on the bus; every
process delivers what it hears to its own connections of that user. In production the ring and
the id counter live in Redis, so a tab that reconnects to another web process resumes all the
same; in embedded mode everything is in this process.

Ids are per user and increase (``"1"``, ``"2"``, ...): a connection that says which one it saw
last gets what came after it; one whose id fell out of the ring gets ``live.reset`` (reload what
you show) instead of a silent gap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import structlog

from multinotes.bus import Bus

log = structlog.get_logger(__name__)

#: The bus channel: ``{"user": id, "event": {"id", "type", "data"}}``.
CHANNEL = "live.event"
RING_SIZE = 100
RING_SECONDS = 300
#: Events waiting for one slow connection before it is dropped (it resumes on reconnect).
QUEUE_SIZE = 256


@dataclass(eq=False)  # compared (and hashed) by identity: one per open tab
class Connection:
    """One open tab (WebSocket or SSE) of one user in this process."""

    user_id: str
    queue: asyncio.Queue[dict[str, Any] | None]
    #: The highest event id sent on it: a backlog and a live event may both carry one.
    last_id: int = 0

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end()  # too slow to keep up: the client reconnects and resumes

    def end(self) -> None:
        """Close it: whatever waits in its queue is dropped, then None (the end)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Ring:
    """The per-user id counter and recent events: in memory (embedded mode)."""

    def __init__(self) -> None:
        self._seq: dict[str, int] = defaultdict(int)
        self._events: dict[str, deque[tuple[float, dict[str, Any]]]] = defaultdict(
            lambda: deque(maxlen=RING_SIZE)
        )

    async def append(self, user_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        self._seq[user_id] += 1
        event = {"id": str(self._seq[user_id]), "type": type_, "data": data}
        self._events[user_id].append((time.monotonic(), event))
        return event

    async def current(self, user_id: str) -> int:
        """The id of the user's latest event (0 before the first)."""
        return self._seq.get(user_id, 0)

    async def since(self, user_id: str, last_id: int) -> list[dict[str, Any]] | None:
        """Events after ``last_id``, oldest first; None when some of them are gone."""
        horizon = time.monotonic() - RING_SECONDS
        kept = [e for at, e in self._events.get(user_id, ()) if at >= horizon]
        return _after(kept, last_id, self._seq.get(user_id, 0))


class RedisRing(Ring):
    """The same in Redis: ``<prefix>live:<user>:seq`` and a list ``<prefix>live:<user>:ring``."""

    def __init__(self, redis: Any, prefix: str) -> None:
        super().__init__()
        self._redis = redis
        self._prefix = prefix + "live:"

    async def append(self, user_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        base = self._prefix + user_id
        seq = int(await self._redis.incr(base + ":seq"))
        event = {"id": str(seq), "type": type_, "data": data}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(base + ":ring", json.dumps(event))
            pipe.ltrim(base + ":ring", 0, RING_SIZE - 1)
            pipe.expire(base + ":ring", RING_SECONDS)
            # The counter outlives the ring by far, so ids never restart under a tab's feet.
            pipe.expire(base + ":seq", 30 * 86400)
            await pipe.execute()
        return event

    async def current(self, user_id: str) -> int:
        return int(await self._redis.get(self._prefix + user_id + ":seq") or 0)

    async def since(self, user_id: str, last_id: int) -> list[dict[str, Any]] | None:
        base = self._prefix + user_id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(base + ":seq")
            pipe.lrange(base + ":ring", 0, RING_SIZE - 1)
            seq, raw = await pipe.execute()
        events = []
        for item in raw:
            try:
                events.append(json.loads(item))
            except ValueError:
                continue
        # Two processes may push concurrently, so the list is not strictly in id order.
        events.sort(key=lambda e: int(e["id"]))
        return _after(events, last_id, int(seq or 0))


def _after(events: list[dict[str, Any]], last_id: int, seq: int) -> list[dict[str, Any]] | None:
    if last_id >= seq:
        return [] if last_id == seq else None  # an id from the future: the counter restarted
    missed = [e for e in events if int(e["id"]) > last_id]
    if not missed or int(missed[0]["id"]) != last_id + 1:
        return None
    return missed


class Hub:
    """This process's live connections, and the way events reach them from any process."""

    def __init__(self, bus: Bus, ring: Ring, *, max_per_user: int = 20) -> None:
        self.bus = bus
        self.ring = ring
        self.max_per_user = max_per_user
        self._connections: dict[str, set[Connection]] = defaultdict(set)
        bus.subscribe(CHANNEL, self._heard)

    def count(self, user_id: str) -> int:
        return len(self._connections.get(user_id, ()))

    def open(self, user_id: str) -> Connection | None:
        """A new connection for ``user_id``, or None when they have too many open here."""
        if self.count(user_id) >= self.max_per_user:
            return None
        connection = Connection(user_id, asyncio.Queue(QUEUE_SIZE))
        self._connections[user_id].add(connection)
        return connection

    def close(self, connection: Connection) -> None:
        held = self._connections.get(connection.user_id)
        if held is not None:
            held.discard(connection)
            if not held:
                del self._connections[connection.user_id]

    async def close_all(self) -> None:
        """Shutting down: end every connection (their clients reconnect to another process)."""
        for held in list(self._connections.values()):
            for connection in list(held):
                connection.end()

    async def publish(self, user_id: str, type_: str, data: dict[str, Any]) -> None:
        """Send one event to every open tab of ``user_id``, in every process. Never raises:
        a live update lost to a Redis outage must not fail what caused it."""
        try:
            event = await self.ring.append(user_id, type_, data)
            await self.bus.publish(CHANNEL, {"user": user_id, "event": event})
        except Exception as exc:
            log.warning("live_publish_failed", event_type=type_, error=f"{type(exc).__name__}")

    async def _heard(self, message: dict[str, Any]) -> None:
        user_id, event = message.get("user"), message.get("event")
        if not isinstance(user_id, str) or not isinstance(event, dict):
            return
        for connection in list(self._connections.get(user_id, ())):
            connection.offer(event)

    async def backlog(self, connection: Connection, last_id: int) -> list[dict[str, Any]]:
        """What ``connection`` missed after ``last_id`` (a ``live.reset`` when that is lost)."""
        missed = await self.ring.since(connection.user_id, last_id)
        if missed is None:
            return [{"id": None, "type": "live.reset", "data": {}}]
        return missed


def fresh(connection: Connection, event: dict[str, Any]) -> bool:
    """True (and remembered) for an event this connection has not been sent yet."""
    if event.get("id") is None:
        return True
    number = int(event["id"])
    if number <= connection.last_id:
        return False
    connection.last_id = number
    return True
