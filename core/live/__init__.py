"""The live channel (issue #20): one connection per browser tab that carries typed events
(``{"id", "type", "data"}``) to their user as things change: the wallet's balance, a new
notification.

- ``GET /api/live``: a WebSocket; ``GET /api/live/sse``: the same events as server-sent events
  for where WebSockets are blocked (``multinotes.live.api``).
- ``multinotes.live.hub``: per-user fan-out through the bus (Redis pub/sub in production,
  in-process in embedded mode) and the short ring of recent events a reconnecting tab resumes
  from.
- ``multinotes.live.sources``: what is sent, noticed in transactions and sent after they commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from multinotes.keys import BUS, DB, REDIS, SETTINGS
from multinotes.live.hub import Hub, RedisRing, Ring

HUB = web.AppKey("live_hub", Hub)


def setup(app: web.Application) -> None:
    """The hub (once the bus and the database exist) and the sources feeding it."""
    from multinotes.live import sources

    async def live_hub(app: web.Application) -> AsyncIterator[None]:
        redis = app[REDIS]
        ring = RedisRing(redis, app[SETTINGS].redis_prefix) if redis is not None else Ring()
        hub = Hub(app[BUS], ring)
        sources.install(app[DB], hub)
        app[HUB] = hub
        yield

    async def end_connections(app: web.Application) -> None:
        # On shutdown, before aiohttp waits for running handlers: an open tab would otherwise
        # hold a stopping web process for its whole shutdown timeout. Clients reconnect (to
        # another process) and resume.
        hub = app.get(HUB)
        if hub is not None:
            await hub.close_all()

    app.cleanup_ctx.append(live_hub)
    app.on_shutdown.append(end_connections)
