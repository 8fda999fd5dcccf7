"""1,000 simulated people against two web processes and one worker in production mode
(issue #17): errors, p99 page time (target < 500 ms) and time to the first token of an answer
(target < 2 s).

Servers: the fake upstream (``upstream.py``, answers of 200 chunks paced at 50 chunks/s), two
``multinotes serve`` processes and one ``multinotes worker`` (``pipeline_server.py``) sharing a
throwaway MariaDB database and a Redis prefix (as ``bench_lists.py``), the ``openai_compatible``
plugin pointing at the upstream, rate limits on with limits too high to trip, standard password
hashing (production refuses the cheap one).

Setup, in this process and not measured: ``--users`` accounts (``identity.register_user`` with
one precomputed standard argon2 hash, so setup does not pay 180 ms of hashing per account), each
with ``--notes`` notes and credits.

Each person (one ``aiohttp`` session, its own cookies) starts at a moment spread evenly over
``--ramp`` seconds, signs in (``POST /api/auth/login``: one argon2 verification, ~180 ms of
CPU), then until the end repeats, with a think time of ``--think`` seconds (uniform) before each
step: list notes, open one, list conversations, start a conversation and ask a question (the
answer streamed to the end at 50 chunks/s), search (``mode=text``). People alternate between
the two web processes (as a load balancer would).

Figures: sign-in time; page time (every non-streaming request, per kind); first token of the
answers; errors by kind (any non-2xx, a broken stream, an ``error`` event, no ``done``); each
server process's CPU; the load average. Steady state = requests started after the ramp.

Run: ``python bench/bench_users.py [--users 1000] [--ramp 120] [--minutes 2]`` or ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from bench_lists import (
    PASSWORD,
    SEARCH_WORDS,
    add_run_options,
    log,
    note_content,
    pipeline_process,
    run_on_services,
    text,
)
from bench_stream import MARKER, cpu_seconds, free_port, pct, process, wait_listening

HERE = Path(__file__).resolve().parent
PROMPT = "Write two hundred words about benchmarks."


class Stats:
    def __init__(self, steady_from: float) -> None:
        self.steady_from = steady_from
        self.times: dict[str, list[tuple[float, float]]] = {}
        self.errors: Counter[str] = Counter()

    def add(self, kind: str, started: float, seconds: float) -> None:
        self.times.setdefault(kind, []).append((started, seconds))

    def error(self, kind: str, what: str) -> None:
        self.errors[f"{kind}: {what}"] += 1

    def summary(self, kinds: list[str] | None = None, steady: bool = False) -> dict[str, Any]:
        values = [
            s * 1000
            for kind, rows in self.times.items()
            if kinds is None or kind in kinds
            for started, s in rows
            if not steady or started >= self.steady_from
        ]
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "p50_ms": round(pct(values, 50), 1),
            "p99_ms": round(pct(values, 99), 1),
            "max_ms": round(max(values), 1),
        }


PAGES = ["documents", "document", "conversations", "new conversation", "search"]


async def seed_accounts(database_url: str, users: int, notes: int) -> list[str]:
    """Accounts with notes and credits, straight through the services (not measured)."""
    from argon2 import PasswordHasher

    from multinotes.db import Database, create_engine
    from multinotes.identity import service as identity
    from multinotes.notes import service as notes_service
    from multinotes.wallet import service as wallet

    standard_hash = PasswordHasher().hash(PASSWORD)  # what a real sign-up stores
    identity.hash_password = lambda password: standard_hash  # type: ignore[assignment]
    db = Database(create_engine(database_url))
    rng = random.Random(5)
    emails = [f"user{n}-{secrets.token_hex(3)}@example.com" for n in range(users)]

    async def one(email: str, number: int) -> None:
        user = await identity.register_user(db, email=email, password=PASSWORD, name=f"U {number}")
        for _ in range(notes):
            await notes_service.create_document(
                db,
                user.id,
                title=text(rng, 4).title(),
                content=note_content(rng),
                folder_id=None,
            )
        await wallet.adjust(db, user.id, 10**9, "benchmark", by=None)

    try:
        for start in range(0, users, 20):
            await asyncio.gather(*(one(emails[n], n) for n in range(start, min(users, start + 20))))
    finally:
        await db.close()
    return emails


async def person(
    base: str, email: str, start_at: float, end_at: float, think: tuple[float, float], stats: Stats
) -> None:
    rng = random.Random(email)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:
        started = time.monotonic()
        try:
            async with session.post(
                base + "/api/auth/login", json={"email": email, "password": PASSWORD}
            ) as r:
                body = await r.json()
                if r.status != 200:
                    stats.error("sign in", str(r.status))
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.error("sign in", type(exc).__name__)
            return
        stats.add("sign in", started, time.monotonic() - started)
        writes = {"X-CSRF-Token": body["csrf_token"]}
        note_ids: list[str] = []
        step = 0
        while True:
            await asyncio.sleep(rng.uniform(*think))
            if time.monotonic() >= end_at:
                return
            kind = PAGES[step % len(PAGES)]
            step += 1
            if kind == "document" and not note_ids:
                continue
            started = time.monotonic()
            try:
                if kind == "documents":
                    async with session.get(base + "/api/documents") as r:
                        data = await r.json() if r.status == 200 else None
                        status = r.status
                    if data:
                        note_ids = [d["id"] for d in data["documents"]]
                elif kind == "document":
                    async with session.get(f"{base}/api/documents/{rng.choice(note_ids)}") as r:
                        await r.read()
                        status = r.status
                elif kind == "conversations":
                    async with session.get(base + "/api/conversations") as r:
                        await r.read()
                        status = r.status
                elif kind == "search":
                    word = rng.choice(SEARCH_WORDS)
                    url = f"{base}/api/search?mode=text&q={word}"
                    async with session.get(url) as r:
                        await r.read()
                        status = r.status
                else:
                    async with session.post(
                        base + "/api/conversations", json={}, headers=writes
                    ) as r:
                        created = await r.json() if r.status == 201 else None
                        status = 200 if r.status == 201 else r.status
                    if created:
                        stats.add(kind, started, time.monotonic() - started)
                        await chat(session, base, created["id"], writes, stats)
                        continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.error(kind, type(exc).__name__)
                continue
            if status == 200:
                stats.add(kind, started, time.monotonic() - started)
            else:
                stats.error(kind, str(status))


async def chat(
    session: aiohttp.ClientSession,
    base: str,
    conversation_id: str,
    writes: dict[str, str],
    stats: Stats,
) -> None:
    started = time.monotonic()
    first = 0.0
    done = False
    seen = b""
    body = {"content": PROMPT, "models": ["bench/r50"]}
    try:
        async with session.post(
            f"{base}/api/conversations/{conversation_id}/messages", json=body, headers=writes
        ) as r:
            if r.status != 200:
                problem = (await r.text())[:120]
                stats.error("chat", f"{r.status} {problem}")
                return
            async for data in r.content.iter_any():
                seen += data
                if not first and MARKER in seen:
                    first = time.monotonic()
                done = done or b"event: done" in seen
                if len(seen) > 4096:
                    seen = seen[-64:]  # enough to find the markers across chunk boundaries
                if b"event: error" in seen:
                    await asyncio.sleep(0.05)
                    seen += await r.content.read(2048)
                    data = seen.split(b"event: error", 1)[1].split(b"data:", 1)[-1]
                    try:
                        code = json.loads(data.split(b"\n", 1)[0]).get("code")
                    except ValueError:
                        code = "?"
                    stats.error("chat", f"error event {code}")
                    return
    except (aiohttp.ClientError, TimeoutError) as exc:
        stats.error("chat", type(exc).__name__)
        return
    if not first:
        stats.error("chat", "no content")
        return
    if not done:
        stats.error("chat", "no done event")
        return
    stats.add("first token", started, first - started)
    stats.add("whole answer", started, time.monotonic() - started)


@contextlib.asynccontextmanager
async def servers(found: dict[str, str], work: Path) -> AsyncIterator[dict[str, Any]]:
    upstream_port, web_ports = free_port(), [free_port(), free_port()]
    upstream = f"http://127.0.0.1:{upstream_port}"
    connection = {
        "name": "bench",
        "base_url": upstream + "/v1",
        "models": ["r0", "r50", "r10"],
        "max_output": 1024,
        "prices": {"input_per_million": 100, "output_per_million": 400},
    }
    models = {"MULTINOTES_PLUGINS__OPENAI_COMPATIBLE__CONNECTIONS": json.dumps([connection])}
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            process(
                [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)],
                work / "upstream.log",
            )
        )
        pids = []
        for number, port in enumerate([*web_ports, free_port()]):
            command = "worker" if number == 2 else "serve"
            name = f"{command}{number}"
            pids.append(
                stack.enter_context(pipeline_process(found, command, port, work, name, models))
            )
        await wait_listening(upstream_port)
        for port in web_ports:
            await wait_listening(port, 120)
        yield {
            "bases": [f"http://127.0.0.1:{port}" for port in web_ports],
            "pids": {"web 1": pids[0], "web 2": pids[1], "worker": pids[2]},
        }


async def run(args: argparse.Namespace, found: dict[str, str], work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    started = time.monotonic()
    emails = await seed_accounts(found["database_url"], args.users, args.notes)
    report["seed_seconds"] = round(time.monotonic() - started, 1)
    log(f"seeded {len(emails)} accounts in {report['seed_seconds']} s")
    async with servers(found, work) as srv:
        # One warm-up request per process (imports, pools) before anyone signs in.
        async with aiohttp.ClientSession() as session:
            for base in srv["bases"]:
                async with session.get(base + "/api/models") as r:
                    await r.read()
        report["load_average_at_start"] = os.getloadavg()
        cpu = {name: cpu_seconds(pid) for name, pid in srv["pids"].items()}
        now = time.monotonic()
        steady_from = now + args.ramp
        end_at = steady_from + args.minutes * 60
        stats = Stats(steady_from)
        think = (args.think_min, args.think_max)
        people = [
            person(
                srv["bases"][n % 2],
                email,
                now + args.ramp * n / len(emails),
                end_at,
                think,
                stats,
            )
            for n, email in enumerate(emails)
        ]
        progress = asyncio.create_task(report_progress(stats, end_at))
        await asyncio.gather(*people)
        progress.cancel()
        wall = time.monotonic() - now
        report["server_cores_used"] = {
            name: round((cpu_seconds(pid) - cpu[name]) / wall, 2)
            for name, pid in srv["pids"].items()
        }
        report["load_average_at_end"] = os.getloadavg()
    report["errors"] = dict(stats.errors)
    report["error_count"] = sum(stats.errors.values())
    report["sign_in"] = stats.summary(["sign in"])
    for label, steady in (("all", False), ("steady", True)):
        report[label] = {
            "pages": stats.summary(PAGES, steady),
            "first_token": stats.summary(["first token"], steady),
            "whole_answer": stats.summary(["whole answer"], steady),
            "by_page": {kind: stats.summary([kind], steady) for kind in PAGES},
        }
    return report


async def report_progress(stats: Stats, end_at: float) -> None:
    while time.monotonic() < end_at:
        await asyncio.sleep(15)
        done = {kind: len(rows) for kind, rows in stats.times.items()}
        log(f"  {round(end_at - time.monotonic())} s left: {done}, errors {dict(stats.errors)}")


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"load average at start {report['load_average_at_start']}",
        f"errors: {report['error_count']} {report['errors']}",
        f"sign in: {report['sign_in']}",
    ]
    for label in ("all", "steady"):
        part = report[label]
        lines.append(f"{label}: pages {part['pages']}")
        lines.append(f"{label}: first token {part['first_token']}")
        for kind, value in part["by_page"].items():
            lines.append(f"{label}:   {kind} {value}")
    lines.append(f"server cores used: {report['server_cores_used']}")
    lines.append(f"load average at end {report['load_average_at_end']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--notes", type=int, default=5, help="per person")
    parser.add_argument("--ramp", type=float, default=120.0, help="seconds to start everyone")
    parser.add_argument("--minutes", type=float, default=2.0, help="steady state after the ramp")
    parser.add_argument("--think-min", type=float, default=5.0)
    parser.add_argument("--think-max", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 people, ~40 s")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.users, args.notes, args.ramp, args.minutes = 20, 3, 10.0, 0.5
        args.think_min, args.think_max = 0.5, 2.0
    run_on_services(args, run, summary, "bench-users-")


if __name__ == "__main__":
    main()
