"""Production workers lose no task: real `multinotes worker` processes on a private Redis.

- a worker SIGKILLed mid-task: another worker finishes the task within a minute (defaults);
- SIGTERM (systemctl stop/restart): a short task finishes, a long one is handed back at once;
- Redis flushed or restarted under a running worker: it recovers by itself, tasks queued
  meanwhile run, and it does not spin on errors while Redis is away;
- a finished task leaves nothing (e.g. an email address) in the stream.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multinotes.settings import Settings
from tests.support.dists import write_dist
from tests.support.own_redis import OwnRedis

pytestmark = pytest.mark.slow

PLUGIN = """
    import asyncio, os
    from pathlib import Path
    from multinotes import hookimpl

    async def slow(app, path, seconds, label, email=None):
        with open(path, "a") as out:
            out.write(f"start {label} {os.getpid()}\\n")
        await asyncio.sleep(seconds)
        with open(path, "a") as out:
            out.write(f"done {label} {os.getpid()}\\n")

    @hookimpl
    def register_tasks(register):
        register("xwork.slow", slow)
"""


class Cluster:
    def __init__(self, tmp: Path, redis: OwnRedis, services: dict[str, str]) -> None:
        self.tmp = tmp
        self.redis = redis
        self.services = services
        self.prefix = f"w{secrets.token_hex(3)}:"
        self.journal = tmp / "journal.txt"
        self.journal.touch()
        site = tmp / "site"
        site.mkdir()
        write_dist(site, "mn-xwork", {"mn_xwork": PLUGIN}, {"xwork": "mn_xwork"})
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(site),
            "MULTINOTES_MODE": "production",
            "MULTINOTES_DATABASE_URL": services["database_url"],
            "MULTINOTES_REDIS_URL": redis.url,
            "MULTINOTES_REDIS_PREFIX": self.prefix,
            "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
            "MULTINOTES_LOG_LEVEL": "INFO",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def worker(self, name: str, **settings: str) -> subprocess.Popen[bytes]:
        env = {**self.env, **{f"MULTINOTES_{k.upper()}": v for k, v in settings.items()}}
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "multinotes.cli", "worker", "--data-dir", str(self.tmp / name)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def events(self) -> list[tuple[str, str, int]]:
        rows = []
        for line in self.journal.read_text().splitlines():
            what, label, pid = line.split()
            rows.append((what, label, int(pid)))
        return rows

    async def kick(self, label: str, seconds: float, **extra: Any) -> None:
        from taskiq.kicker import AsyncKicker

        from multinotes.tasks import TaskStream

        broker = TaskStream(
            Settings(mode="production", redis_url=self.redis.url, redis_prefix=self.prefix)
        )
        try:
            await AsyncKicker("xwork.slow", broker, {}).kiq(
                path=str(self.journal), seconds=seconds, label=label, **extra
            )
        finally:
            await broker.shutdown()

    async def wait_for(
        self, what: str, label: str, timeout: float, pid: int | None = None
    ) -> tuple[float, int]:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            for row in self.events():
                if row[0] == what and row[1] == label and pid in (None, row[2]):
                    return time.monotonic() - started, row[2]
            await asyncio.sleep(0.1)
        raise AssertionError(f"no '{what} {label}' within {timeout}s: {self.events()}")

    async def ready(self, name: str, timeout: float = 60) -> None:
        started = time.monotonic()
        while "Worker consuming" not in self.log(name):
            assert time.monotonic() - started < timeout, self.log(name)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the first read is under way

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def cluster(production_services, tmp_path: Path, redis_server: OwnRedis) -> Iterator[Cluster]:
    group = Cluster(tmp_path, redis_server, production_services)
    try:
        yield group
    finally:
        group.close()


@pytest.mark.long
async def test_a_killed_workers_task_is_finished_by_another_within_a_minute(cluster: Cluster):
    """Default settings: the task is reclaimed after task_claim_idle_seconds (30 s)."""
    a = cluster.worker("a")
    await cluster.ready("a")
    await cluster.kick("job", seconds=20)
    _, pid = await cluster.wait_for("start", "job", 30)
    assert pid == a.pid
    b = cluster.worker("b")
    await cluster.ready("b")
    a.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert ("done", "job", a.pid) not in cluster.events()
    await cluster.wait_for("start", "job", 60, pid=b.pid)
    taken_over = time.monotonic() - killed
    assert taken_over < 60
    await cluster.wait_for("done", "job", 30, pid=b.pid)
    assert cluster.redis.client().xlen(cluster.prefix + "tasks") == 0


async def test_a_slow_task_on_a_live_worker_is_not_taken_over(cluster: Cluster):
    """The worker renews what it holds, so a task longer than the claim idle time runs once."""
    cluster.worker("a", task_claim_idle_seconds="2")
    await cluster.ready("a")
    cluster.worker("b", task_claim_idle_seconds="2")
    await cluster.ready("b")
    await cluster.kick("long", seconds=7)
    await cluster.wait_for("done", "long", 30)
    await asyncio.sleep(3)
    assert [e[0] for e in cluster.events()] == ["start", "done"]


async def test_sigterm_finishes_a_short_task_and_hands_back_a_long_one(cluster: Cluster):
    a = cluster.worker("a", worker_shutdown_grace_seconds="4")
    await cluster.ready("a")
    await cluster.kick("long", seconds=15)
    await cluster.kick("short", seconds=2)
    await cluster.wait_for("start", "long", 30)
    await cluster.wait_for("start", "short", 30)
    a.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert a.wait(timeout=20) == 0, cluster.log("a")
    exit_after = time.monotonic() - stopped
    assert exit_after < 14  # the grace (4 s) and the shutdown, not the rest of the task
    assert ("done", "short", a.pid) in cluster.events()  # finished within the grace
    assert ("done", "long", a.pid) not in cluster.events()
    assert "tasks_handed_back" in cluster.log("a")
    # Handed back, the long task is waiting for the next worker, not held by a dead one:
    # a worker started now takes it at once, not after task_claim_idle_seconds (30 s).
    b = cluster.worker("b")
    await cluster.ready("b")
    await cluster.wait_for("start", "long", 5, pid=b.pid)
    await cluster.wait_for("done", "long", 30, pid=b.pid)
    starts = [e[2] for e in cluster.events() if e[:2] == ("start", "long")]
    assert starts == [a.pid, b.pid]
    assert cluster.redis.client().xlen(cluster.prefix + "tasks") == 0


async def test_finished_tasks_leave_no_arguments_in_the_stream(cluster: Cluster):
    cluster.worker("a")
    await cluster.ready("a")
    await cluster.kick("mail", seconds=0, email="private@example.com")
    await cluster.wait_for("done", "mail", 30)
    await asyncio.sleep(0.5)
    client = cluster.redis.client()
    assert client.xlen(cluster.prefix + "tasks") == 0
    dump = b"".join(str(v).encode() for v in client.xrange(cluster.prefix + "tasks"))
    assert b"private@example.com" not in dump


async def test_finished_entries_left_by_earlier_versions_are_purged(cluster: Cluster):
    """Before this version acknowledged entries (with their arguments) stayed in the stream."""
    client = cluster.redis.client()
    stream, group = cluster.prefix + "tasks", cluster.prefix + "workers"
    client.xgroup_create(stream, group, id="0", mkstream=True)
    old = client.xadd(stream, {"data": '{"kwargs": {"to": "old@example.com"}}'})
    client.xreadgroup(group, "old-worker", {stream: ">"})
    client.xack(stream, group, old)
    assert client.xlen(stream) == 1
    cluster.worker("a")
    await cluster.ready("a")
    started = time.monotonic()
    while client.xlen(stream):
        assert time.monotonic() - started < 10, client.xrange(stream)
        await asyncio.sleep(0.2)


async def test_worker_recovers_when_redis_loses_its_data(cluster: Cluster):
    cluster.worker("a")
    await cluster.ready("a")
    cluster.redis.client().flushall()
    await asyncio.sleep(1)
    # Queued while the consumer group is gone: must still run, not be skipped.
    await cluster.kick("after-flush", seconds=0)
    waited, _ = await cluster.wait_for("done", "after-flush", 20)
    assert waited < 10
    assert cluster.log("a").count("task_stream_unavailable") < 10


async def test_worker_waits_out_a_redis_outage_with_backoff(cluster: Cluster):
    a = cluster.worker("a")
    await cluster.ready("a")
    cluster.redis.stop()
    await asyncio.sleep(12)
    down_errors = cluster.log("a").count("task_stream_unavailable")
    # ~350/s without backoff; with it, a handful over 12 s.
    assert 1 <= down_errors <= 15, cluster.log("a")[-3000:]
    assert a.poll() is None
    cluster.redis.start()
    await cluster.kick("after-restart", seconds=0)
    waited, pid = await cluster.wait_for("done", "after-restart", 20)
    assert pid == a.pid
    assert waited < 10
