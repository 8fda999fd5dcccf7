"""Background jobs on taskiq: in-memory inside the web process (embedded), Redis streams with
separate worker and scheduler processes (production).

Tasks are registered per app (no module-global broker); each task function is called as
``func(app, **kwargs)`` so it reaches the database and settings through the app.

Production delivery (``TaskStream``) is at least once:

- a worker renews the tasks it holds every third of ``task_claim_idle_seconds``; a task nobody
  renewed for that long (its worker was SIGKILLed or hangs) is claimed by another worker;
- on SIGTERM a worker stops reading, lets running tasks finish for
  ``worker_shutdown_grace_seconds`` and hands the rest back to the stream at once;
- a task's arguments travel encrypted under the master key (``TaskQueue.enqueue``), and a
  finished task is acknowledged *and deleted* from the stream, so the stream holds only tasks
  not yet done and no readable personal data; ``task_stream_maxlen`` bounds it in case of a
  runaway backlog;
- when Redis is unreachable or lost its data (no consumer group), the worker retries with
  backoff (at most one attempt per ``MAX_BACKOFF`` seconds) and recreates the group from the
  start of the stream, so tasks queued meanwhile run.

Only one ``multinotes scheduler`` schedules at a time: the others wait on a Redis lock with a
TTL that the active one renews. Workers and the scheduler leave heartbeat keys with a TTL that
``/readyz`` and ``/metrics`` read (``task_status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from pydantic_core import to_jsonable_python
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError, ResponseError
from taskiq import AckableMessage, AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.api import run_scheduler_task
from taskiq.receiver import Receiver
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisStreamBroker

from multinotes.plugin_host import TaskDef
from multinotes.settings import Settings

log = structlog.get_logger(__name__)

TaskFunc = Callable[..., Awaitable[Any]]

#: The one argument a queued task carries: its real arguments, encrypted (``TaskQueue``).
SEALED = "sealed"
#: Longest wait between two attempts to reach Redis again.
MAX_BACKOFF = 5.0
#: Seconds between two purges of finished entries from the stream (``purge_acknowledged``).
PURGE_EVERY = 300.0
#: Connection timeouts of every Redis client of the app: a dead server fails fast.
REDIS_CONNECT_TIMEOUT = 2.0


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for every Redis connection pool of the app."""
    return {
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        # Above the longest blocking read (XREADGROUP BLOCK), so only a dead link times out.
        "socket_timeout": settings.task_poll_block_ms / 1000 + 5,
        "health_check_interval": 10,
    }


