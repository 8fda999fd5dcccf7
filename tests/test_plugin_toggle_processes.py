"""Production mode: switching a plugin in one process takes effect in every web and worker
process within 2 seconds (Redis pub/sub), and background tasks run in the worker process.

Two real `multinotes serve` processes and one `multinotes worker` share MariaDB and Redis."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.dists import write_dist

pytestmark = pytest.mark.slow

PLUGIN = """
    from pathlib import Path
    from aiohttp import web
    from multinotes import hookimpl

    async def ping(request):
        return web.json_response({"pong": True})

    async def touch(app, path):
        Path(path).write_text("ran")

    @hookimpl
    def register_routes(register):
        register("GET", "/api/plugins/xproc/ping", ping, access="public")

    @hookimpl
    def register_tasks(register):
        register("xproc.touch", touch)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cluster(production_services, tmp_path: Path) -> Iterator[dict[str, object]]:
    from tests.conftest import _reset_production

    _reset_production(production_services)
    site = tmp_path / "site"
    site.mkdir()
    write_dist(site, "mn-xproc", {"mn_xproc": PLUGIN}, {"xproc": "mn_xproc"})
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(site),
        "MULTINOTES_MODE": "production",
        "MULTINOTES_DATABASE_URL": production_services["database_url"],
        "MULTINOTES_REDIS_URL": production_services["redis_url"],
        "MULTINOTES_REDIS_PREFIX": production_services["redis_prefix"],
        "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
        "MULTINOTES_ALLOWED_HOSTS": "127.0.0.1",
        "MULTINOTES_COOKIE_SECURE": "false",
        "MULTINOTES_LOG_LEVEL": "WARNING",
        # Far beyond the test's 2 s budget: only pub/sub can make it in time.
        "MULTINOTES_PLUGIN_REFRESH_SECONDS": "300",
    }
    ports = [free_port(), free_port()]
    logs = [open(tmp_path / f"proc{i}.log", "w") for i in range(3)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "multinotes.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / f"d{i}"),
            ],
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        for i, port in enumerate(ports)
    ]
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "multinotes.cli", "worker", "--data-dir", str(tmp_path / "dw")],
            env=env,
            stdout=logs[2],
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    )
    try:
        yield {
            "urls": [f"http://127.0.0.1:{p}" for p in ports],
            "env": env,
            "tmp": tmp_path,
            "services": production_services,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


async def wait_until(check, timeout: float) -> float:
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


async def kick(services: dict[str, str], task: str, **kwargs: object) -> None:
    from taskiq.kicker import AsyncKicker
    from taskiq_redis import RedisStreamBroker

    broker = RedisStreamBroker(
        url=services["redis_url"],
        queue_name=services["redis_prefix"] + "tasks",
        consumer_group_name=services["redis_prefix"] + "workers",
    )
    await broker.startup()
    try:
        await AsyncKicker(task, broker, {}).kiq(**kwargs)
    finally:
        await broker.shutdown()


async def test_toggle_reaches_every_process_within_two_seconds(cluster):
    a, b = cluster["urls"]
    tmp: Path = cluster["tmp"]  # type: ignore[assignment]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:

        async def up(url: str) -> bool:
            try:
                async with http.get(url + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        for url in (a, b):
            await wait_until(lambda url=url: up(url), 60)
        # Give the worker a moment to join the consumer group.
        await asyncio.sleep(1.0)

        body = {
            "email": "root@example.com",
            "password": "correct horse battery staple",
            "name": "Root",
        }
        async with http.post(a + "/api/auth/register", json=body) as r:
            assert r.status == 201
        login = {"email": body["email"], "password": body["password"]}
        async with http.post(a + "/api/auth/login", json=login) as r:
            assert r.status == 200
            csrf = (await r.json())["csrf_token"]

        async def ping_status(url: str) -> int:
            async with http.get(url + "/api/plugins/xproc/ping") as r:
                return r.status

        assert await ping_status(b) == 200
        # The worker runs the plugin's task while it is enabled.
        first = tmp / "first.txt"
        await kick(cluster["services"], "xproc.touch", path=str(first))  # type: ignore[arg-type]
        await wait_until(lambda: asyncio.sleep(0, first.exists()), 10)

        async with http.patch(
            a + "/api/admin/plugins/xproc", json={"enabled": False}, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 200, await r.text()
        elapsed = await wait_until(lambda: _eq(ping_status(b), 404), 2.0)
        assert elapsed < 2.0

        # The worker heard it too: a task of the disabled plugin is skipped.
        await asyncio.sleep(0.5)
        skipped = tmp / "skipped.txt"
        await kick(cluster["services"], "xproc.touch", path=str(skipped))  # type: ignore
        await asyncio.sleep(2.0)
        assert not skipped.exists()

        # Still logged in through the shared cookie, so this write carries the CSRF token.
        async with http.post(
            b + "/api/auth/login", json=login, headers={"X-CSRF-Token": csrf}
        ) as r:
            csrf_b = (await r.json())["csrf_token"]
        async with http.patch(
            b + "/api/admin/plugins/xproc", json={"enabled": True}, headers={"X-CSRF-Token": csrf_b}
        ) as r:
            assert r.status == 200
        assert await wait_until(lambda: _eq(ping_status(a), 200), 2.0) < 2.0
        again = tmp / "again.txt"
        await asyncio.sleep(0.5)
        await kick(cluster["services"], "xproc.touch", path=str(again))  # type: ignore
        await wait_until(lambda: asyncio.sleep(0, again.exists()), 10)


async def _eq(awaitable, expected) -> bool:
    return (await awaitable) == expected
