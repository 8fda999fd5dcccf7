"""Presence on the live channel (issue #20 item 3): who else has a note, a folder or a
conversation open, and who is typing in a note.

A tab says what it has open on its WebSocket (``presence.join``), keeps saying it is still there
(``presence.here`` every few seconds) and, in a note, that its person is typing
(``presence.typing``); a tab on the SSE stream, which cannot send, posts the same messages to
``POST /api/live/presence`` naming its stream, and they are relayed to the process holding it.
Everyone with the object open gets ``presence.changed`` with the people there besides themselves.
Who may join, and who receives, is decided by the sharing rules (``sharing.access.role_of``): on
every join, on every fan-out (for each receiving person), and again every ``RECHECK`` seconds
while a tab stays; someone who can no longer read the object gets ``presence.ended`` and stops
being listed.

Leaving is noticed three ways: a tab that navigates away or closes ends its WebSocket and its
entries are dropped at once; a connection that dies silently stops sending ``presence.here`` and
its entries expire after ``TTL`` seconds; a web process that is killed leaves entries that expire
the same way. Each process looks at the objects its own tabs have open every ``SWEEP`` seconds
and tells them when the list changed (someone expired, someone stopped typing).

Entries live in Redis in production (a hash per object, ``<prefix>presence:<type>:<id>``, one
field per tab) so tabs on different web processes see each other, and changes are announced on
the bus; in embedded mode both are in this process.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import structlog
from sqlalchemy import select

from multinotes.bus import Bus
from multinotes.db import Database
from multinotes.errors import AppError, Invalid, NotFound, RateLimited
from multinotes.identity.models import User
from multinotes.identity.profile import avatar_url
from multinotes.live.hub import Connection, stopping
from multinotes.sharing import access

log = structlog.get_logger(__name__)

#: The bus channel: ``{"key": "document:<id>"}`` (the list changed), ``{"all": true}`` (some
#: access changed: every process re-checks everyone it tells) or ``{"relay": {"user",
#: "connection", "message"}}`` (a presence message for an SSE stream, sent over HTTP).
CHANNEL = "live.presence"
OBJECT_TYPES = ("document", "folder", "conversation")
#: Seconds a tab stays listed after its last ``presence.here`` (or join, or typing).
TTL = 15.0
#: Seconds between a tab's ``presence.here`` messages (what live clients are told to use).
HEARTBEAT = 5.0
#: Seconds a ``presence.typing`` marks its person as typing.
TYPING = 5.0
#: Seconds between a process's looks at the objects its tabs have open.
SWEEP = 1.0
#: Seconds between access re-checks of a tab that stays on an object with nothing changing.
RECHECK = 30.0
#: Objects one tab may have open at once.
MAX_OPEN = 10
#: Presence messages one tab may send: a burst of ``BURST``, then ``RATE`` a second.
BURST = 20
RATE = 5.0
OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

CHANGED = "presence.changed"
ENDED = "presence.ended"


def key_of(object_type: str, object_id: str) -> str:
    return f"{object_type}:{object_id}"


def _split(key: str) -> tuple[str, str]:
    object_type, _, object_id = key.partition(":")
    return object_type, object_id


def initials(name: str) -> str:
    """What an avatar without a picture shows: the first letters of the first and last word."""
    words = [w for w in re.split(r"\s+", name.strip()) if w]
    if not words:
        return "?"
    letters = words[0][0] + (words[-1][0] if len(words) > 1 else "")
    return letters.upper()


class Store:
    """The tabs on each object and what they are doing: in memory (embedded mode).

    An entry is ``{"user_id", "name", "avatar_url", "since", "typing_until", "expires"}``
    (times are Unix seconds), one per tab (``member``)."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    async def put(self, key: str, member: str, entry: dict[str, Any]) -> None:
        self._entries[key][member] = entry

    async def drop(self, key: str, member: str) -> None:
        held = self._entries.get(key)
        if held is not None:
            held.pop(member, None)
            if not held:
                del self._entries[key]

    async def entries(self, key: str) -> dict[str, dict[str, Any]]:
        """The live entries of ``key`` (expired ones are removed on the way)."""
        now = time.time()
        held = self._entries.get(key, {})
        for member in [m for m, e in held.items() if e["expires"] <= now]:
            del held[member]
        if not held:
            self._entries.pop(key, None)
        return dict(held)


