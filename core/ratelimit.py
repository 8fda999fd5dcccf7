"""Rate limits with the ``limits`` library: in memory (embedded) or Redis (production).

Endpoints belong to a class ("auth", "api", ...); each class has its own limit per account
(or per IP for anonymous requests). An admin can put a user on the "exempt" tier (no limits) or
the "strict" tier (the ``rate_limit_strict_*`` limits instead of the classes').

Login, registration and password reset also count per client IP and per target account (the
email address asked about, whether or not an account uses it), and repeated failed logins lock
that address for a while: see ``multinotes.identity.guard``.

When the storage (Redis) is unreachable, limits fail closed only where they protect accounts or
cost money: the "auth" and "generation" classes, the named limits and the login lockout raise
``ServiceUnavailable`` (503 with Retry-After); every other class lets the request through. After
a failure Redis is not asked again for ``RECHECK_SECONDS``, so an outage costs no connection
attempt per request, and recovery needs no restart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from multinotes.errors import RateLimited, ServiceUnavailable
from multinotes.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Classes whose limit must hold even when it cannot be counted: refused while Redis is away.
FAIL_CLOSED = frozenset({"auth", "generation"})
#: After a storage failure, seconds before Redis is asked again (and the Retry-After).
RECHECK_SECONDS = 2.0

#: Limits counted outside the endpoint classes, by name (``RateLimits.hit_named``).
NAMED_LIMITS = (
    "login_ip",
    "login_account",
    "register_ip",
    "register_account",
    "reset_ip",
    "reset_account",
)


def make_storage(settings: Settings) -> Storage:
    if settings.is_production and settings.redis_url:
        from limits.aio.storage import RedisStorage

        return RedisStorage(
            settings.redis_url.replace("redis://", "async+redis://", 1),
            implementation="redispy",
            key_prefix=settings.redis_prefix + "rl",
            wrap_exceptions=True,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
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
        self.strict = {
            "auth": parse(settings.rate_limit_strict_auth),
            "api": parse(settings.rate_limit_strict_api),
            "generation": parse(settings.rate_limit_strict_generation),
        }
        self.named = {name: parse(getattr(settings, f"rate_limit_{name}")) for name in NAMED_LIMITS}
        self.login_failures = RateLimitItemPerSecond(
            settings.login_lockout_failures, settings.login_lockout_window_seconds
        )
        self.login_lock = RateLimitItemPerSecond(1, settings.login_lockout_seconds)
        self._down_until = 0.0

    async def _guarded(self, call: Callable[[], Awaitable[T]], *, fail_closed: bool) -> T | None:
        """Run a storage call; None when the storage is down and the limit fails open."""
        if time.monotonic() < self._down_until:
            self._unavailable(fail_closed)
            return None
        try:
            return await call()
        except StorageError as exc:
            self._down_until = time.monotonic() + RECHECK_SECONDS
            log.warning(
                "rate_limit_storage_unavailable",
                error=type(exc.storage_error).__name__,
                fail_closed=fail_closed,
            )
            self._unavailable(fail_closed)
            return None

    async def guarded(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run another feature's call on this storage (abuse detection's counters): None
        while the storage is unreachable, with the same back-off as the limits (fails open)."""
        return await self._guarded(call, fail_closed=False)

    def _unavailable(self, fail_closed: bool) -> None:
        if fail_closed:
            raise ServiceUnavailable(retry_after=math.ceil(RECHECK_SECONDS))

    async def hit(
        self, klass: str, identity: str, tier: str = "default", *, headers: bool = True
    ) -> dict[str, str]:
        """Count one request; raise ``RateLimited`` when over. Returns RateLimit-* headers;
        with ``headers=False`` none (the window is read only for a refusal's): a second
        storage round trip in production, which ``window_headers`` makes later if need be."""
        if tier == "exempt" or not self.enabled:
            return {}
        limit = (self.strict if tier == "strict" else self.classes).get(klass)
        if limit is None:
            return {}
        found = await self._guarded(
            lambda: self._hit(limit, klass, identity, headers), fail_closed=klass in FAIL_CLOSED
        )
        return found or {}

    async def window_headers(
        self, klass: str, identity: str, tier: str = "default"
    ) -> dict[str, str]:
        """The RateLimit-* headers of ``klass``'s window as it is now, after ``hit(...,
        headers=False)`` counted the request; none while the storage is down (the request
        was counted or let through already: this never refuses it)."""
        if tier == "exempt" or not self.enabled:
            return {}
        limit = (self.strict if tier == "strict" else self.classes).get(klass)
        if limit is None:
            return {}
        found = await self._guarded(lambda: self._window(limit, klass, identity), fail_closed=False)
        return found or {}

    async def hit_named(self, name: str, identity: str) -> dict[str, str]:
        """Count one attempt against a named limit (``NAMED_LIMITS``)."""
        if not self.enabled:
            return {}
        headers = await self._guarded(
            lambda: self._hit(self.named[name], name, identity), fail_closed=True
        )
        return headers or {}

    async def _hit(
        self, limit: RateLimitItem, namespace: str, identity: str, headers: bool = True
    ) -> dict[str, str]:
        allowed = await self.limiter.hit(limit, namespace, identity)
        if allowed and not headers:
            return {}
        found = await self._window(limit, namespace, identity)
        if not allowed:
            raise RateLimited(retry_after=int(found["RateLimit-Reset"]), headers=found)
        return found

    async def _window(self, limit: RateLimitItem, namespace: str, identity: str) -> dict[str, str]:
        stats = await self.limiter.get_window_stats(limit, namespace, identity)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return {
            "RateLimit-Limit": str(limit.amount),
            "RateLimit-Remaining": str(max(0, stats.remaining)),
            "RateLimit-Reset": str(reset),
        }

    # -- login lockout (always on: it protects accounts, not capacity) --------------------------

    async def locked_for(self, account: str) -> int:
        """Seconds until ``account`` may try to log in again; 0 when it is not locked."""
        return await self._closed(lambda: self._locked_for(account))

    async def login_failed(self, account: str) -> bool:
        """Count a failed login; True when this failure locked the account."""
        return await self._closed(lambda: self._login_failed(account))

    async def login_succeeded(self, account: str) -> None:
        await self._closed(
            lambda: self.limiter.clear(self.login_failures, "login_failures", account)
        )

    async def _closed(self, call: Callable[[], Awaitable[Any]]) -> Any:
        return await self._guarded(call, fail_closed=True)

    async def _locked_for(self, account: str) -> int:
        if await self.limiter.test(self.login_lock, "login_lock", account):
            return 0
        stats = await self.limiter.get_window_stats(self.login_lock, "login_lock", account)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _login_failed(self, account: str) -> bool:
        await self.limiter.hit(self.login_failures, "login_failures", account)
        stats = await self.limiter.get_window_stats(self.login_failures, "login_failures", account)
        if stats.remaining > 0:
            return False
        await self.limiter.hit(self.login_lock, "login_lock", account)
        await self.limiter.clear(self.login_failures, "login_failures", account)
        return True

    async def reset(self) -> None:
        await self.storage.reset()
