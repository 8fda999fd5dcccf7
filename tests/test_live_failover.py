"""Issue #20, done when: "killing one of two web processes reconnects its clients to the other
without lost events". Two real `multinotes serve` processes in production mode share MariaDB
and Redis; a tab on the first gets an event, the first is SIGKILLed, events go on through the
second, and the tab, reconnecting there with its last event id, gets every one it missed, in
order. (Embedded mode is one process: nothing to fail over to.)"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import _mysql_parts, _services_available
from tests.support.own_redis import own_redis
from tests.test_generation_crash import free_port, wait_healthy

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


async def fresh_database() -> str:
    """A migrated MariaDB database of its own, so the first account is the admin."""
    import pymysql

    from multinotes.db import create_engine
    from multinotes.migrations import upgrade

    name = f"multinotes_failover_{secrets.token_hex(4)}"
    parts = _mysql_parts()
    conn = pymysql.connect(**parts, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    auth = parts["user"] + (f":{parts['password']}" if parts["password"] else "")
    url = f"mysql+aiomysql://{auth}@{parts['host']}:{parts['port']}/{name}?charset=utf8mb4"
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


def drop_database(url: str) -> None:
    import pymysql

    conn = pymysql.connect(**_mysql_parts(), autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{url.rsplit('/', 1)[1].split('?')[0]}`")
    conn.close()


class Person:
    """Someone signed in on a process (cookies are per host, so they hold on either port)."""

    def __init__(self, http: aiohttp.ClientSession, csrf: str, user_id: str) -> None:
        self.http, self.csrf, self.user_id = http, csrf, user_id

    async def post(self, url: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        return await self.http.post(url, json=body, headers={"X-CSRF-Token": self.csrf})


async def sign_up(base: str, email: str, name: str) -> Person:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    account = {"email": email, "password": PASSWORD, "name": name}
    assert (await http.post(f"{base}/api/auth/register", json=account)).status == 201
    login = await http.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD})
    body = await login.json()
    assert login.status == 200, body
    return Person(http, body["csrf_token"], body["user"]["id"])


async def next_wallet_event(socket: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        event = json.loads(await asyncio.wait_for(socket.receive_str(), 15))
        if event["type"] == "wallet.changed":
            return dict(event)


@pytest.fixture
async def two_processes(tmp_path: Path) -> AsyncIterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    problem = _services_available()
    if problem:
        pytest.skip(f"MariaDB/Redis not reachable: {problem}")
    database = await fresh_database()
    with own_redis(tmp_path / "redis") as redis:
        env = {
            **os.environ,
            "MULTINOTES_MODE": "production",
            "MULTINOTES_DATABASE_URL": database,
            "MULTINOTES_REDIS_URL": redis.url,
            "MULTINOTES_REDIS_PREFIX": f"f{secrets.token_hex(3)}:",
            "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
            # Plain HTTP on loopback here, not TLS behind nginx: cookies without Secure.
            "MULTINOTES_COOKIE_SECURE": "false",
        }
        servers: list[tuple[str, subprocess.Popen[bytes]]] = []
        try:
            for number in range(2):
                port = free_port()
                with open(tmp_path / f"web{number}.log", "wb") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "multinotes.cli", "serve", "--port", str(port)],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=tmp_path,
                    )
                servers.append((f"http://127.0.0.1:{port}", proc))
            for url, proc in servers:
                await wait_healthy(url, proc)
            yield servers
        finally:
            for _, proc in servers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            drop_database(database)


async def test_a_tab_on_a_killed_process_resumes_on_the_other_without_losing_an_event(
    two_processes: list[tuple[str, subprocess.Popen[bytes]]],
) -> None:
    (first, first_proc), (second, _) = two_processes
    ann = await sign_up(first, "ann@example.com", "Ann Admin")  # the first account: an admin
    bob = await sign_up(first, "bob@example.com", "Bob Colleague")
    created = await bob.post(f"{first}/api/keys", {"name": "tab"})
    assert created.status == 201, await created.text()
    key = (await created.json())["key"]
    try:
        async with aiohttp.ClientSession() as tab:
            bearer = {"Authorization": f"Bearer {key}"}
            assert (await tab.get(f"{first}/api/wallet", headers=bearer)).status == 200
            socket = await tab.ws_connect(f"{first}/api/live", headers=bearer)

            async def grant(base: str, amount: int) -> None:
                response = await ann.post(
                    f"{base}/api/admin/users/{bob.user_id}/credits",
                    {"amount": amount, "reason": "failover test"},
                )
                assert response.status == 201, await response.text()

            await grant(first, 1)
            seen = await next_wallet_event(socket)
            assert seen["id"] is not None  # kept for a tab that reconnects

            first_proc.send_signal(signal.SIGKILL)
            first_proc.wait(timeout=10)
            closed = await asyncio.wait_for(socket.receive(), 15)
            assert closed.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            )

            # While the tab is away, the work goes on through the other process.
            await grant(second, 2)
            await grant(second, 3)
            balance = (await (await tab.get(f"{second}/api/wallet", headers=bearer)).json())[
                "balance"
            ]

            again = await tab.ws_connect(
                f"{second}/api/live?last_event_id={seen['id']}", headers=bearer
            )
            missed = [await next_wallet_event(again), await next_wallet_event(again)]
            assert [int(event["id"]) for event in missed] == [
                int(seen["id"]) + 1,
                int(seen["id"]) + 2,
            ]
            assert missed[1]["data"]["balance"] == balance == missed[0]["data"]["balance"] + 3
            await again.close()
    finally:
        await ann.http.close()
        await bob.http.close()
