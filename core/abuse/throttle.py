"""Counters and the throttle of abuse detection, in the rate-limit storage (``limits``: in
memory in embedded mode, Redis in production), so every web and worker process shares them and
none of them costs a query.

A counter runs for a window that starts at its first increment (a fixed window per account or
key); a rule trips once per window, when its counter crosses the threshold. A throttled account's
generation requests are refused with 429 ``abuse_throttled`` until the throttle expires (or an
operator dismisses the report that set it).

While the storage is unreachable every call here does nothing (``RateLimits.guarded``: no
counting, no throttle), after the limits' own back-off, so an outage costs no connection
attempt per request; generation fails closed on its own then (503)."""

from __future__ import annotations

import math
import time

from aiohttp import web

from multinotes.keys import RATE_LIMITS

PREFIX = "abuse:"


async def add(app: web.Application, counter: str, amount: int, window_seconds: int) -> int | None:
    """Add ``amount`` to ``counter`` and return its total in the current window; None when the
    storage is unreachable (the rule then skips this event rather than fail the request)."""
    limits = app[RATE_LIMITS]
    total = await limits.guarded(
        lambda: limits.storage.incr(PREFIX + counter, max(1, window_seconds), amount)
    )
    return None if total is None else int(total)


def crossed(total: int | None, amount: int, threshold: int) -> bool:
    """Whether adding ``amount`` took the counter from below ``threshold`` to it or past it."""
    return total is not None and total - amount < threshold <= total


async def throttle(app: web.Application, user_id: str, seconds: int) -> None:
    """Refuse the account's generation requests for ``seconds`` (from now)."""
    limits = app[RATE_LIMITS]
    key = f"{PREFIX}throttle:{user_id}"

    async def start() -> None:
        await limits.storage.clear(key)
        await limits.storage.incr(key, max(1, seconds), 1)

    await limits.guarded(start)


async def throttled_for(app: web.Application, user_id: str) -> int:
    """Seconds until the account's throttle ends; 0 when it is not throttled (or the storage
    is unreachable: the generation rate limit fails closed on its own then)."""
    limits = app[RATE_LIMITS]
    key = f"{PREFIX}throttle:{user_id}"

    async def expires() -> float:
        if await limits.storage.get(key) <= 0:
            return 0.0
        return float(await limits.storage.get_expiry(key))

    until = await limits.guarded(expires)
    if not until:
        return 0
    return max(1, math.ceil(until - time.time()))


async def lift(app: web.Application, user_id: str) -> None:
    limits = app[RATE_LIMITS]
    await limits.guarded(lambda: limits.storage.clear(f"{PREFIX}throttle:{user_id}"))
