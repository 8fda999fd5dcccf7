"""A web process SIGKILLed while an answer streams: within a minute the crash sweep (run by
what remains: here the next process on the same data folder) keeps the partial answer that was
stored while it streamed, and settles the hold to the tokens it delivered."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from multinotes.app import create_app
from multinotes.chat.models import Generation, Message
from multinotes.chat.pipeline import settle_stale_generations
from multinotes.keys import DB
from multinotes.testing import app_client, embedded_settings
from multinotes.tokens import count_tokens
from multinotes.wallet.models import Reservation

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the server exited"
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not start")


@pytest.mark.long
async def test_a_sigkilled_server_leaves_its_answer_kept_and_settled_within_a_minute(
    tmp_path: Path,
):
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(36)}
    command = [sys.executable, "-m", "multinotes.cli", "serve"]
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--data-dir", str(data)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        await wait_healthy(url, proc)
        jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address
        async with aiohttp.ClientSession(base_url=url, cookie_jar=jar) as http:
            account = {"email": "kim@example.com", "password": PASSWORD, "name": "Kim"}
            assert (await http.post("/api/auth/register", json=account)).status == 201
            login = await http.post(
                "/api/auth/login", json={"email": account["email"], "password": PASSWORD}
            )
            body = await login.json()
            assert login.status == 200, body
            headers = {"X-CSRF-Token": body["csrf_token"]}
            # The demo model answers a word every 100 ms: a long answer streams for a while.
            slow = {"settings": {"delay_ms": 100}}
            assert (
                await http.patch("/api/admin/plugins/demo", json=slow, headers=headers)
            ).status == 200
            words = " ".join(f"word{n}" for n in range(300))
            response = await http.post(
                "/api/messages", json={"content": words, "models": ["demo/echo"]}, headers=headers
            )
            assert response.status == 200
            received = ""
            async for line in response.content:  # about 3 s of answer
                received += line.decode()
                if received.count("event: delta") >= 30:
                    break
            proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # What remains runs the sweep (a worker's minute task in production).
    app = create_app(embedded_settings(data, secret_key=env["MULTINOTES_SECRET_KEY"]))
    async with app_client(app):
        db = app[DB]
        async with db.read() as session:
            generation = await session.scalar(select(Generation))
            partial = await session.scalar(
                select(Message.content).where(Message.id == generation.message_id)
            )
        assert generation.status == "pending"
        assert partial.startswith("You asked: word0 word1"), partial  # stored as it streamed
        await settle_stale_generations(app)
        took = time.monotonic() - killed_at
        async with db.read() as session:
            generation = await session.get(Generation, generation.id)
            hold = await session.scalar(select(Reservation))
            kept = await session.scalar(
                select(Message.content).where(Message.id == generation.message_id)
            )
    assert took < 60, took
    assert generation.status == "failed" and generation.error_code == "interrupted"
    assert kept == partial
    assert generation.output_tokens == count_tokens(partial) > 0
    assert hold.settled_at is not None and hold.cost == generation.cost
