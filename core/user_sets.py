"""Who has a feature switched on, answered from memory: the users with auto-reload, the users
with a webhook endpoint. What runs after every answer asks it first, so a user who has neither
costs no database read (issue #17).

A ``UserSet`` is a query that selects user ids (a NULL among them stands for "every user", e.g.
an instance-wide webhook endpoint). A process runs it once and keeps the answer until any
committed transaction writes one of the tables the query reads — in this process at once, in
every other process through the bus (Redis pub/sub in production, in-process in embedded mode),
as the API-key cache is dropped. A short TTL bounds what a lost message, or a write from outside
the app (a CLI command in another embedded process), can leave behind. A stale answer errs only
when a user switched a feature on in the last moments: the write is seen here as soon as its
message arrives.

Writes are seen when they go through a ``Database.transaction`` session: ORM objects, or
``session.execute(insert/update/delete(...))``. A Core statement sent on ``session.connection()``
is not (the TTL bounds it); write a watched table through the session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import Select, event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql.util import find_tables

from multinotes.bus import Bus
from multinotes.db import Database
from multinotes.keys import BUS, DB

log = structlog.get_logger(__name__)

#: The bus channel: ``{"tables": [names]}``.
CHANNEL = "user_sets.changed"
TTL_SECONDS = 60.0
#: ``session.info`` key: the names of the tables the transaction wrote.
CHANGED = "user_sets_changed"
#: Every table a ``UserSet`` defined so far reads (every process defines the same sets): a
#: write to one of them is published even if this process never asked for the set.
_WATCHED: set[str] = set()


@dataclass(frozen=True, eq=False)
class UserSet:
    """The users a query selects: ``UserSet("webhooks.endpoints", select(Endpoint.user_id))``.

    :param name: unique and stable (it names the cached answer).
    :param query: selects one column of user ids; a NULL row means every user is in the set.
    """

    name: str
    query: Select[Any]
    #: The tables the query reads: a write to any of them drops the cached answer.
    tables: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        tables = {
            table.name
            for source in self.query.get_final_froms()
            for table in find_tables(source, include_joins=True, include_aliases=True)
            if hasattr(table, "name")
        }
        if not tables:
            raise ValueError(f"the query of user set {self.name!r} reads no table")
        object.__setattr__(self, "tables", frozenset(tables))
        _WATCHED.update(tables)


class UserSets:
    """The answers of this process, by user set."""

    def __init__(self, db: Database, ttl: float = TTL_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._answers: dict[str, tuple[float, frozenset[str | None], frozenset[str]]] = {}
        # Bumped by every invalidation: a load that began before one must not be kept (it may
        # have read the rows the invalidation was about).
        self._epoch = 0
        self._locks: dict[str, asyncio.Lock] = {}
        self.loads = 0

    async def members(self, user_set: UserSet) -> frozenset[str | None]:
        cached = self._answers.get(user_set.name)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        lock = self._locks.setdefault(user_set.name, asyncio.Lock())
        async with lock:  # many answers finishing at once run the query once
            cached = self._answers.get(user_set.name)
            if cached is not None and time.monotonic() - cached[0] < self.ttl:
                return cached[1]
            epoch = self._epoch
            async with self.db.read() as session:
                found = frozenset(await session.scalars(user_set.query))
            self.loads += 1
            if epoch == self._epoch:
                self._answers[user_set.name] = (time.monotonic(), found, user_set.tables)
            return found

    async def contains(self, user_set: UserSet, user_id: str | None) -> bool:
        """Whether ``user_id`` is in the set (``None``: whether the set holds every user)."""
        found = await self.members(user_set)
        return None in found or (user_id is not None and user_id in found)

    def invalidate(self, tables: Iterable[str] | None) -> None:
        """Forget every answer that read one of ``tables`` (``None``: every answer)."""
        self._epoch += 1
        if tables is None:
            self._answers.clear()
            return
        written = set(tables)
        for name in [n for n, entry in self._answers.items() if entry[2] & written]:
            del self._answers[name]


USER_SETS = web.AppKey("user_sets", UserSets)


async def contains(app: web.Application, user_set: UserSet, user_id: str | None) -> bool:
    """``UserSets.contains`` of the app (a fresh read where the app keeps none, as in tools
    that build a bare app)."""
    sets = app.get(USER_SETS)
    if sets is None:
        sets = UserSets(app[DB], ttl=0)
    return await sets.contains(user_set, user_id)


# -- noticing writes ----------------------------------------------------------------------------


def _note(session: Session, table: Any) -> None:
    name = getattr(table, "name", None)
    if isinstance(name, str):
        session.info.setdefault(CHANGED, set()).add(name)


def _on_execute(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        _note(state.session, getattr(state.statement, "table", None))


def _on_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    for instance in (*session.new, *session.dirty, *session.deleted):
        _note(session, getattr(instance, "__table__", None))


def install(db: Database, sets: UserSets, bus: Bus) -> None:
    """Watch ``db``'s transactions for writes; drop the answers that read what they wrote, here
    and (through the bus) in every other process."""
    event.listen(db.session_class, "do_orm_execute", _on_execute)
    event.listen(db.session_class, "before_flush", _on_flush)

    async def committed(info: dict[str, Any]) -> None:
        written: set[str] | None = info.get(CHANGED)
        if not written:
            return
        written = written & _WATCHED  # most transactions write no table a user set reads
        if not written:
            return
        sets.invalidate(written)
        try:
            await bus.publish(CHANNEL, {"tables": sorted(written)})
        except Exception as exc:  # Redis away: the other processes' TTL still applies
            log.warning("user_sets_publish_failed", error=f"{type(exc).__name__}: {exc}")

    async def heard(message: dict[str, Any]) -> None:
        tables = message.get("tables")
        sets.invalidate(None if tables is None else [str(t) for t in tables])

    db.on_commit.append(committed)
    bus.subscribe(CHANNEL, heard)


def setup(app: web.Application) -> None:
    """``app[USER_SETS]``, once the database and the bus exist."""

    async def user_sets(app: web.Application) -> AsyncIterator[None]:
        sets = UserSets(app[DB])
        install(app[DB], sets, app[BUS])
        app[USER_SETS] = sets
        yield

    app.cleanup_ctx.append(user_sets)
