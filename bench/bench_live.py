"""The live channel at scale (issue #20): idle connections per web process and their memory, a
broadcast to 1,000 connected users, and what relaying through Redis to another web process adds.

Embedded part: one server (``probe_server.py``: the real app plus ``/__probe/`` routes, in a
temporary data directory, rate limits off, cheap password hashing). ``--users`` people sign up and
log in; each opens ``--connections / --users`` WebSockets on ``/api/live`` (session cookie and
Origin, as a browser tab does) and every socket is read, so the server's heartbeat pings are
answered as a browser would. Measured: the server's RSS before and after the connections are
open and idle, then ``--broadcasts`` broadcasts of one event to every user (``/__probe/live/
broadcast`` publishes through the hub, as every live source does, stamped once with the
broadcast's start): for each user, the time until its first tab has it; for every tab, the time
until it has it. A broadcast is one event for all the users (``Hub.publish_many``: one bus
message, as an organisation-wide event); ``--each`` publishes it once per user instead.

The clients are spread over ``--client-processes`` processes (each user's tabs in one), so that
one client reading 10,000 sockets is not what is measured; each notes arrival times with its
own clock (one machine, one clock). Server-side figures of each broadcast, from the probe: the
wall time until the last frame was written to every socket of the process, and the event-loop
thread's CPU time for it (``time.thread_time``), which the machine's load does not inflate.

``--trace N``: with tracemalloc on in the server (25 frames), the memory N idle connections add
(per connection, by line and by type), instead of the timing runs: where an idle tab's bytes are.

Production part (``--production``; MariaDB and Redis from ``MULTINOTES_TEST_MYSQL`` /
``MULTINOTES_TEST_REDIS`` as the tests use, skipped when unreachable): two web processes sharing
the database and Redis; one user's tabs are on process B; ``--relay-events`` events are published
alternately on B itself and on A, which reaches B only through Redis. "Added" is the difference
of the two latencies' percentiles.

Run: ``python bench/bench_live.py [--users 1000] [--connections 10000] [--production]``.
A client process holding 10,000 sockets needs ``ulimit -n`` above that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import aiohttp
from bench_stream import free_port, process, wait_listening

HERE = Path(__file__).resolve().parent
PASSWORD = "correct horse battery staple 42"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
    }


def server_env(data_dir: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "MULTINOTES_DATA_DIR": str(data_dir),
        "MULTINOTES_PORT": str(port),
        "MULTINOTES_HOST": "127.0.0.1",
        "MULTINOTES_RATE_LIMITS_ENABLED": "false",
        "MULTINOTES_PASSWORD_HASH_COST": "test",
        "MULTINOTES_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }


@contextlib.contextmanager
def server(
    data_dir: Path, port: int, log: Path, extra: dict[str, str] | None = None
) -> Iterator[int]:
    args = [sys.executable, str(HERE / "probe_server.py")]
    with process(args, log, env=server_env(data_dir, port, extra)) as pid:
        yield pid


async def sign_up(session: aiohttp.ClientSession, base: str, count: int) -> list[tuple[str, str]]:
    """``count`` people, each as (user id, Cookie header of a logged-in session)."""

    async def one(number: int) -> tuple[str, str]:
        email = f"live{number}-{secrets.token_hex(3)}@example.com"
        body = {"email": email, "password": PASSWORD, "name": f"Person {number}"}
        async with session.post(base + "/api/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
        async with session.post(
            base + "/api/auth/login", json={"email": email, "password": PASSWORD}
        ) as r:
            assert r.status == 200, await r.text()
            user_id = (await r.json())["user"]["id"]
            cookie = "; ".join(f"{k}={v.value}" for k, v in r.cookies.items())
        return user_id, cookie

    people: list[tuple[str, str]] = []
    for start in range(0, count, 50):
        people += await asyncio.gather(*(one(n) for n in range(start, min(count, start + 50))))
    return people


class Tabs:
    """Open live sockets, each read by its own task (answering the server's pings) and noting
    when each ``bench.ping`` arrives."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []
        #: (broadcast stamp, user id) -> arrival times, one per tab.
        self.arrivals: dict[tuple[float, str], list[float]] = {}

    async def open(self, base: str, user_id: str, cookie: str) -> None:
        socket = await self.session.ws_connect(
            base.replace("http", "ws", 1) + "/api/live",
            headers={"Cookie": cookie, "Origin": base},
            autoping=True,
            max_msg_size=0,
        )
        hello = await socket.receive_json(timeout=60)
        assert hello["type"] == "live.hello", hello
        self.sockets.append(socket)
        self.readers.append(asyncio.create_task(self._read(socket, user_id)))

    async def _read(self, socket: aiohttp.ClientWebSocketResponse, user_id: str) -> None:
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            if event.get("type") == "bench.ping":
                now = time.time()
                self.arrivals.setdefault((event["data"]["sent"], user_id), []).append(now)

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(s.close() for s in self.sockets), return_exceptions=True)