class Backoff:
    """Exponential delays from 0.25 s up to ``MAX_BACKOFF``; ``reset`` after a success."""

    def __init__(self, first: float = 0.25, cap: float = MAX_BACKOFF) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return float(min(self.cap, self.first * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


class TaskStream(RedisStreamBroker):
    """taskiq-redis's stream broker, made to lose nothing when workers or Redis go away.

    taskiq-redis reclaims abandoned tasks only after a read that returned new tasks, with a
    10-minute idle time, never renews the tasks a live worker holds, leaves acknowledged entries
    (and their arguments) in the stream forever, and on a lost consumer group fails every read
    at once, forever. This subclass replaces ``listen`` and ``kick`` and the acknowledgement.
    """

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url
        claim_idle_ms = int(settings.task_claim_idle_seconds * 1000)
        super().__init__(
            url=settings.redis_url,
            queue_name=settings.redis_prefix + "tasks",
            consumer_group_name=settings.redis_prefix + "workers",
            consumer_name=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            # A group created after the stream (Redis lost its data, first deploy) starts at its
            # beginning: tasks queued before any worker existed still run.
            consumer_id="0",
            xread_block=settings.task_poll_block_ms,
            maxlen=settings.task_stream_maxlen,
            approximate=True,
            idle_timeout=claim_idle_ms,
            unacknowledged_batch_size=10,
            xread_count=10,
            **redis_options(settings),
        )
        #: Seconds between two looks for abandoned tasks.
        self.claim_every = max(1.0, settings.task_claim_idle_seconds / 3)
        #: Tasks this process read and has not finished: stream id -> message body.
        self.held: dict[str, bytes] = {}
        self.handed_back: set[str] = set()
        self.stopping = False
        self._claim_cursor = "0-0"
        self._last_claim = 0.0
        self._backoff = Backoff()

    # -- sending ----------------------------------------------------------------------------

    async def kick(self, message: Any) -> None:
        async with Redis(connection_pool=self.connection_pool) as conn:
            await conn.xadd(
                self.queue_name,
                {b"data": message.message},
                maxlen=self.maxlen,
                approximate=True,
            )

    # -- receiving --------------------------------------------------------------------------

    async def startup(self) -> None:
        """Start even while Redis is down: a web process only sends tasks (each send answers
        503 until Redis is back), and a worker's ``listen`` creates the group on its first
        read that finds none."""
        try:
            await super().startup()
        except RedisError as exc:
            log.warning("task_group_not_declared", error=f"{type(exc).__name__}: {exc}")

    async def _declare_consumer_group(self) -> None:
        async with Redis(connection_pool=self.connection_pool) as conn:
            try:
                await conn.xgroup_create(
                    self.queue_name, self.consumer_group_name, id="0", mkstream=True
                )
                log.info("task_group_created", stream=self.queue_name)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _ackable(self, msg_id: Any, fields: dict[Any, Any]) -> AckableMessage:
        key = msg_id.decode() if isinstance(msg_id, bytes) else str(msg_id)
        data = fields[b"data"]
        self.held[key] = data
        return AckableMessage(data=data, ack=lambda: self._ack(key))

    async def _ack(self, msg_id: str) -> None:
        """Acknowledge and delete a finished task; retried while Redis is away (then the task
        would run again elsewhere: at least once)."""
        if msg_id in self.handed_back:
            return
        backoff = Backoff()
        for _attempt in range(8):
            try:
                async with (
                    Redis(connection_pool=self.connection_pool) as conn,
                    conn.pipeline(transaction=True) as pipe,
                ):
                    pipe.xack(self.queue_name, self.consumer_group_name, msg_id)
                    pipe.xdel(self.queue_name, msg_id)
                    await pipe.execute()
                break
            except RedisError as exc:
                log.warning("task_ack_failed", task_id=msg_id, error=type(exc).__name__)
                await asyncio.sleep(backoff.next())
        self.held.pop(msg_id, None)

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """New tasks, then (every ``claim_every`` seconds) tasks abandoned by other workers.
        Ends once ``stopping`` is set; whatever was read but not yet yielded stays in ``held``
        and is handed back."""
        backoff = self._backoff
        while not self.stopping:
            try:
                async with contextlib.aclosing(self._read()) as reader:
                    async for message in reader:
                        yield message
                        if self.stopping:
                            return
            except RedisError as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    log.warning("task_group_missing", stream=self.queue_name)
                    with contextlib.suppress(RedisError):
                        await self._declare_consumer_group()
                        continue
                delay = backoff.next()
                log.warning(
                    "task_stream_unavailable",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                    failures=backoff.failures,
                )
                await asyncio.sleep(delay)

    async def _read(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as conn:
            while not self.stopping:
                fetched: Any = await conn.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                self._backoff.reset()
                batch = [
                    self._ackable(msg_id, fields)
                    for _stream, entries in fetched or []
                    for msg_id, fields in entries
                ]
                if time.monotonic() - self._last_claim >= self.claim_every:
                    batch.extend(await self._claim_abandoned(conn))
                if not batch:
                    continue
                for message in batch:
                    yield message
                    if self.stopping:
                        return

    async def _claim_abandoned(self, conn: Redis) -> list[AckableMessage]:
        self._last_claim = time.monotonic()
        result = await conn.xautoclaim(
            self.queue_name,
            self.consumer_group_name,
            self.consumer_name,
            min_idle_time=self.idle_timeout,
            start_id=self._claim_cursor,
            count=self.unacknowledged_batch_size,
        )
        cursor, entries = result[0], result[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        claimed = []
        for msg_id, fields in entries:
            if not fields:  # deleted meanwhile (Redis drops it from the pending list)
                continue
            message = self._ackable(msg_id, fields)
            log.warning("task_reclaimed", stream_id=str(msg_id))
            claimed.append(message)
        return claimed

    # -- keeping and giving back ------------------------------------------------------------

    async def renew_held(self) -> None:
        """Reset the idle time of every task this worker holds, so no other worker claims
        a task that is merely slow. A task another worker claimed within the last moments
        (we were frozen) is left to it."""
        ids: list[Any] = [i for i in self.held if i not in self.handed_back]
        if not ids:
            return
        async with Redis(connection_pool=self.connection_pool) as conn:
            await conn.xclaim(
                self.queue_name,
                self.consumer_group_name,
                self.consumer_name,
                min_idle_time=int(self.claim_every * 250),
                message_ids=ids,
                justid=True,
            )

    async def hand_back(self) -> int:
        """Put every task this worker holds back on the stream as a new entry (any worker
        takes it at once) and drop our claim on it; a late acknowledgement is ignored."""
        pending = {i: d for i, d in self.held.items() if i not in self.handed_back}
        if not pending:
            return 0
        async with (
            Redis(connection_pool=self.connection_pool) as conn,
            conn.pipeline(transaction=True) as pipe,
        ):
            for msg_id, data in pending.items():
                pipe.xadd(self.queue_name, {b"data": data})
                pipe.xack(self.queue_name, self.consumer_group_name, msg_id)
                pipe.xdel(self.queue_name, msg_id)
            await pipe.execute()
        self.handed_back.update(pending)
        log.warning("tasks_handed_back", count=len(pending))
        return len(pending)

    async def purge_acknowledged(self) -> int:
        """Delete entries every worker is done with that are still in the stream (left by
        earlier versions, which kept them, or by an acknowledgement that failed to delete):
        everything before the oldest task still pending or waiting."""
        async with Redis(connection_pool=self.connection_pool) as conn:
            groups = await conn.xinfo_groups(self.queue_name)
            group = next(
                (g for g in groups if _text(g.get("name")) == self.consumer_group_name), None
            )
            if group is None:
                return 0
            last = _text(group.get("last-delivered-id")) or "0-0"
            keep_from = _next_id(last)
            summary = await conn.xpending(self.queue_name, self.consumer_group_name)
            if summary and summary.get("pending"):
                keep_from = min(keep_from, _parse_id(_text(summary["min"])))
            removed = await conn.xtrim(
                self.queue_name, minid=f"{keep_from[0]}-{keep_from[1]}", approximate=False
            )
        if removed:
            log.info("task_stream_purged", removed=removed)
        return int(removed)

    async def leave_group(self) -> None:
        """Forget this consumer in the group, unless Redis still lists tasks under its name
        (they would be lost with it; another worker claims them instead)."""
        async with Redis(connection_pool=self.connection_pool) as conn:
            info = await conn.xpending_range(
                self.queue_name, self.consumer_group_name, "-", "+", 1, self.consumer_name
            )
            if not info:
                await conn.xgroup_delconsumer(
                    self.queue_name, self.consumer_group_name, self.consumer_name
                )


def make_broker(settings: Settings) -> AsyncBroker:
    if settings.is_production:
        return TaskStream(settings)
    return InMemoryBroker()


#: At shutdown, how long the tasks an embedded process runs itself get to end before they are
#: stopped (and the database they write to closes).
IN_PROCESS_TASKS_GRACE_SECONDS = 10.0


async def finish_in_process_tasks(broker: AsyncBroker, seconds: float) -> None:
    """Embedded mode: let the tasks the in-memory broker runs in this process end, then stop
    those still running after ``seconds``. A task left running wrote on after the database
    closed (holding SQLite's write lock against whatever opened the file next)."""
    if not isinstance(broker, InMemoryBroker):
        return
    # taskiq keeps them in a private set; its public ``wait_all`` has no bound and no cancel.
    running = [task for task in getattr(broker, "_running_tasks", ()) if not task.done()]
    if not running:
        return
    _, late = await asyncio.wait(running, timeout=seconds)
    if late:
        log.warning("in_process_tasks_stopped_at_shutdown", tasks=len(late))
        for task in late:
            task.cancel()
        await asyncio.wait(late, timeout=seconds)


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
            if SEALED in kwargs:
                kwargs = self._open(kwargs[SEALED])
            return await task.func(app, **kwargs)

        run.__name__ = task.name.replace(".", "_")
        labels: dict[str, Any] = {}
        if task.schedule:
            labels["schedule"] = [{"cron": task.schedule}]
        self._tasks[task.name] = self.broker.register_task(run, task_name=task.name, **labels)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    async def enqueue(self, task_name: str, /, **kwargs: Any) -> None:
        """Queue a task. Its arguments travel encrypted under the master key (mail addresses,
        names and the like are unreadable in Redis, in its dumps and its backups)."""
        await self._tasks[task_name].kiq(**{SEALED: self._seal(kwargs)})

    def _seal(self, kwargs: dict[str, Any]) -> str:
        from multinotes.keys import SECRETS

        return str(self.app[SECRETS].encrypt(json.dumps(to_jsonable_python(kwargs))))

    def _open(self, sealed: str) -> dict[str, Any]:
        from multinotes.keys import SECRETS

        opened: dict[str, Any] = json.loads(self.app[SECRETS].decrypt(sealed))
        return opened

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


# -- production processes -------------------------------------------------------------------


def heartbeat_key(settings: Settings, role: str, name: str = "") -> str:
    return f"{settings.redis_prefix}heartbeat:{role}" + (f":{name}" if name else "")


def scheduler_lock_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}scheduler:lock"


def _stop_event() -> asyncio.Event:
    """Set by SIGTERM (systemctl stop/restart) and SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_worker(app: web.Application, redis: Redis, concurrency: int) -> None:
    """``multinotes worker``: run tasks until SIGTERM, then finish or hand back what is held."""
    from multinotes.keys import SETTINGS, TASKS

    settings = app[SETTINGS]
    broker = app[TASKS].broker
    assert isinstance(broker, TaskStream)
    broker.is_worker_process = True
    broker.count = max(1, min(concurrency, 10))
    stop = _stop_event()
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[Any]] = set()

    with ThreadPoolExecutor(max_workers=2) as executor:
        receiver = Receiver(
            broker=broker, executor=executor, max_async_tasks=concurrency, run_startup=False
        )

        async def run_one(message: AckableMessage) -> None:
            try:
                await receiver.callback(message=message, raise_err=False)
            except Exception:
                log.exception("task_callback_failed")
            finally:
                slots.release()

        async def consume() -> None:
            stream = broker.listen()
            try:
                while True:
                    await slots.acquire()
                    try:
                        message = await anext(stream)
                    except StopAsyncIteration:
                        slots.release()
                        return
                    task = asyncio.create_task(run_one(message))
                    running.add(task)
                    task.add_done_callback(running.discard)
            finally:
                await stream.aclose()

        async def heartbeat() -> None:
            key = heartbeat_key(settings, "worker", broker.consumer_name)
            ttl = max(1, round(settings.heartbeat_seconds * 3))
            # Renewals at twice the claim checks' pace: a held task never looks abandoned.
            interval = min(settings.heartbeat_seconds, broker.claim_every / 2)
            purged_at = 0.0
            while True:
                try:
                    await redis.set(key, str(time.time()), ex=ttl)
                    await broker.renew_held()
                    if time.monotonic() - purged_at > PURGE_EVERY:
                        purged_at = time.monotonic()
                        await broker.purge_acknowledged()
                except RedisError as exc:
                    log.warning("worker_heartbeat_failed", error=type(exc).__name__)
                await asyncio.sleep(interval)

        consumer = asyncio.create_task(consume(), name="task-consumer")
        beat = asyncio.create_task(heartbeat(), name="worker-heartbeat")
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({consumer, stopped}, return_when=asyncio.FIRST_COMPLETED)
        log.info("worker_stopping", running=len(running))
        broker.stopping = True
        grace_ends = time.monotonic() + settings.worker_shutdown_grace_seconds
        # The current read ends within task_poll_block_ms; do not break into it, or tasks it
        # took would be held by nobody until claimed. Running tasks go on meanwhile.
        await asyncio.wait({consumer}, timeout=settings.task_poll_block_ms / 1000 + 1)
        consumer.cancel()
        if running and time.monotonic() < grace_ends:
            await asyncio.wait(set(running), timeout=grace_ends - time.monotonic())
        try:
            await broker.hand_back()
        except RedisError:
            log.exception("hand_back_failed")  # claimed by another worker after the idle time
        for task in list(running):
            task.cancel()
        if running:
            await asyncio.wait(set(running), timeout=5)
        beat.cancel()
        stopped.cancel()
        with contextlib.suppress(RedisError):
            await redis.delete(heartbeat_key(settings, "worker", broker.consumer_name))
            await broker.leave_group()
    log.info("worker_stopped")


async def run_scheduler(app: web.Application, redis: Redis) -> None:
    """``multinotes scheduler``: schedule periodic tasks while holding the scheduler lock.

    The lock has a TTL of three heartbeats and the holder renews it every heartbeat; a
    scheduler that loses it (Redis lost its data, a long pause) stops scheduling and queues
    for it again. So with two schedulers running, every job is sent once, and if the active
    one dies the other takes over within the TTL."""
    from multinotes.keys import SETTINGS, TASKS

    settings = app[SETTINGS]
    stop = _stop_event()
    ttl = max(2.0, settings.heartbeat_seconds * 3)
    lock = redis.lock(scheduler_lock_key(settings), timeout=ttl)
    backoff = Backoff()
    while not stop.is_set():
        try:
            acquired = await lock.acquire(blocking=False)
        except RedisError as exc:
            delay = backoff.next()
            log.warning("scheduler_lock_unavailable", error=type(exc).__name__, retry_in=delay)
            await _wait(stop, delay)
            continue
        backoff.reset()
        if not acquired:
            await _wait(stop, settings.heartbeat_seconds)
            continue
        log.info("scheduler_active")
        scheduling = asyncio.create_task(app[TASKS].run_scheduler(), name="scheduler")
        try:
            while not stop.is_set() and not scheduling.done():
                await _wait(stop, settings.heartbeat_seconds)
                if stop.is_set():
                    break
                try:
                    await lock.reacquire()
                except LockError:
                    log.warning("scheduler_lock_lost")
                    break
                except RedisError as exc:
                    # Keep scheduling while the lock's TTL lasts; Redis may be back in time.
                    log.warning("scheduler_lock_renew_failed", error=type(exc).__name__)
        finally:
            scheduling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await scheduling
        if stop.is_set():
            with contextlib.suppress(LockError, RedisError):
                await lock.release()
    log.info("scheduler_stopped")


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


# -- status for /readyz and /metrics --------------------------------------------------------


@dataclass(frozen=True)
class TaskStatus:
    workers: int
    scheduler: bool
    #: Tasks in the stream no worker took yet, and the age of the oldest of them.
    waiting: int
    oldest_waiting_seconds: float
    #: Tasks a worker took and has not finished.
    in_progress: int


def _stream_id_time(stream_id: Any) -> float:
    text = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
    return int(text.split("-", 1)[0]) / 1000


async def task_status(redis: Redis, settings: Settings) -> TaskStatus:
    """Live workers and scheduler (by heartbeat) and the queue, read from Redis."""
    workers = 0
    async for _key in redis.scan_iter(match=heartbeat_key(settings, "worker", "*"), count=200):
        workers += 1
    scheduler = bool(await redis.exists(scheduler_lock_key(settings)))
    stream = settings.redis_prefix + "tasks"
    group_name = settings.redis_prefix + "workers"
    waiting = in_progress = 0
    oldest = 0.0
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no stream yet
        groups = []
    group = next((g for g in groups if _text(g.get("name")) == group_name), None)
    if group is not None:
        in_progress = int(group.get("pending") or 0)
        last = _text(group.get("last-delivered-id")) or "0-0"
        first = await redis.xrange(stream, min=f"({last}", max="+", count=1)
        if first:
            oldest = max(0.0, time.time() - _stream_id_time(first[0][0]))
            waiting = int(group.get("lag") or 0) or await _count_after(redis, stream, last)
    return TaskStatus(workers, scheduler, waiting, oldest, in_progress)


async def _count_after(redis: Redis, stream: str, last: str) -> int:
    entries = await redis.xrange(stream, min=f"({last}", max="+", count=10_000)
    return len(entries or [])


def _parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(stream_id: str) -> tuple[int, int]:
    ms, seq = _parse_id(stream_id)
    return ms, seq + 1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
