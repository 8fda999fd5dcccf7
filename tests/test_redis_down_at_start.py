"""A web process started while Redis is down (production mode), as after a reboot where Redis
comes up late or not at all: it starts and serves what does not need Redis, says what does not
work, and recovers by itself when Redis answers, with no restart.

- ``multinotes serve`` starts: /healthz answers and pages render;
- /readyz (also ``?scope=web``, the upgrade gate's question) answers 503 naming Redis;
- what needs Redis (registering: its rate limit fails closed, and it queues a mail) answers 503
  ``service_unavailable`` with Retry-After, in the app's error shape;
- once Redis is up, /readyz?scope=web turns 200 within seconds, registering (after the
  Retry-After it was given) and logging in work,
  and the process subscribes to the Redis bus it could not reach at start (plugin switches
  travel on it).

A real process (``python -m multinotes.cli serve``) against MariaDB and a private redis-server
that the test starts only half-way through.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.deploy.app_process import PASSWORD, Client, base_env, free_port, serve, wait_ready
from tests.support.own_redis import OwnRedis


def get(url: str, accept: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def wait_for(what: str, probe: Any, timeout: float) -> float:
    started = time.monotonic()
    while not probe():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.2)
    return time.monotonic() - started


def test_the_web_process_starts_without_redis_and_recovers_when_it_comes(
    tmp_path: Path, production_services: dict[str, str]
):
    redis = OwnRedis(tmp_path / "redis")  # its port is chosen; nothing listens there yet
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(
        MULTINOTES_MODE="production",
        MULTINOTES_SECRET_KEY=secrets.token_urlsafe(48),
        MULTINOTES_DATABASE_URL=production_services["database_url"],
        MULTINOTES_REDIS_URL=redis.url,
        MULTINOTES_REDIS_PREFIX=f"downstart{secrets.token_hex(4)}:",
        MULTINOTES_ALLOWED_HOSTS="127.0.0.1",
        MULTINOTES_PUBLIC_URL=url,
        MULTINOTES_LOG_LEVEL="INFO",
        MULTINOTES_LOG_FORMAT="json",
    )
    if "PYTHONPATH" in os.environ:  # the package under test, wherever the run takes it from
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    (tmp_path / "data").mkdir()
    log = tmp_path / "serve.log"
    process = serve(port, tmp_path / "data", env, log)
    try:
        wait_ready(url, timeout=120)

        status, _, page = get(url + "/login", accept="text/html")
        assert status == 200 and b"<form" in page, page[:500]
        for probe in ("/readyz", "/readyz?scope=web"):
            status, _, body = get(url + probe)
            assert status == 503, body
            assert json.loads(body)["checks"]["redis"].startswith("error"), body

        email = f"late-redis-{secrets.token_hex(4)}@example.com"
        account = {"email": email, "password": PASSWORD, "name": "Late"}
        status, headers, body = post(url + "/api/auth/register", account)
        assert status == 503, body
        assert body["error"]["code"] == "service_unavailable"
        assert "try again" in body["error"]["message"].lower()
        assert int(headers["Retry-After"]) >= 1

        redis.start()
        recovered = wait_for(
            "/readyz?scope=web did not turn 200",
            lambda: get(url + "/readyz?scope=web")[0] == 200,
            timeout=20,
        )
        assert recovered < 20

        # A client retries after Retry-After: the auth limits ask Redis again after 2 s.
        registered: list[Any] = []
        wait_for(
            "registering did not work again",
            lambda: (
                registered.append(post(url + "/api/auth/register", account))
                or registered[-1][0] != 503
            ),
            timeout=15,
        )
        assert registered[-1][0] == 201, registered[-1]
        client = Client(url)
        client.login(email)
        assert client.csrf

        wait_for(
            "the process did not subscribe to the bus",
            lambda: '"bus_subscribed"' in log.read_text(),
            timeout=20,
        )
        assert process.poll() is None, log.read_text()[-3000:]
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        finally:
            redis.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    events = [line.get("event") for line in lines]
    assert "bus_subscribe_failed" in events
    assert "task_group_not_declared" in events
    assert events.index("bus_subscribed") > events.index("bus_subscribe_failed")
    # Not one request answered with a server error other than the deliberate 503s.
    statuses = [line["status"] for line in lines if line.get("event") == "request"]
    assert 503 in statuses
    assert [s for s in statuses if s >= 500 and s != 503] == [], statuses
