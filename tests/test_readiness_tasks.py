"""/readyz and /metrics know about the background side: live workers and scheduler (heartbeats in
Redis), tasks waiting and how long; /metrics needs the scrape token in production; with
PROMETHEUS_MULTIPROC_DIR one scrape covers every process.

Real `multinotes worker`, `scheduler` and `serve` processes on a private redis-server."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from multinotes.app import create_app
from multinotes.keys import TASKS
from multinotes.settings import Settings
from multinotes.testing import app_client
from tests.support.own_redis import OwnRedis, free_port

TOKEN = "scrape-" + "t" * 24
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


def process_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url and settings.redis_url
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MULTINOTES_MODE": "production",
        "MULTINOTES_DATABASE_URL": settings.database_url,
        "MULTINOTES_REDIS_URL": settings.redis_url,
        "MULTINOTES_REDIS_PREFIX": settings.redis_prefix,
        "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
        "MULTINOTES_LOG_LEVEL": "WARNING",
        "MULTINOTES_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "MULTINOTES_ALLOWED_HOSTS": "127.0.0.1",
        "MULTINOTES_COOKIE_SECURE": "false",
        "MULTINOTES_METRICS_TOKEN": TOKEN,
    }


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "multinotes.cli", *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def eventually(check: Callable[[], object], timeout: float) -> float:
    started = time.monotonic()
    while True:
        if await check():  # type: ignore[misc]
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.2)


def gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing"
    return float(match.group(1))


async def test_embedded_mode_counts_its_in_process_worker(make_settings, mode):
    if mode != "embedded":
        pytest.skip("embedded mode only")
    app = create_app(make_settings(metrics_token=TOKEN, embedded_scheduler=True), plugins=[])
    async with app_client(app) as api:
        assert "scheduler" in {task.get_name() for task in asyncio.all_tasks()}
        body = await api.get_json("/readyz")
        assert body["checks"]["workers"] == body["checks"]["scheduler"] == "ok"
        text = await (
            await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        ).text()
        assert gauge(text, "multinotes_task_workers") == 1.0


async def test_embedded_mode_without_its_scheduler_says_so(make_settings, mode):
    """Tests turn the in-process scheduler off (they call the sweeps they check); /readyz
    does not pretend one runs."""
    if mode != "embedded":
        pytest.skip("embedded mode only")
    app = create_app(make_settings(), plugins=[])
    async with app_client(app) as api:
        assert "scheduler" not in {task.get_name() for task in asyncio.all_tasks()}
        response = await api.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["checks"]["scheduler"] == "error: no scheduler is alive"
        assert body["checks"]["workers"] == "ok"


async def test_metrics_need_the_scrape_token_in_production(make_settings, mode):
    if mode != "production":
        pytest.skip("production mode only")
    async with app_client(create_app(make_settings(), plugins=[])) as api:
        refused = await api.get("/metrics")
        assert refused.status == 403
        assert "MULTINOTES_METRICS_TOKEN" in (await refused.json())["error"]["message"]
    async with app_client(create_app(make_settings(metrics_token=TOKEN), plugins=[])) as api:
        assert (await api.get("/metrics")).status == 401
        wrong = await api.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        ok = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 200
        assert "multinotes_http_requests_total" in await ok.text()


@pytest.mark.slow
async def test_readyz_follows_worker_and_scheduler_heartbeats(
    make_settings, mode, redis_server: OwnRedis, tmp_path: Path
):
    if mode != "production":
        pytest.skip("production mode only")
    settings = make_settings(redis_url=redis_server.url, heartbeat_seconds=1.0)
    env = process_env(settings)
    async with app_client(create_app(settings, plugins=[])) as api:

        async def ready() -> dict:
            response = await api.get("/readyz")
            body = await response.json()
            return body if response.status == 200 else {}

        body = await (await api.get("/readyz")).json()
        assert body["checks"]["workers"] == "error: no worker is alive"
        assert body["checks"]["scheduler"] == "error: no scheduler is alive"
        # What the web process itself needs is there: the upgrade gate and load balancers ask
        # only that, before a new release's worker is started.
        web_only = await api.get("/readyz?scope=web")
        assert web_only.status == 200
        assert (await web_only.json())["checks"] == {"database": "ok", "redis": "ok"}

        worker = spawn(["worker"], env, tmp_path / "worker.log")
        scheduler = spawn(["scheduler"], env, tmp_path / "scheduler.log")
        try:
            await eventually(ready, 90)
            body = await ready()
            assert body["tasks"]["workers"] == 1 and body["tasks"]["scheduler"] is True

            worker.send_signal(signal.SIGKILL)  # no goodbye: only the heartbeat's TTL tells
            worker.wait()

            async def worker_gone() -> bool:
                body = await (await api.get("/readyz")).json()
                return body["checks"]["workers"] == "error: no worker is alive"

            assert await eventually(worker_gone, 10) < 6  # TTL: three 1-second heartbeats
            response = await api.get("/readyz")
            assert response.status == 503
            assert (await response.json())["checks"]["scheduler"] == "ok"
        finally:
            stop(worker, scheduler)
        # A scheduler that stops cleanly says so at once.
        body = await (await api.get("/readyz")).json()
        assert body["checks"]["scheduler"] == "error: no scheduler is alive"


async def test_a_task_waiting_too_long_fails_readyz_and_shows_in_metrics(
    make_settings, mode, redis_server: OwnRedis
):
    if mode != "production":
        pytest.skip("production mode only")
    settings = make_settings(
        redis_url=redis_server.url, ready_max_task_wait_seconds=1.0, metrics_token=TOKEN
    )
    app = create_app(settings)
    async with app_client(app) as api:
        await app[TASKS].enqueue("core.purge_sessions")  # no worker runs in this test
        await asyncio.sleep(1.5)
        response = await api.get("/readyz")
        body = await response.json()
        assert response.status == 503
        assert body["checks"]["queue"].startswith("error: a task has waited")
        assert (await api.get("/readyz?scope=web")).status == 200
        assert body["tasks"]["waiting"] == 1
        text = await (
            await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        ).text()
        assert gauge(text, "multinotes_tasks_waiting") == 1.0
        assert gauge(text, "multinotes_task_oldest_waiting_seconds") >= 1.0
        assert gauge(text, "multinotes_task_workers") == 0.0


@pytest.mark.slow
async def test_one_scrape_counts_the_requests_of_every_web_process(
    make_settings, mode, redis_server: OwnRedis, tmp_path: Path
):
    """PROMETHEUS_MULTIPROC_DIR shared by two `multinotes serve` processes."""
    if mode != "production":
        pytest.skip("production mode only")
    settings = make_settings(redis_url=redis_server.url)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**process_env(settings), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    ports = [free_port(), free_port()]
    procs = [
        spawn(
            ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path)],
            env,
            tmp_path / f"serve{port}.log",
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                for url in urls:
                    try:
                        async with http.get(url + "/healthz") as r:
                            if r.status != 200:
                                return False
                    except aiohttp.ClientError:
                        return False
                return True

            await eventually(up, 90)
            for url, count in ((urls[0], 3), (urls[1], 4)):
                for _ in range(count):
                    async with http.get(url + "/api/me") as r:
                        assert r.status == 401
            for url in urls:  # either process answers for both
                async with http.get(
                    url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                ) as r:
                    assert r.status == 200
                    text = await r.text()
                line = 'multinotes_http_requests_total{method="GET",route="/api/me",status="401"}'
                assert f"{line} 7.0" in text, [t for t in text.splitlines() if "api/me" in t]
    finally:
        stop(*procs)


def test_provision_gives_every_process_one_metrics_folder(tmp_path: Path):
    from tests.deploy.test_provision_env import provision, read_env

    env = tmp_path / "env"
    result = provision("--write-env", str(env), "--domain", "notes.example.com", "--no-smtp")
    assert result.returncode == 0, result.stderr
    assert read_env(env)["PROMETHEUS_MULTIPROC_DIR"] == "/var/lib/multinotes/metrics"
