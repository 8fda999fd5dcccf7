"""Pub/sub between processes: in-process in embedded mode, Redis in production.

Used for "something changed, reload it" signals (plugin state, plugin settings), so every web and
worker process converges within moments without polling the database on each request.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Bus(ABC):
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    async def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(channel, ())):
            try:
                await handler(message)
            except Exception:
                log.exception("bus_handler_failed", channel=channel)

    @abstractmethod
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    async def start(self) -> None:  # noqa: B027 - optional for subclasses
        """Begin receiving messages."""

    async def stop(self) -> None:  # noqa: B027
        """Stop receiving messages."""


class LocalBus(Bus):
    """Embedded mode: one process, so delivery is a direct call."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._dispatch(channel, message)


class RedisBus(Bus):
    """Production: Redis pub/sub, so every web and worker process hears every message."""

    def __init__(self, redis: Any, prefix: str) -> None:
        super().__init__()
        self._redis = redis
        self._prefix = prefix + "bus:"
        self._task: asyncio.Task[None] | None = None
        self._pubsub: Any = None

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + channel, json.dumps(message))

    async def start(self) -> None:
        """Subscribe now if Redis answers; if it does not, the process starts all the same
        and the listener keeps trying (a web process must serve pages while Redis is down)."""
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await self._subscribe()
        except Exception as exc:
            log.warning("bus_subscribe_failed", error=f"{type(exc).__name__}: {exc}")
        self._task = asyncio.create_task(self._listen(), name="redis-bus")

    async def _subscribe(self) -> None:
        await self._pubsub.psubscribe(self._prefix + "*")

    @property
    def subscribed(self) -> bool:
        return bool(self._pubsub is not None and self._pubsub.patterns)

    async def _listen(self) -> None:
        from multinotes.tasks import Backoff

        # While Redis is away: one warning per attempt, attempts at most every few seconds.
        # redis-py reconnects and subscribes again on the next read that works; a subscription
        # that never worked (Redis down at start) is made here once Redis answers.
        backoff = Backoff()
        while True:
            try:
                if not self.subscribed:
                    await self._subscribe()
                    log.info("bus_subscribed")
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning(
                    "bus_receive_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                    failures=backoff.failures,
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if message is None or message.get("type") != "pmessage":
                continue
            channel = str(message["channel"])[len(self._prefix) :]
            try:
                payload = json.loads(message["data"])
            except (TypeError, ValueError):
                log.warning("bus_bad_message", channel=channel)
                continue
            await self._dispatch(channel, payload)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pubsub is not None:
            await self._pubsub.aclose()
