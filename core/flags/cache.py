"""Every process keeps the flags and the running experiments in memory.

The database is the truth. A change made through the console reloads this process's copy and
publishes on the bus (Redis pub/sub in production, in-process in embedded mode), so every web
and worker process reloads within moments, as plugin state does. A copy older than
``RELOAD_SECONDS`` is read again on its next use: what bounds a lost message or a change made
outside the app (another embedded process, a restore).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web

from multinotes.bus import Bus
from multinotes.db import Database
from multinotes.domain_events import EVENTS, DomainEvent
from multinotes.flags import service
from multinotes.flags.rules import ExperimentRule, FlagRule
from multinotes.keys import BUS, DB, FLAGS

log = structlog.get_logger(__name__)

CHANNEL = "flags"
RELOAD_SECONDS = 30.0
#: (experiment id, user id) pairs whose exposure this process knows is recorded.
MAX_EXPOSURES = 50_000


class FlagCache:
    def __init__(self, db: Database, ttl: float = RELOAD_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self.flags: dict[str, FlagRule] = {}
        #: Running experiments by name.
        self.experiments: dict[str, ExperimentRule] = {}
        self.loads = 0
        self._loaded_at = float("-inf")
        # Loads may overlap (a bus message during a stale-read reload): the one that started
        # last read the newest rows, so an earlier one finishing after it is not applied.
        self._started = 0
        self._applied = 0
        self._pending: asyncio.Future[None] | None = None
        self._exposed: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def reload(self) -> None:
        self._started += 1
        number = self._started
        began = time.monotonic()
        flags, experiments = await service.load_rules(self.db)
        if number > self._applied:
            self._applied = number
            self.flags, self.experiments = flags, experiments
            self._loaded_at = began
            self.loads += 1

    async def fresh(self) -> None:
        """Read the rules again if this copy is older than the TTL (one read for all waiters;
        the database away: the old copy serves, and the next use tries again)."""
        if time.monotonic() - self._loaded_at < self.ttl:
            return
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.reload())
            self._pending.add_done_callback(self._reloaded)
        try:
            await asyncio.shield(self._pending)
        except Exception as exc:
            log.warning("flags_reload_failed", error=f"{type(exc).__name__}: {exc}")

    def _reloaded(self, future: asyncio.Future[None]) -> None:
        self._pending = None
        if not future.cancelled():
            future.exception()  # retrieved here, so an unawaited failure is not logged twice

    def known_exposure(self, experiment_id: str, user_id: str) -> str | None:
        variant = self._exposed.get((experiment_id, user_id))
        if variant is not None:
            self._exposed.move_to_end((experiment_id, user_id))
        return variant

    def remember_exposure(self, experiment_id: str, user_id: str, variant: str) -> None:
        self._exposed[(experiment_id, user_id)] = variant
        while len(self._exposed) > MAX_EXPOSURES:
            self._exposed.popitem(last=False)


async def changed(app: web.Application) -> None:
    """After a committed change: reload here at once, and tell the other processes."""
    await app[FLAGS].reload()
    try:
        await app[BUS].publish(CHANNEL, {"changed": True})
    except Exception as exc:  # Redis away: the other processes' TTL still applies
        log.warning("flags_publish_failed", error=f"{type(exc).__name__}: {exc}")


async def count_conversion(app: web.Application, event: DomainEvent) -> None:
    """Every domain event: the running experiments whose goal it is count its user as converted
    (if they were exposed and had not converted yet)."""
    if event.user_id is None:
        return
    cache = app[FLAGS]
    await cache.fresh()
    ids = [e.id for e in cache.experiments.values() if e.conversion_event == event.name]
    if ids:
        await service.convert(app[DB], ids, event.user_id)


def setup(app: web.Application) -> None:
    """The cache (once the database and the bus exist), its bus subscription, the conversion
    counter on every domain event."""

    async def flag_cache(app: web.Application) -> AsyncIterator[None]:
        cache = FlagCache(app[DB])
        await cache.reload()
        app[FLAGS] = cache
        bus: Bus = app[BUS]

        async def heard(_message: dict[str, Any]) -> None:
            await cache.reload()

        bus.subscribe(CHANNEL, heard)
        yield

    app.cleanup_ctx.append(flag_cache)
    app[EVENTS].subscribe_all(count_conversion)
    key = aiohttp_jinja2.APP_CONTEXT_PROCESSORS_KEY
    processors: list[Any] = [*app.get(key, ()), template_flags]
    app[key] = processors


async def template_flags(request: web.Request) -> dict[str, Any]:
    """``flags`` in every template: the names on for the reader. Context processors run on
    every request; the JSON API renders no template, so it skips the work."""
    if request.path.startswith("/api/") or FLAGS not in request.app:
        return {"flags": frozenset()}
    from multinotes.flags import enabled_names

    return {"flags": await enabled_names(request)}
