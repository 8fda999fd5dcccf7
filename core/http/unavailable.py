"""Redis unreachable during a request, or no database connection free in time (the pool's
checkout time-out: the process is overloaded): a retryable 503 in the app's error shape, not a
500.

Only requests that need Redis get here (a rate limit that fails closed, enqueueing a task,
publishing on the bus); reads and pages that do not touch Redis keep working while it is away.
Runs inside the error middleware, which renders the ``ServiceUnavailable`` it raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from limits.errors import StorageError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from multinotes.errors import ServiceUnavailable

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds a client is asked to wait before retrying.
RETRY_AFTER = 5


@web.middleware
async def redis_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (RedisConnectionError, RedisTimeoutError, StorageError) as exc:
        log.warning("redis_unavailable", error=type(exc).__name__, path=request.path)
        raise ServiceUnavailable(retry_after=RETRY_AFTER) from exc
    except PoolTimeoutError as exc:
        # Every pooled connection stayed busy for the pool's whole time-out: too much load
        # for this process right now, which a client can wait out (as a 503, not a 500).
        log.warning("database_pool_exhausted", path=request.path)
        raise ServiceUnavailable(retry_after=RETRY_AFTER) from exc
