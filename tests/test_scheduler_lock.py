"""Two `multinotes scheduler` processes send each periodic task once; when the active one dies,
the other takes over within the lock's TTL (three heartbeats)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.own_redis import own_redis

pytestmark = pytest.mark.slow

EVERY_MINUTE = b"core.settle_stale_generations"


@pytest.mark.long
def test_two_schedulers_send_each_periodic_task_once(production_services, tmp_path: Path):
    with own_redis(tmp_path / "redis") as redis:
        prefix = f"s{secrets.token_hex(3)}:"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MULTINOTES_MODE": "production",
            "MULTINOTES_DATABASE_URL": production_services["database_url"],
            "MULTINOTES_REDIS_URL": redis.url,
            "MULTINOTES_REDIS_PREFIX": prefix,
            "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
            "MULTINOTES_LOG_LEVEL": "INFO",
            "MULTINOTES_HEARTBEAT_SECONDS": "1",
        }
        logs = [tmp_path / f"s{i}.log" for i in range(2)]
        procs = []
        for i in range(2):
            with logs[i].open("w") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "multinotes.cli", "scheduler"],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=tmp_path,
                    )
                )
        client = redis.client()
        try:
            deadline = time.monotonic() + 60
            while not all("Scheduler running." in log.read_text() for log in logs):
                assert time.monotonic() < deadline, [log.read_text() for log in logs]
                time.sleep(0.2)

            # A scheduler sends an every-minute task when it becomes active and then every
            # 60 s (taskiq counts from its first send, not from the clock's minute). With both
            # running for over a minute, exactly one of them sends: two sends 60 s apart.
            def every_minute_sends() -> list[float]:
                entries = client.xrange(prefix + "tasks")
                # A stream entry's id starts with the time it was added, in ms.
                sends = [i for i, e in entries if EVERY_MINUTE in e[b"data"]]
                return [int(i.split(b"-")[0]) / 1e3 for i in sends]

            deadline = time.monotonic() + 30
            while not every_minute_sends():
                assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
                time.sleep(0.2)
            deadline = time.monotonic() + 80
            while len(every_minute_sends()) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # a second scheduler's send would land by now
            sent = every_minute_sends()
            assert len(sent) == 2 and sent[1] - sent[0] >= 58, (
                sent,
                [log.read_text()[-2000:] for log in logs],
            )
            active = [i for i, log in enumerate(logs) if "scheduler_active" in log.read_text()]
            assert len(active) == 1

            # The active one is killed: the other holds the lock within the TTL (3 s here).
            procs[active[0]].send_signal(signal.SIGKILL)
            other = logs[1 - active[0]]
            deadline = time.monotonic() + 10
            while "scheduler_active" not in other.read_text():
                assert time.monotonic() < deadline, other.read_text()
                time.sleep(0.2)
            assert client.exists(prefix + "scheduler:lock")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        # Stopped cleanly, the last scheduler gave the lock up at once.
        assert not client.exists(prefix + "scheduler:lock")
