"""Background jobs on taskiq: in-memory inside the web process (embedded), Redis streams with
separate worker and scheduler processes (production).

Tasks are registered per app (no module-global broker); each task function is called as
``func(app, **kwargs)`` so it reaches the database and settings through the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from taskiq import AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.api import run_scheduler_task
from taskiq.schedule_sources import LabelScheduleSource

from multinotes.plugin_host import TaskDef
from multinotes.settings import Settings

log = structlog.get_logger(__name__)

TaskFunc = Callable[..., Awaitable[Any]]


def make_broker(settings: Settings) -> AsyncBroker:
    if settings.is_production:
        from taskiq_redis import RedisStreamBroker

        assert settings.redis_url
        return RedisStreamBroker(
            url=settings.redis_url,
            queue_name=settings.redis_prefix + "tasks",
            consumer_group_name=settings.redis_prefix + "workers",
            xread_block=settings.task_poll_block_ms,
        )
    return InMemoryBroker()


class TaskQueue:
    """Names → tasks; ``enqueue`` sends one to the broker."""

    def __init__(self, app: web.Application, broker: AsyncBroker) -> None:
        self.app = app
        self.broker = broker
        self._tasks: dict[str, Any] = {}
        self._enabled: Callable[[str], bool] = lambda plugin: True

    def gate(self, enabled: Callable[[str], bool]) -> None:
        """Plugin tasks are skipped while their plugin is disabled."""
        self._enabled = enabled

    def register(self, task: TaskDef) -> None:
        app = self.app
        enabled = lambda: self._enabled(task.plugin)  # noqa: E731

        async def run(**kwargs: Any) -> Any:
            if task.plugin != "core" and not enabled():
                log.info("task_skipped_plugin_disabled", task=task.name, plugin=task.plugin)
                return None
            return await task.func(app, **kwargs)

        run.__name__ = task.name.replace(".", "_")
        labels: dict[str, Any] = {}
        if task.schedule:
            labels["schedule"] = [{"cron": task.schedule}]
        self._tasks[task.name] = self.broker.register_task(run, task_name=task.name, **labels)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    async def enqueue(self, task_name: str, /, **kwargs: Any) -> None:
        await self._tasks[task_name].kiq(**kwargs)

    async def run_scheduler(self) -> None:
        scheduler = TaskiqScheduler(self.broker, [LabelScheduleSource(self.broker)])
        await run_scheduler_task(scheduler)


@contextlib.asynccontextmanager
async def embedded_scheduler(queue: TaskQueue) -> Any:
    task = asyncio.create_task(queue.run_scheduler(), name="scheduler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
