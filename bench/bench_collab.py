"""Twenty people editing one note at ~5 keystrokes a second each (issue #20 scale): do all the
clients converge on the same text, how long does a keystroke take to reach the others, and how
much CPU does the web process spend?

It starts a real server (``multinotes serve``, embedded mode, in a temporary data directory),
signs one person up, creates a note and opens ``--clients`` sessions on it over
``/api/documents/{id}/collab``, each a pycrdt document speaking the same y-websocket frames as
the browser. Every client types (mostly inserts at a random place, some deletes, each keystroke
one update and one cursor update, as js/collab.js sends) for ``--seconds``; then everyone stops,
and the script waits until all texts are equal and the saved note holds it too.

The server's CPU use is read from ``/proc/<pid>/stat`` over the typing window: "cores" is CPU
seconds per wall second (1.0 = one core busy). Latency: each client stamps some of its inserts
with a marker and the time; the others note when the marker's text arrives.

Run: ``python bench/bench_collab.py [--clients 20] [--rate 5] [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from pycrdt import Doc, Text

from multinotes.collab import protocol

PASSWORD = "correct horse battery staple 42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


class Client:
    def __init__(self, number: int, socket_: Any, stamps: dict[str, float]) -> None:
        self.number = number
        self.socket = socket_
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.stamps = stamps  # marker -> when it was typed (shared by all clients)
        self.seen: dict[str, float] = {}
        self.synced = asyncio.Event()
        self.sent = 0

    async def read(self) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            frame = protocol.parse(message.data)
            if frame.kind != protocol.SYNC:
                continue
            if frame.step == protocol.STEP1:
                await self.socket.send_bytes(
                    protocol.sync_step2(self.doc.get_update(frame.payload))
                )
                continue
            self.doc.apply_update(frame.payload)
            if frame.step == protocol.STEP2:
                self.synced.set()
            if self.stamps:
                now = time.perf_counter()
                text = str(self.text)
                for marker in list(self.stamps):
                    if marker not in self.seen and marker in text:
                        self.seen[marker] = now

    async def keystroke(self) -> None:
        before = self.doc.get_state()
        length = len(self.text)
        index = random.randint(0, length)
        marker = None
        with self.doc.transaction():
            if length > 20 and random.random() < 0.15:
                del self.text[max(0, index - 1) : index]
            elif random.random() < 0.1:
                marker = f"<{self.number}:{secrets.token_hex(3)}>"
                self.text.insert(index, marker)
            else:
                self.text.insert(index, random.choice("abcdefghij klmnop\n"))
        update = self.doc.get_update(before)
        if marker:
            self.stamps[marker] = time.perf_counter()
            self.seen[marker] = self.stamps[marker]
        await self.socket.send_bytes(protocol.update_frame(update))
        cursor = {"cursor": {"anchor": index, "head": index}}
        await self.socket.send_bytes(
            protocol.awareness_frame(
                [protocol.ClientState(self.doc.client_id, self.sent + 1, cursor)]
            )
        )
        self.sent += 1

    async def type_for(self, seconds: float, rate: float) -> None:
        ends = time.perf_counter() + seconds
        while time.perf_counter() < ends:
            await self.keystroke()
            await asyncio.sleep(random.expovariate(rate))


async def run(clients: int, rate: float, seconds: float, base: str, pid: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(600):
            try:
                async with http.get("/healthz") as health:
                    if health.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        email = f"bench.{secrets.token_hex(3)}@example.com"
        async with http.post(
            "/api/auth/register", json={"name": "Bench", "email": email, "password": PASSWORD}
        ) as registered:
            if registered.status != 201:
                raise SystemExit(
                    f"could not sign up: {registered.status} {await registered.text()}"
                )
        async with http.post(
            "/api/auth/login", json={"email": email, "password": PASSWORD}
        ) as login:
            if login.status != 200:
                raise SystemExit(f"could not sign in: {login.status} {await login.text()}")
            csrf = (await login.json()).get("csrf_token", "")
        async with http.post(
            "/api/documents",
            json={"title": "Shared", "content": "Start.\n"},
            headers={"X-CSRF-Token": csrf},
        ) as made:
            created = await made.json()
            if made.status != 201:
                raise SystemExit(f"could not create the note: {made.status} {created}")
            note = created["id"]

        stamps: dict[str, float] = {}
        people = []
        for number in range(clients):
            ws = await http.ws_connect(
                f"/api/documents/{note}/collab", headers={"Origin": base}, max_msg_size=0
            )
            await ws.receive_json()  # collab.hello
            client = Client(number, ws, stamps)
            await ws.send_bytes(protocol.sync_step1(client.doc.get_state()))
            people.append((client, asyncio.create_task(client.read())))
        for client, _ in people:
            await asyncio.wait_for(client.synced.wait(), 10)

        cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(c.type_for(seconds, rate) for c, _ in people))
        typed = time.perf_counter()
        cpu_typing = cpu_seconds(pid) - cpu_before
        wall_typing = typed - wall_before

        texts: set[str] = set()
        for _ in range(600):
            texts = {str(c.text) for c, _ in people}
            if len(texts) == 1:
                break
            await asyncio.sleep(0.05)
        converged = time.perf_counter() - typed
        final = texts.pop() if len(texts) == 1 else None
        saved = None
        for _ in range(100):
            await asyncio.sleep(0.2)
            async with http.get(f"/api/documents/{note}") as got:
                body = await got.json()
            if body["content"] == final:
                saved = body
                break
        async with http.get(f"/api/documents/{note}/versions") as listed:
            versions = len((await listed.json())["versions"])

        delays = [
            (client.seen[m] - stamps[m]) * 1000
            for client, _ in people
            for m in stamps
            if m in client.seen and not m.startswith(f"<{client.number}:")
        ]
        dropped = sum(1 for c, _ in people if c.socket.closed)
        for client, task in people:
            await client.socket.close()
            task.cancel()
        keystrokes = sum(c.sent for c, _ in people)
        return {
            "clients": clients,
            "keystrokes": keystrokes,
            "keystrokes_per_second": round(keystrokes / wall_typing, 1),
            "server_cores_while_typing": round(cpu_typing / wall_typing, 3),
            "connections_dropped": dropped,
            "converged": final is not None,
            "converged_after_s": round(converged, 3),
            "text_length": len(final or ""),
            "saved_matches": saved is not None,
            "versions": versions,
            "delivery_ms_p50": round(statistics.median(delays), 1) if delays else None,
            "delivery_ms_p99": round(statistics.quantiles(delays, n=100)[98], 1)
            if len(delays) >= 100
            else None,
            "delivery_samples": len(delays),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="keystrokes a second each")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-collab-"))
    port = free_port()
    env = {
        **os.environ,
        "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(36),
        "MULTINOTES_LOG_LEVEL": "WARNING",
        "MULTINOTES_PASSWORD_HASH_COST": "test",
    }
    command = [sys.executable, "-m", "multinotes.cli", "serve", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        result = asyncio.run(run(args.clients, args.rate, args.seconds, base, server.pid))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    for name, value in result.items():
        print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
