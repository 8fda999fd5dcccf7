"""The live channel (issue #20): one connection per browser tab that carries typed events
(``{"id", "type", "data"}``) to their user as things change: the wallet's balance, a new
notification.

- ``GET /api/live``: a WebSocket; ``GET /api/live/sse``: the same events as server-sent events
  for where WebSockets are blocked (``multinotes.live.api``).
- ``multinotes.live.hub``: per-user fan-out through the bus (Redis pub/sub in production,
  in-process in embedded mode; one message for an event to many users, e.g. an organisation's
  members: ``publish_organisation``) and the short ring of recent events a reconnecting tab
  resumes from.
- ``multinotes.live.sources``: what is sent, noticed in transactions and sent after they commit.
- ``multinotes.live.presence``: who else has a note, folder or conversation open, who is typing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from multinotes.keys import BUS, DB, REDIS, SETTINGS
from multinotes.live.hub import Hub, RedisRing, Ring
from multinotes.live.presence import Presence, RedisStore, Store

HUB = web.AppKey("live_hub", Hub)
PRESENCE = web.AppKey("live_presence", Presence)

#: A long task of the user's finished (a data export, a note or folder export, a batch, a
#: scheduled run): the toast's ``{"kind", "id", "status", "title", "excerpt", "url",
#: "download_url"}``.
TASK_FINISHED = "task.finished"
#: A long task of the user's moved (a data export, a note or folder export):
#: ``{"kind", "id", "progress": {"done", "total"}, "status"}``.
TASK_PROGRESS = "task.progress"
#: Seconds between two progress events of one task (its start and end are always told).
PROGRESS_EVERY = 0.5


class Throttle:
    """When a long task's progress may be told again: at most every ``every`` seconds, and
    always when forced (its start, its end). One per running task."""

    def __init__(self, every: float = PROGRESS_EVERY) -> None:
        self.every = every
        self.told_at: float | None = None

    def ready(self, force: bool = False) -> bool:
        """True (and the clock restarts) when the progress should be told now."""
        now = time.monotonic()
        if not force and self.told_at is not None and now - self.told_at < self.every:
            return False
        self.told_at = now
        return True


async def task_progress(
    app: web.Application,
    user_id: str,
    *,
    kind: str,
    task_id: str,
    done: int,
    total: int,
    status: str = "running",
) -> None:
    """Tell the user's open tabs how far a task of theirs got (``done`` of ``total`` items).
    Callers throttle with a ``Throttle``. Never raises."""
    hub = app.get(HUB)
    if hub is None:
        return
    await hub.publish(
        user_id,
        TASK_PROGRESS,
        {
            "kind": kind,
            "id": task_id,
            "progress": {"done": done, "total": total},
            "status": status,
        },
    )


async def task_finished(
    app: web.Application,
    user_id: str,
    *,
    kind: str,
    task_id: str,
    status: str,
    title: str,
    url: str,
    excerpt: str = "",
    download_url: str | None = None,
) -> None:
    """Tell the user's open tabs that a task of theirs ended (``status`` "done" or "failed");
    ``url`` is the page about it on this site, ``download_url`` its file when there is one.
    Never raises: the task's outcome is recorded whether or not a tab hears of it."""
    hub = app.get(HUB)
    if hub is None:
        return
    await hub.publish(
        user_id,
        TASK_FINISHED,
        {
            "kind": kind,
            "id": task_id,
            "status": status,
            "title": title,
            "excerpt": excerpt,
            "url": url,
            "download_url": download_url,
        },
    )


async def publish_organisation(
    app: web.Application, organisation_id: str, type_: str, data: dict[str, Any]
) -> int:
    """Send one event to every member of an organisation: one bus message (one Redis publish
    in production), each web process delivering it to its own tabs of the members. Returns
    how many members it was addressed to. Never raises for the delivery (as ``Hub.publish``);
    ``data`` must be something every member may read."""
    from multinotes.live.organisations import members as organisation_members

    hub = app.get(HUB)
    if hub is None:
        return 0
    members = await organisation_members(app[DB], organisation_id)
    await hub.publish_many(members, type_, data)
    return len(members)


def setup(app: web.Application) -> None:
    """The hub (once the bus and the database exist) and the sources feeding it."""
    from multinotes.live import organisations, sources

    async def live_hub(app: web.Application) -> AsyncIterator[None]:
        redis = app[REDIS]
        ring = RedisRing(redis, app[SETTINGS].redis_prefix) if redis is not None else Ring()
        hub = Hub(app[BUS], ring)
        store = RedisStore(redis, app[SETTINGS].redis_prefix) if redis is not None else Store()
        presence = Presence(app[DB], app[BUS], store)
        sources.install(app[DB], hub, presence)
        organisations.install(app[DB], hub)
        app[HUB] = hub
        app[PRESENCE] = presence
        sweeper = asyncio.create_task(presence.sweep_forever(), name="live-presence")
        # One timer for every connection's heartbeat and credential re-check.
        ticker = asyncio.create_task(hub.tick_forever(), name="live-tick")
        yield
        sweeper.cancel()
        ticker.cancel()
        # Bounded: both loops end at their next turn even if a cancellation was swallowed.
        await asyncio.wait({sweeper, ticker}, timeout=5)
        await hub.stop()

    async def end_connections(app: web.Application) -> None:
        # On shutdown, before aiohttp waits for running handlers: an open tab would otherwise
        # hold a stopping web process for its whole shutdown timeout. Clients reconnect (to
        # another process) and resume.
        hub = app.get(HUB)
        if hub is not None:
            await hub.close_all()

    app.cleanup_ctx.append(live_hub)
    app.on_shutdown.append(end_connections)
