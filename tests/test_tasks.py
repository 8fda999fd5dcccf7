"""Background tasks: registered per app, scheduled by cron labels, run by the right process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from taskiq.schedule_sources import LabelScheduleSource

from multinotes.db import utcnow
from multinotes.keys import DB, TASKS
from multinotes.models import AuthSession
from multinotes.testing import ApiClient


async def test_purge_sessions_deletes_expired_and_long_revoked_sessions(api: ApiClient):
    await api.register_and_login("keep@example.com")
    async with api.app[DB].transaction() as session:
        user_id = await session.scalar(select(AuthSession.user_id))
        old = utcnow() - timedelta(days=3)
        session.add(
            AuthSession(user_id=user_id, token_hash="a" * 64, csrf_token="x", expires_at=old)
        )
        session.add(
            AuthSession(
                user_id=user_id,
                token_hash="b" * 64,
                csrf_token="x",
                expires_at=utcnow() + timedelta(days=3),
                revoked_at=old,
            )
        )
    from multinotes.core_tasks import purge_sessions

    assert await purge_sessions(api.app) == 2
    async with api.app[DB].read() as session:
        assert await session.scalar(select(func.count()).select_from(AuthSession)) == 1
    assert (await api.get("/api/me")).status == 200


async def test_periodic_tasks_carry_their_cron_schedule(api: ApiClient):
    source = LabelScheduleSource(api.app[TASKS].broker)
    await source.startup()
    schedules = await source.get_schedules()
    by_task = {s.task_name: s.cron for s in schedules}
    assert by_task["core.purge_sessions"] == "17 3 * * *"


def test_scheduler_process_runs_in_production(production_services, tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MULTINOTES_MODE": "production",
        "MULTINOTES_DATABASE_URL": production_services["database_url"],
        "MULTINOTES_REDIS_URL": production_services["redis_url"],
        "MULTINOTES_REDIS_PREFIX": production_services["redis_prefix"],
        "MULTINOTES_SECRET_KEY": "s" + "0123456789abcdefghijKLMNOPQRSTUVWXYZ" * 2,
        "MULTINOTES_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "multinotes.cli", "scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "Scheduler running."
        time.sleep(1.5)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_worker_and_scheduler_refuse_embedded_mode(tmp_path):
    for command in ("worker", "scheduler"):
        result = subprocess.run(
            [sys.executable, "-m", "multinotes.cli", command],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        assert result.returncode == 2
        assert "multinotes serve" in result.stderr


async def test_in_process_tasks_end_before_the_database_closes(tmp_path):
    """Embedded mode runs queued tasks in the web process. At shutdown they finish (or, past
    a bound, are stopped) before the database closes: one that went on writing afterwards held
    SQLite's write lock against whatever opened the file next."""
    import asyncio

    from aiohttp import web

    from multinotes import hookimpl
    from multinotes.testing import plugin_client

    class Slow:
        def __init__(self) -> None:
            self.finished: list[int] = []

        @hookimpl
        def register_tasks(self, register: Any) -> None:
            async def write_later(app: web.Application, number: int) -> None:
                await asyncio.sleep(0.5)
                async with app[DB].transaction() as session:
                    await session.execute(select(func.count(AuthSession.id)))
                self.finished.append(number)

            register("slow.write_later", write_later)

    slow = Slow()
    async with plugin_client(tmp_path / "data", [("slow", slow)]) as api:
        await api.app[TASKS].enqueue("slow.write_later", number=1)
    assert slow.finished == [1]
    running = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Receiver.callback"]
    assert running == []