class RedisStore(Store):
    """The same in Redis: a hash per object, one JSON field per tab, expiring as a whole once
    nobody has refreshed it for a while."""

    def __init__(self, redis: Any, prefix: str) -> None:
        super().__init__()
        self._redis = redis
        self._prefix = prefix + "presence:"

    async def put(self, key: str, member: str, entry: dict[str, Any]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._prefix + key, member, json.dumps(entry))
            pipe.expire(self._prefix + key, int(TTL * 2))
            await pipe.execute()

    async def drop(self, key: str, member: str) -> None:
        await self._redis.hdel(self._prefix + key, member)

    async def entries(self, key: str) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(self._prefix + key)
        now = time.time()
        live: dict[str, dict[str, Any]] = {}
        gone = []
        for member, value in raw.items():
            try:
                entry = json.loads(value)
                fresh = float(entry["expires"]) > now
            except (ValueError, TypeError, KeyError):
                fresh = False
            if fresh:
                live[member] = entry
            else:
                gone.append(member)
        if gone:
            await self._redis.hdel(self._prefix + key, *gone)
        return live


def people(entries: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """One person per user (however many tabs they have on it), first arrived first."""
    by_user: dict[str, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: (e.get("since", 0), e["user_id"])):
        typing = float(entry.get("typing_until") or 0) > now
        person = by_user.get(entry["user_id"])
        if person is None:
            name = str(entry.get("name") or "")
            by_user[entry["user_id"]] = {
                "user_id": entry["user_id"],
                "name": name,
                "initials": initials(name),
                "avatar_url": entry.get("avatar_url"),
                "typing": typing,
            }
        elif typing:
            person["typing"] = True
    return list(by_user.values())


class Presence:
    """This process's tabs and the objects they have open."""

    def __init__(self, db: Database, bus: Bus, store: Store) -> None:
        self.db = db
        self.bus = bus
        self.store = store
        self._watchers: dict[str, set[Connection]] = defaultdict(set)
        #: What each connection has open: key -> when its access was last checked.
        self._open: dict[Connection, dict[str, float]] = defaultdict(dict)
        #: Per object, the people last sent to this process's tabs (to notice changes).
        self._sent: dict[str, list[dict[str, Any]]] = {}
        self._entries: dict[tuple[Connection, str], dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: Per connection: (tokens left, when counted) of its message allowance.
        self._allowance: dict[Connection, tuple[float, float]] = {}
        #: This process's SSE streams by token: they send presence over HTTP (``relay``).
        self._streams: dict[str, Connection] = {}
        bus.subscribe(CHANNEL, self._heard)

    # -- what a tab says ------------------------------------------------------------------------

    async def handle(self, connection: Connection, message: dict[str, Any]) -> None:
        """One presence message from a tab; an ``AppError`` for a bad one (sent back to it)."""
        self._spend(connection)
        kind = message.get("type")
        if kind == "presence.here":
            await self.here(connection)
            return
        key = self._target(message)
        if kind == "presence.join":
            await self.join(connection, key)
        elif kind == "presence.leave":
            await self.leave(connection, key)
        elif kind == "presence.typing":
            await self.typing(connection, key)

    def following(self, connection: Connection) -> bool:
        """True while ``connection`` is shown on something."""
        return connection in self._open

    def register(self, connection: Connection) -> None:
        """An SSE stream: it cannot send, so its presence messages come by ``relay``."""
        self._streams[connection.token] = connection

    async def relay(self, user_id: str, token: str, message: dict[str, Any]) -> None:
        """A presence message for the stream ``token`` of ``user_id``, from any web process
        (``POST /api/live/presence``): the process holding that stream handles it, and a
        refused one reaches the stream as an ``error`` event."""
        await self.bus.publish(
            CHANNEL, {"relay": {"user": user_id, "connection": token, "message": message}}
        )

    async def _relayed(self, relay: dict[str, Any]) -> None:
        connection = self._streams.get(str(relay.get("connection")))
        message = relay.get("message")
        if connection is None or connection.user_id != relay.get("user"):
            return  # another process's stream, or a token that is not this user's
        if not isinstance(message, dict):
            return
        try:
            await self.handle(connection, message)
        except AppError as error:
            connection.offer(error_event(str(message.get("type"))[:40], error))

    def _spend(self, connection: Connection) -> None:
        """Each message costs one of the tab's tokens (each is a database read or two); they
        come back at ``RATE`` a second up to ``BURST``."""
        now = time.monotonic()
        tokens, counted = self._allowance.get(connection, (float(BURST), now))
        tokens = min(float(BURST), tokens + (now - counted) * RATE)
        if tokens < 1:
            self._allowance[connection] = (tokens, now)
            raise RateLimited(
                "Too many presence messages: send presence.here every few seconds, typing at "
                "most every two.",
                fields={"type": "Slow down."},
            )
        self._allowance[connection] = (tokens - 1, now)

    @staticmethod
    def _target(message: dict[str, Any]) -> str:
        object_type, object_id = message.get("object_type"), message.get("object_id")
        fields = {}
        if object_type not in OBJECT_TYPES:
            fields["object_type"] = "One of: " + ", ".join(OBJECT_TYPES) + "."
        if not isinstance(object_id, str) or not OBJECT_ID.fullmatch(object_id):
            fields["object_id"] = "The id of the note, folder or conversation."
        if fields:
            raise Invalid(fields=fields)
        return key_of(str(object_type), str(object_id))

    async def join(self, connection: Connection, key: str) -> None:
        object_type, object_id = _split(key)
        opened = self._open[connection]
        if key not in opened and len(opened) >= MAX_OPEN:
            raise Invalid(
                f"One tab follows at most {MAX_OPEN} objects; leave one first.",
                code="too_many_objects",
                fields={"object_id": f"At most {MAX_OPEN} at once."},
            )
        role = await access.role_of(self.db, connection.user_id, object_type, object_id)
        if role is None:
            raise NotFound(access.NOT_FOUND[object_type], code="not_found")
        async with self.db.read() as session:
            user = await session.scalar(select(User).where(User.id == connection.user_id))
        now = time.time()
        entry = {
            "user_id": connection.user_id,
            "name": user.name if user is not None else "",
            "avatar_url": avatar_url(user) if user is not None else None,
            "since": now,
            "typing_until": 0,
            "expires": now + TTL,
        }
        self._entries[(connection, key)] = entry
        opened[key] = time.monotonic()
        self._watchers[key].add(connection)
        await self.store.put(key, connection.token, entry)
        await self._announce(key)
        # The newcomer hears the list even when it did not change for the others.
        await self._tell(key, [connection])

    async def leave(self, connection: Connection, key: str) -> None:
        if not self._forget(connection, key):
            return
        await self.store.drop(key, connection.token)
        await self._announce(key)

    async def typing(self, connection: Connection, key: str) -> None:
        entry = self._entries.get((connection, key))
        if entry is None:
            raise Invalid(
                "Join the object before saying you type in it.",
                code="not_joined",
                fields={"object_id": "Not joined on this connection."},
            )
        object_type, _ = _split(key)
        if object_type != "document":
            raise Invalid(
                "Typing is shown on notes only.", fields={"object_type": "Only document."}
            )
        role = await access.role_of(self.db, connection.user_id, object_type, _split(key)[1])
        if role is None:
            await self._evict(connection, key)
            return
        if role == "viewer":
            raise Invalid(
                "Viewers cannot edit this note.",
                code="editor_only",
                fields={"object_id": "You may only read it."},
            )
        now = time.time()
        was_typing = float(entry["typing_until"]) > now
        entry["typing_until"] = now + TYPING
        entry["expires"] = now + TTL
        await self.store.put(key, connection.token, entry)
        if not was_typing:
            await self._announce(key)

    async def here(self, connection: Connection) -> None:
        """The tab is still there: its entries live on, and its access is checked again when
        that is due."""
        now, clock = time.time(), time.monotonic()
        for key, checked in list(self._open.get(connection, {}).items()):
            if clock - checked >= RECHECK:
                object_type, object_id = _split(key)
                if (
                    await access.role_of(self.db, connection.user_id, object_type, object_id)
                    is None
                ):
                    await self._evict(connection, key)
                    continue
                self._open[connection][key] = clock
            entry = self._entries.get((connection, key))
            if entry is not None:
                entry["expires"] = now + TTL
                await self.store.put(key, connection.token, entry)

    async def closed(self, connection: Connection) -> None:
        """The tab's connection ended: it leaves everything at once."""
        for key in list(self._open.get(connection, {})):
            try:
                await self.leave(connection, key)
            except Exception as exc:  # Redis away: the entries expire by themselves
                log.warning("presence_leave_failed", error=f"{type(exc).__name__}")
                self._forget(connection, key)
        self._open.pop(connection, None)
        self._allowance.pop(connection, None)
        if self._streams.get(connection.token) is connection:
            del self._streams[connection.token]

    # -- telling the tabs -----------------------------------------------------------------------

    def _forget(self, connection: Connection, key: str) -> bool:
        opened = self._open.get(connection)
        if opened is None or key not in opened:
            return False
        del opened[key]
        if not opened:
            del self._open[connection]
        self._entries.pop((connection, key), None)
        watchers = self._watchers.get(key)
        if watchers is not None:
            watchers.discard(connection)
            if not watchers:
                del self._watchers[key]
                self._sent.pop(key, None)
                if not self._locks[key].locked():
                    del self._locks[key]
        return True

    async def _evict(self, connection: Connection, key: str) -> None:
        """``connection`` may no longer read the object: it leaves, and is told so."""
        if self._forget(connection, key):
            await self.store.drop(key, connection.token)
            object_type, object_id = _split(key)
            connection.offer(
                {
                    "id": None,
                    "type": ENDED,
                    "data": {"object_type": object_type, "object_id": object_id},
                }
            )
            await self._announce(key)

    async def _announce(self, key: str) -> None:
        """Tell every process (this one too) that the people on ``key`` changed."""
        try:
            await self.bus.publish(CHANNEL, {"key": key})
        except Exception as exc:  # Redis away: this process's own tabs still hear it
            log.warning("presence_publish_failed", error=f"{type(exc).__name__}")
            await self._tell(key)

    async def recheck_all(self) -> None:
        """Some share or object changed: every process re-checks who it tells, at once."""
        try:
            await self.bus.publish(CHANNEL, {"all": True})
        except Exception as exc:
            log.warning("presence_publish_failed", error=f"{type(exc).__name__}")

    async def _heard(self, message: dict[str, Any]) -> None:
        relay = message.get("relay")
        if isinstance(relay, dict):
            await self._relayed(relay)
            return
        key = message.get("key")
        if isinstance(key, str):
            if key in self._watchers:
                await self._tell(key)
        elif message.get("all") is True:
            for watched in list(self._watchers):
                await self._tell(watched)

    async def _tell(self, key: str, only: list[Connection] | None = None) -> None:
        """Send the people on ``key`` to this process's tabs there (or ``only`` those), each
        checked first: someone who may no longer read the object is told it ended instead."""
        async with self._locks[key]:
            watchers = list(only if only is not None else self._watchers.get(key, ()))
            if not watchers:
                return
            listed = people((await self.store.entries(key)).values(), time.time())
            # What the tabs were told is noted only once they were: a telling that fails half
            # way (the database or Redis away a moment) is done again by the next sweep,
            # rather than someone who left staying listed until the next change.
            if only is None:
                self._sent.pop(key, None)
            object_type, object_id = _split(key)
            roles: dict[str, str | None] = {}
            lost = []
            for connection in watchers:
                if connection not in self._watchers.get(key, ()):
                    continue
                if connection.user_id not in roles:
                    roles[connection.user_id] = await access.role_of(
                        self.db, connection.user_id, object_type, object_id
                    )
                if roles[connection.user_id] is None:
                    lost.append(connection)
                    continue
                others = [p for p in listed if p["user_id"] != connection.user_id]
                connection.offer(
                    {
                        "id": None,
                        "type": CHANGED,
                        "data": {
                            "object_type": object_type,
                            "object_id": object_id,
                            "people": others,
                        },
                    }
                )
            if only is None and key in self._watchers:
                self._sent[key] = listed
        for connection in lost:
            await self._evict(connection, key)

    async def sweep(self) -> None:
        """Look at every object this process's tabs have open; tell them what changed since
        (an entry expired, someone stopped typing)."""
        now = time.time()
        for key in list(self._watchers):
            try:
                listed = people((await self.store.entries(key)).values(), now)
            except Exception as exc:
                log.warning("presence_sweep_failed", error=f"{type(exc).__name__}")
                return
            if listed != self._sent.get(key):
                try:
                    await self._tell(key)
                except Exception as exc:  # told again at the next sweep
                    log.warning("presence_tell_failed", error=f"{type(exc).__name__}")

    async def sweep_forever(self) -> None:
        while not stopping():
            await asyncio.sleep(SWEEP)
            try:
                await self.sweep()
            except Exception:
                log.exception("presence_sweep_crashed")


def error_event(request: str, error: AppError) -> dict[str, Any]:
    """A refused presence message, as the event the tab gets back."""
    return {
        "id": None,
        "type": "error",
        "data": {"request": request, **error.to_dict()["error"]},
    }
