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
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from multinotes.bus import Bus

log = structlog.get_logger(__name__)

#: The bus channel: ``{"user": id, "event": {"id", "type", "data"}}`` for one user, or
#: ``{"users": {id: event id, ...}, "event": {"type", "data"}}`` for many (an organisation's
#: members): one message however many people it reaches.
CHANNEL = "live.event"
RING_SIZE = 100
RING_SECONDS = 300
#: Events held for a connection that is not delivering yet (its ``live.hello`` and backlog are
#: still being read) before it is dropped as too slow (it resumes on reconnect).
PENDING_SIZE = 64
#: Bytes a connection's socket may have waiting to be sent before it counts as too slow to keep
#: up and is closed (the client reconnects and resumes from its last event id): a slow tab never
#: holds up the others, and what it has not read is bounded.
SLOW_BYTES = 256 * 1024
#: Seconds between the hub's looks at all its connections (heartbeats, credential re-checks).
TICK = 1.0

#: Delivers one event to the client now, without waiting; False when the client is too slow.
Sink = Callable[[dict[str, Any]], bool]


class Connection:
    """One open tab (WebSocket or SSE) of one user in this process.

    Cheap while idle: no task, queue or timer of its own. An event is handed to its ``sink``
    (a non-blocking write to the socket) by whoever publishes; until the sink is attached (the
    first events are still being read) events wait in a small list made for the purpose. The
    hub's one timer sends heartbeats and re-checks credentials for all connections."""

    __slots__ = (
        "__weakref__",
        "_closer",
        "_pending",
        "_sink",
        "checked",
        "ended",
        "heard",
        "heartbeat",
        "last_id",
        "ping",
        "pinged",
        "recheck",
        "still_allowed",
        "token",
        "user_id",
    )

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        #: Names this tab among all tabs of all processes (its presence entries, issue #20).
        self.token = secrets.token_hex(12)
        #: The highest event id sent on it: a backlog and a live event may both carry one.
        self.last_id = 0
        self.ended = False
        self._sink: Sink | None = None
        self._pending: list[dict[str, Any]] | None = None
        #: Ends the client's connection (with the code given): set by the endpoint.
        self._closer: Callable[[int], None] | None = None
        #: Whether the credentials it was opened with still hold; checked every ``recheck`` s.
        self.still_allowed: Callable[[], Awaitable[bool]] | None = None
        self.recheck = 60.0
        self.checked = time.monotonic()
        #: Seconds between pings (0: none); ``heard`` is when the client last sent anything.
        self.heartbeat = 0.0
        self.heard = self.checked
        self.pinged = 0.0
        self.ping: Callable[[], object] | None = None

    def offer(self, event: dict[str, Any]) -> None:
        """Deliver ``event`` now (or hold it until the connection delivers); a connection that
        cannot keep up is ended: its client reconnects and resumes from its last event id."""
        if self.ended:
            return
        if self._sink is None:
            if self._pending is None:
                self._pending = []
            if len(self._pending) >= PENDING_SIZE:
                self.end()
                return
            self._pending.append(event)
            return
        if not self._sink(event):
            self.end(SLOW)

    def attach(self, sink: Sink, closer: Callable[[int], None]) -> None:
        """Deliver from now on through ``sink`` (what waited first, in order)."""
        self._closer = closer
        pending, self._pending = self._pending or [], None
        self._sink = sink
        for event in pending:
            self.offer(event)
        if self.ended:
            closer(SLOW)

    def end(self, code: int = 1001) -> None:
        """Close it (1001 "going away" by default): the client reconnects and resumes."""
        if self.ended:
            return
        self.ended = True
        self._pending = None
        if self._closer is not None:
            self._closer(code)