async def probe(session: aiohttp.ClientSession, base: str, path: str, body: Any = None) -> Any:
    method = session.post if body is not None else session.get
    async with method(f"{base}/__probe/{path}", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def arrivals_since(tabs: Tabs, seen: set[Any], expected: int, within: float) -> None:
    """Wait until ``expected`` arrivals of broadcasts not in ``seen`` are in (or ``within``)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if sum(len(v) for k, v in tabs.arrivals.items() if k not in seen) >= expected:
            return
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


def _raise_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, wanted)), hard))


def client_process(pipe: Pipe, base: str, people: list[tuple[str, str]], per_user: int) -> None:
    """One client process: opens ``per_user`` tabs for each of ``people`` and answers the
    parent's commands on ``pipe`` (``("collect", stamp, expected, within)``, ``("close",)``)."""
    _raise_file_limit(len(people) * per_user + 1000)
    asyncio.run(_client(pipe, base, people, per_user))


async def _client(pipe: Pipe, base: str, people: list[tuple[str, str]], per_user: int) -> None:
    async with client() as session:
        tabs = Tabs(session)
        for start in range(0, len(people), 25):
            await asyncio.gather(
                *(
                    tabs.open(base, user_id, cookie)
                    for user_id, cookie in people[start : start + 25]
                    for _ in range(per_user)
                )
            )
        pipe.send(("ready", len(tabs.sockets)))
        while True:
            command = await asyncio.to_thread(pipe.recv)
            if command[0] == "close":
                await tabs.close()
                pipe.send(("closed",))
                return
            _, stamp, expected, within = command
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                got = sum(len(v) for k, v in tabs.arrivals.items() if k[0] == stamp)
                if got >= expected:
                    break
                await asyncio.sleep(0.01)
            pipe.send({k[1]: v for k, v in tabs.arrivals.items() if k[0] == stamp})


class Clients:
    """The client processes and the pipes to them."""

    def __init__(self, base: str, people: list[tuple[str, str]], per_user: int, count: int):
        context = multiprocessing.get_context("spawn")
        self.shares = [people[n::count] for n in range(count)]
        self.per_user = per_user
        self.pipes: list[Pipe] = []
        self.processes = []
        for share in self.shares:
            parent, child = context.Pipe()
            proc = context.Process(
                target=client_process, args=(child, base, share, per_user), daemon=True
            )
            proc.start()
            self.pipes.append(parent)
            self.processes.append(proc)

    async def _ask(self, pipe: Pipe, command: tuple[Any, ...] | None) -> Any:
        if command is not None:
            pipe.send(command)
        return await asyncio.to_thread(pipe.recv)

    async def ready(self) -> int:
        answers = await asyncio.gather(*(self._ask(p, None) for p in self.pipes))
        return sum(n for _, n in answers)

    async def arrivals(
        self, stamp: float, users: set[str], within: float
    ) -> dict[str, list[float]]:
        """Each user's tabs' arrival times of the broadcast stamped ``stamp``."""
        commands = [
            ("collect", stamp, sum(self.per_user for u, _ in share if u in users), within)
            for share in self.shares
        ]
        answers = await asyncio.gather(
            *(self._ask(p, c) for p, c in zip(self.pipes, commands, strict=True))
        )
        merged: dict[str, list[float]] = {}
        for answer in answers:
            merged.update(answer)
        return merged

    async def close(self) -> None:
        await asyncio.gather(*(self._ask(p, ("close",)) for p in self.pipes))
        for proc in self.processes:
            proc.join(10)


async def trace(
    session: aiohttp.ClientSession,
    base: str,
    people: list[tuple[str, str]],
    per_user: int,
    count: int,
) -> str:
    """What ``count`` idle connections add to the server, by tracemalloc (the parent holds
    the sockets: their cost is the server's, not the client's)."""
    await probe(session, base, "trace/start?frames=25")
    await probe(session, base, "trace/snapshot?name=before")
    tabs = Tabs(session)
    opened = 0
    for user_id, cookie in people:
        for _ in range(per_user):
            if opened >= count:
                break
            await tabs.open(base, user_id, cookie)
            opened += 1
    await asyncio.sleep(3)
    await probe(session, base, "trace/snapshot?name=idle")
    out = []
    for group in ("lineno", "traceback"):
        async with session.get(
            f"{base}/__probe/trace/compare",
            params={
                "a": "before",
                "b": "idle",
                "per": str(opened),
                "group": group,
                "limit": "40" if group == "lineno" else "12",
            },
        ) as r:
            out.append(await r.text())
    await tabs.close()
    return "\n\n".join(out)


async def embedded(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    report: dict[str, Any] = {}
    extra = {"BENCH_NO_PLUGINS": "1"} if args.no_plugins else None
    with server(work / "data", port, work / "server.log", extra) as pid:
        await wait_listening(port, 120)
        async with client() as session:
            people = await sign_up(session, base, args.users)
            per_user = max(1, args.connections // args.users)
            await asyncio.sleep(2)
            if args.trace:
                print(await trace(session, base, people, per_user, args.trace), flush=True)
                return {"traced": args.trace}
            before = await probe(session, base, "live/connections")
            opened = time.monotonic()
            clients = Clients(base, people, per_user, args.client_processes)
            try:
                await clients.ready()
                report["open_seconds"] = round(time.monotonic() - opened, 1)
                report["client_processes"] = args.client_processes
                await asyncio.sleep(args.idle_seconds)  # idle: only heartbeats
                after = await probe(session, base, "live/connections")
                report["connections"] = after["connections"]
                report["rss_mb_before"] = round(before["rss_kb"] / 1024, 1)
                report["rss_mb_idle_connections"] = round(after["rss_kb"] / 1024, 1)
                report["kb_per_connection"] = round(
                    (after["rss_kb"] - before["rss_kb"]) / max(1, after["connections"]), 1
                )
                users = [user_id for user_id, _ in people[: args.broadcast_users]]
                wanted = set(users)
                first: list[float] = []
                every: list[float] = []
                written: list[float] = []
                cpu: list[float] = []
                missing = 0
                for _ in range(args.broadcasts):
                    done = await probe(
                        session, base, "live/broadcast", {"users": users, "each": args.each}
                    )
                    written.append(done["seconds"])
                    cpu.append(done["cpu_seconds"])
                    got = await clients.arrivals(done["sent"], wanted, 30)
                    missing += len(users) - len(got)
                    for times in got.values():
                        first.append(min(times) - done["sent"])
                        every.extend(t - done["sent"] for t in times)
                    await asyncio.sleep(1)
                report["broadcast_users"] = len(users)
                # Server side: from the broadcast's start until the last frame was written, and
                # the event loop's CPU time for it.
                report["broadcast_server_written"] = summary(written)
                report["broadcast_server_cpu"] = summary(cpu)
                report["broadcast_first_tab_per_user"] = summary(first)
                report["broadcast_every_tab"] = summary(every)
                report["broadcast_missing"] = missing
                report["server_pid"] = pid
            finally:
                await clients.close()
    return report


async def production(args: argparse.Namespace, work: Path) -> dict[str, Any] | None:
    from bench_service import mariadb, migrate

    with mariadb() as found:
        if found is None:
            return None
        await migrate(found["database_url"])
        shared = {
            "MULTINOTES_MODE": "production",
            "MULTINOTES_DATABASE_URL": found["database_url"],
            "MULTINOTES_REDIS_URL": found["redis_url"],
            "MULTINOTES_REDIS_PREFIX": found["redis_prefix"],
            "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
            "MULTINOTES_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MULTINOTES_COOKIE_SECURE": "false",
            "MULTINOTES_REQUIRE_EMAIL_VERIFICATION": "false",
        }
        port_a, port_b = free_port(), free_port()
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        with (
            server(work / "data-a", port_a, work / "a.log", shared),
            server(work / "data-b", port_b, work / "b.log", shared),
        ):
            await wait_listening(port_a, 120)
            await wait_listening(port_b, 120)
            async with client() as session:
                ((user_id, cookie),) = await sign_up(session, b, 1)
                tabs = Tabs(session)
                for _ in range(args.relay_tabs):
                    await tabs.open(b, user_id, cookie)
                latency: dict[str, list[float]] = {"same process": [], "through Redis": []}
                for number in range(args.relay_events):
                    origin, label = (b, "same process") if number % 2 else (a, "through Redis")
                    before_keys = set(tabs.arrivals)
                    await probe(session, origin, "live/broadcast", {"users": [user_id]})
                    await arrivals_since(tabs, before_keys, args.relay_tabs, 10)
                    for key, times in tabs.arrivals.items():
                        if key not in before_keys:
                            latency[label].extend(t - key[0] for t in times)
                    await asyncio.sleep(0.02)
                await tabs.close()
        report = {label: summary(values) for label, values in latency.items()}
        report["added_p50_ms"] = round(
            report["through Redis"]["p50_ms"] - report["same process"]["p50_ms"], 1
        )
        report["added_p99_ms"] = round(
            report["through Redis"]["p99_ms"] - report["same process"]["p99_ms"], 1
        )
        return report


async def main(args: argparse.Namespace) -> None:
    _raise_file_limit(args.connections + 1000)
    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    report: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    try:
        if not args.only or "embedded" in args.only:
            report["embedded"] = await embedded(args, work)
            print(json.dumps({"embedded": report["embedded"]}, indent=2), flush=True)
        if args.production or (args.only and "production" in args.only):
            report["production"] = await production(args, work)
            print(json.dumps({"production": report["production"]}, indent=2), flush=True)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["load_average_at_end"] = os.getloadavg()
    if args.out:
        with open(args.out, "w") as out:  # noqa: ASYNC230 - once, at the end
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--broadcast-users", type=int, default=1000)
    parser.add_argument("--broadcasts", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--each", action="store_true", help="broadcast as one publish per user (the old way)"
    )
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument(
        "--no-plugins",
        action="store_true",
        help="the server without any plugin (its base RSS without their SDKs)",
    )
    parser.add_argument("--trace", type=int, default=0, metavar="N")
    parser.add_argument("--production", action="store_true")
    parser.add_argument("--relay-tabs", type=int, default=2)
    parser.add_argument("--relay-events", type=int, default=200)
    parser.add_argument("--only", type=lambda s: s.split(","), default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out")
    asyncio.run(main(parser.parse_args()))
