"""Rate limits with the ``limits`` library: in memory (embedded) or Redis (production).

Endpoints belong to a class ("auth", "api", ...); each class has its own limit per account
(or per IP for anonymous requests).
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from multinotes.errors import RateLimited
from multinotes.settings import Settings


def make_storage(settings: Settings) -> Storage:
    if settings.is_production and settings.redis_url:
        from limits.aio.storage import RedisStorage

        return RedisStorage(
            settings.redis_url.replace("redis://", "async+redis://", 1),
            implementation="redispy",
            key_prefix=settings.redis_prefix + "rl",
        )
    return MemoryStorage()


class RateLimits:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.enabled = settings.rate_limits_enabled
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.classes = {
            "auth": parse(settings.rate_limit_auth),
            "api": parse(settings.rate_limit_api),
            "generation": parse(settings.rate_limit_generation),
        }

    async def hit(self, klass: str, identity: str) -> dict[str, str]:
        """Count one request; raise ``RateLimited`` when over. Returns RateLimit-* headers."""
        limit = self.classes.get(klass)
        if limit is None or not self.enabled:
            return {}
        allowed = await self.limiter.hit(limit, klass, identity)
        stats = await self.limiter.get_window_stats(limit, klass, identity)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(limit.amount),
            "RateLimit-Remaining": str(max(0, stats.remaining)),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            raise RateLimited(retry_after=reset, headers=headers)
        return headers

    async def reset(self) -> None:
        await self.storage.reset()