class Event(dict[str, Any]):
    """An event as delivered: ``{"id", "type", "data"}``, with its WebSocket frame made once
    for all the tabs it goes to (``frame``)."""

    __slots__ = ("_frame", "number")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._frame: bytes | None = None
        #: The id as a number, read once for all the tabs (``fresh``); None without one.
        ident = self.get("id")
        self.number: int | None = None if ident is None else int(ident)

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(_json(self).encode())
        return self._frame

    @frame.setter
    def frame(self, value: bytes) -> None:
        self._frame = value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def text_frame(payload: bytes) -> bytes:
    """A server's (unmasked) WebSocket text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


#: The close code of a connection ended for being too slow: try again (and resume).
SLOW = 1013


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

    async def append_many(
        self, user_ids: Iterable[str], type_: str, data: dict[str, Any]
    ) -> dict[str, str]:
        """The same event for each of ``user_ids``: each user's id for it."""
        ids = {}
        for user_id in user_ids:
            ids[user_id] = (await self.append(user_id, type_, data))["id"]
        return ids

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

    async def append_many(
        self, user_ids: Iterable[str], type_: str, data: dict[str, Any]
    ) -> dict[str, str]:
        """Two round trips however many users: their counters, then their rings."""
        users = list(dict.fromkeys(user_ids))
        if not users:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                pipe.incr(self._prefix + user_id + ":seq")
            seqs = await pipe.execute()
        ids = {user_id: str(int(seq)) for user_id, seq in zip(users, seqs, strict=True)}
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in users:
                base = self._prefix + user_id
                event = {"id": ids[user_id], "type": type_, "data": data}
                pipe.lpush(base + ":ring", json.dumps(event))
                pipe.ltrim(base + ":ring", 0, RING_SIZE - 1)
                pipe.expire(base + ":ring", RING_SECONDS)
                pipe.expire(base + ":seq", 30 * 86400)
            await pipe.execute()
        return ids

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
        self._checking: asyncio.Task[None] | None = None
        bus.subscribe(CHANNEL, self._heard)

    def count(self, user_id: str) -> int:
        return len(self._connections.get(user_id, ()))

    def total(self) -> int:
        return sum(len(held) for held in self._connections.values())

    def open(self, user_id: str) -> Connection | None:
        """A new connection for ``user_id``, or None when they have too many open here."""
        if self.count(user_id) >= self.max_per_user:
            return None
        connection = Connection(user_id)
        self._connections[user_id].add(connection)
        return connection

    def close(self, connection: Connection) -> None:
        connection.ended = True
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

    async def publish_many(self, user_ids: Iterable[str], type_: str, data: dict[str, Any]) -> None:
        """The same event to every open tab of each of ``user_ids`` (an organisation's members):
        each user's ring gets it with that user's next id (a reconnecting tab resumes as ever),
        and one bus message carries it to every process, which delivers it to its own tabs of
        those users. Never raises."""
        try:
            ids = await self.ring.append_many(user_ids, type_, data)
            if ids:
                await self.bus.publish(
                    CHANNEL, {"users": ids, "event": {"type": type_, "data": data}}
                )
        except Exception as exc:
            log.warning("live_publish_failed", event_type=type_, error=f"{type(exc).__name__}")

    async def _heard(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if not isinstance(event, dict):
            return
        user_id, users = message.get("user"), message.get("users")
        if isinstance(user_id, str):
            held = self._connections.get(user_id)
            if held:
                encoded = Event(event)
                for connection in list(held):
                    connection.offer(encoded)
        elif isinstance(users, dict):
            connections = self._connections
            type_, data = event.get("type"), event.get("data")
            # The data is encoded once for everyone, each user's event once for all their tabs.
            body = ',"type":' + _json(type_) + ',"data":' + _json(data) + "}"
            for user_id, event_id in users.items():
                held = connections.get(user_id)
                if held:
                    personal = Event({"id": event_id, "type": type_, "data": data})
                    personal.frame = text_frame(('{"id":' + _json(event_id) + body).encode())
                    for connection in list(held):
                        connection.offer(personal)

    async def backlog(self, connection: Connection, last_id: int) -> list[dict[str, Any]]:
        """What ``connection`` missed after ``last_id`` (a ``live.reset`` when that is lost)."""
        missed = await self.ring.since(connection.user_id, last_id)
        if missed is None:
            return [{"id": None, "type": "live.reset", "data": {}}]
        return missed

    # -- one timer for all connections ----------------------------------------------------------

    def tick(self) -> None:
        """Heartbeats and credential re-checks, for every connection at once: a connection
        whose client has not answered the last ping within half a heartbeat is ended; one due
        for a ping gets one; those due for a re-check are checked (in one background task)."""
        now = time.monotonic()
        due = []
        for held in list(self._connections.values()):
            for connection in list(held):
                if connection.ended:
                    continue
                beat = connection.heartbeat
                if beat and connection.ping is not None:
                    if connection.pinged > connection.heard and now - connection.pinged > beat / 2:
                        connection.end(PEER_GONE)
                        continue
                    if now - max(connection.heard, connection.pinged) >= beat:
                        connection.pinged = now
                        connection.ping()
                if connection.still_allowed is not None and now - connection.checked >= (
                    connection.recheck
                ):
                    connection.checked = now
                    due.append(connection)
        if due and (self._checking is None or self._checking.done()):
            self._checking = asyncio.create_task(self._recheck(due), name="live-recheck")

    async def _recheck(self, connections: list[Connection]) -> None:
        for connection in connections:
            if connection.ended or connection.still_allowed is None:
                continue
            try:
                allowed = await connection.still_allowed()
            except Exception as exc:  # the database away: ask again next time
                log.warning("live_recheck_failed", error=f"{type(exc).__name__}")
                continue
            if not allowed:
                connection.end(SIGNED_OUT)

    async def tick_forever(self) -> None:
        while not stopping():
            await asyncio.sleep(TICK)
            try:
                self.tick()
            except Exception:
                log.exception("live_tick_failed")

    async def stop(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            await asyncio.gather(self._checking, return_exceptions=True)


def stopping() -> bool:
    """True once the running task was asked to stop, even if a library it awaited swallowed
    the CancelledError (seen in CI: the presence sweeper slept on after its app's cleanup had
    cancelled it, and the cleanup waited for it until the test timed out). A loop that checks
    this between rounds ends at its next turn."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


#: The WebSocket close code for "your credentials no longer hold": the client stops retrying.
SIGNED_OUT = 4401
#: The close code for a client that stopped answering pings (a dead NAT, a sleeping laptop).
PEER_GONE = 1001


def fresh(connection: Connection, event: dict[str, Any]) -> bool:
    """True (and remembered) for an event this connection has not been sent yet."""
    if type(event) is Event:
        number = event.number
    else:
        ident = event.get("id")
        number = None if ident is None else int(ident)
    if number is None:
        return True
    if number <= connection.last_id:
        return False
    connection.last_id = number
    return True
