"""List endpoints on MariaDB at 64 connections (issue #17): requests per second per core of the
server process and p99, beside a naive aiohttp + SQLAlchemy ORM endpoint in the same run.

Production mode: a throwaway MariaDB database (``MULTINOTES_TEST_MYSQL``, default
``root@127.0.0.1:3306``, migrated here and dropped at the end) and Redis keys under a prefix of
this run (``MULTINOTES_TEST_REDIS``, default db 15, deleted at the end). One real ``multinotes
serve`` process (``pipeline_server.py``, rate limits on with limits too high to trip, INFO
request log) and the baseline (``naive_lists.py``, same database, same ``documents`` table).

Seeding, through the API: ``--users`` people, each with ``--notes`` notes of ~1.5 KB of text
and ``--conversations`` conversations. Every measured request is one of those people's (session
cookie, as the browser sends it):

* ``documents``: ``GET /api/documents`` (50 newest notes);
* ``conversations``: ``GET /api/conversations`` (the sidebar's first page);
* ``search``: ``GET /api/search?mode=text&record=false&q=<a word the notes hold>``;
* ``naive``: ``GET /documents?user_id=...`` on the baseline.

Each target runs closed-loop with ``--connections`` connections for ``--seconds`` (after a
warm-up), targets interleaved, ``--rounds`` times. "Per core" = requests completed / CPU seconds
(user + system) the server process used during the window, so it does not depend on how busy
the machine is; latencies do. MariaDB's and Redis's CPU is not counted for either server.

Run: ``python bench/bench_lists.py [--rounds 2] [--seconds 10] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from bench_stream import cpu_seconds, free_port, pct, process, wait_listening

HERE = Path(__file__).resolve().parent
PASSWORD = "correct horse battery staple 42"
WORDS = [
    "budget",
    "meeting",
    "roadmap",
    "design",
    "review",
    "customer",
    "launch",
    "summary",
    "draft",
    "invoice",
    "travel",
    "research",
    "kernel",
    "latency",
    "database",
    "garden",
    "recipe",
    "holiday",
    "project",
    "migration",
    "release",
    "benchmark",
    "feedback",
    "interview",
    "onboarding",
    "security",
    "backlog",
    "sprint",
    "retrospective",
    "planning",
    "proposal",
    "contract",
    "hiring",
    "marketing",
    "analytics",
    "dashboard",
    "outage",
    "incident",
    "postmortem",
]
SEARCH_WORDS = ("roadmap", "latency", "garden", "invoice", "benchmark", "postmortem")
UNLIMITED = "1000000/minute"


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def note_content(rng: random.Random) -> str:
    paragraphs = [text(rng, 40).capitalize() + "." for _ in range(4)]
    items = "\n".join(f"- {text(rng, 6)}" for _ in range(5))
    return f"# {text(rng, 3).title()}\n\n" + "\n\n".join(paragraphs) + "\n\n" + items + "\n"


def production_env(found: dict[str, str], port: int, data_dir: Path) -> dict[str, str]:
    """``multinotes serve`` in production mode on ``found``'s MariaDB and Redis."""
    env = {
        **os.environ,
        "MULTINOTES_MODE": "production",
        "MULTINOTES_DATA_DIR": str(data_dir),
        "MULTINOTES_HOST": "127.0.0.1",
        "MULTINOTES_PORT": str(port),
        "MULTINOTES_DATABASE_URL": found["database_url"],
        "MULTINOTES_REDIS_URL": found["redis_url"],
        "MULTINOTES_REDIS_PREFIX": found["redis_prefix"],
        "MULTINOTES_SECRET_KEY": found["secret_key"],
        "MULTINOTES_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MULTINOTES_COOKIE_SECURE": "false",
        "MULTINOTES_EMAIL_VERIFICATION_REQUIRED": "false",
        "MULTINOTES_RATE_LIMITS_ENABLED": "true",
        "MULTINOTES_OUTGOING_ALLOW": "127.0.0.1",  # the fake upstream, on loopback
    }
    for name in ("AUTH", "API", "GENERATION", "LOGIN_IP", "LOGIN_ACCOUNT"):
        env[f"MULTINOTES_RATE_LIMIT_{name}"] = UNLIMITED
    for name in ("REGISTER_IP", "REGISTER_ACCOUNT", "RESET_IP", "RESET_ACCOUNT"):
        env[f"MULTINOTES_RATE_LIMIT_{name}"] = UNLIMITED
    env.pop("OPENAI_API_KEY", None)
    return env


def pipeline_process(
    found: dict[str, str],
    command: str,
    port: int,
    work: Path,
    name: str,
    extra_env: dict[str, str] | None = None,
) -> Any:
    """``multinotes <command>`` (``serve`` on ``port``, or ``worker``) through
    ``pipeline_server.py``, in production mode on ``found``'s MariaDB and Redis, its data dir and
    log ``<name>.log`` in ``work``: a context manager that yields its pid and stops it."""
    env = {**production_env(found, port, work / f"{name}-data"), **(extra_env or {})}
    script = [sys.executable, str(HERE / "pipeline_server.py"), "--", command]
    return process(script, work / f"{name}.log", env)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options ``run_on_services`` reads."""
    parser.add_argument("--keep", action="store_true", help="keep the server logs")
    parser.add_argument("--out", type=Path, help="write the full report here as JSON")


def run_on_services(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, dict[str, str], Path], Any],
    summary: Callable[[dict[str, Any]], str],
    prefix: str,
) -> None:
    """A bench's ``main``: ``asyncio.run(run(args, found, work))`` on ``services()`` with a
    temporary work dir (kept with ``--keep``), the report written to ``--out`` as JSON, and
    ``summary(report)`` printed."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with services() as found:
            if found is None:
                raise SystemExit("MariaDB and Redis are needed (see bench_lists.py)")
            report = asyncio.run(run(args, found, work))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(summary(report))


@contextlib.contextmanager
def services() -> Any:
    """A migrated throwaway MariaDB database and a Redis prefix (None when unreachable)."""
    from bench_service import mariadb, migrate

    with mariadb() as found:
        if found is None:
            yield None
            return
        asyncio.run(migrate(found["database_url"]))
        yield {**found, "secret_key": secrets.token_urlsafe(48)}


def client(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        cookie_jar=aiohttp.DummyCookieJar(),  # every request names its person's cookie
        timeout=aiohttp.ClientTimeout(total=60),
    )


class Person:
    def __init__(self, user_id: str, email: str, cookie: str, csrf: str) -> None:
        self.user_id, self.email, self.cookie, self.csrf = user_id, email, cookie, csrf

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie}

    @property
    def writes(self) -> dict[str, str]:
        return {"Cookie": self.cookie, "X-CSRF-Token": self.csrf}


async def register(session: aiohttp.ClientSession, base: str, number: int) -> str:
    email = f"p{number}-{secrets.token_hex(3)}@example.com"
    body = {"email": email, "password": PASSWORD, "name": f"Person {number}"}
    async with session.post(base + "/api/auth/register", json=body) as r:
        assert r.status == 201, await r.text()
    return email


async def login(session: aiohttp.ClientSession, base: str, email: str) -> Person:
    async with session.post(
        base + "/api/auth/login", json={"email": email, "password": PASSWORD}
    ) as r:
        body = await r.json()
        assert r.status == 200, body
        cookie = "; ".join(f"{k}={v.value}" for k, v in r.cookies.items())
    return Person(body["user"]["id"], email, cookie, body["csrf_token"])


async def gather_limited(jobs: list[Callable[[], Any]], concurrency: int) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(jobs), concurrency):
        out += await asyncio.gather(*(job() for job in jobs[start : start + concurrency]))
    return out


async def seed(
    base: str, users: int, notes: int, conversations: int, seed_value: int = 17
) -> list[Person]:
    """``users`` people, each with ``notes`` notes and ``conversations`` conversations."""
    rng = random.Random(seed_value)
    async with client(limit=32) as session:
        emails = await gather_limited(
            [lambda n=n: register(session, base, n) for n in range(users)], 16
        )
        people = await gather_limited([lambda e=e: login(session, base, e) for e in emails], 16)
        jobs: list[Callable[[], Any]] = []
        for person in people:
            for _ in range(notes):
                body = {"title": text(rng, 4).title(), "content": note_content(rng)}
                jobs.append(lambda p=person, b=body: post(session, base, "/api/documents", p, b))
            for _ in range(conversations):
                body = {"title": text(rng, 5).capitalize()}
                jobs.append(
                    lambda p=person, b=body: post(session, base, "/api/conversations", p, b)
                )
        rng.shuffle(jobs)
        await gather_limited(jobs, 24)
    return people


async def post(
    session: aiohttp.ClientSession, base: str, path: str, person: Person, body: dict[str, Any]
) -> None:
    async with session.post(base + path, json=body, headers=person.writes) as r:
        assert r.status == 201, await r.text()


async def closed_loop(
    requests: Callable[[int, int], tuple[str, dict[str, str]]],
    connections: int,
    seconds: float,
    warmup: float,
    pid: int,
) -> dict[str, Any]:
    """``connections`` workers, each sending its next request when the last is answered."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    measuring = False
    stop = time.monotonic() + warmup + seconds

    async with client(limit=connections) as session:

        async def worker(index: int) -> None:
            turn = 0
            while time.monotonic() < stop:
                url, headers = requests(index, turn)
                turn += 1
                started = time.perf_counter()
                try:
                    async with session.get(url, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, problem = 0, type(exc).__name__
                else:
                    problem = str(status)
                if measuring:
                    if status == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors[problem] = errors.get(problem, 0) + 1

        tasks = [asyncio.create_task(worker(i)) for i in range(connections)]
        await asyncio.sleep(warmup)
        measuring = True
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        done_before = len(latencies)
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
        cpu_after, wall_after = cpu_seconds(pid), time.monotonic()
        done = len(latencies) - done_before
        measuring = False
        await asyncio.gather(*tasks)
    cpu = cpu_after - cpu_before
    wall = wall_after - wall_before
    ms = [v * 1000 for v in latencies]
    return {
        "requests": done,
        "errors": errors,
        "req_per_s": round(done / wall, 1),
        "server_cpu_s": round(cpu, 2),
        "server_cores_used": round(cpu / wall, 2),
        "req_per_core_s": round(done / cpu, 1) if cpu else None,
        "p50_ms": round(pct(ms, 50), 1),
        "p99_ms": round(pct(ms, 99), 1),
    }


@contextlib.asynccontextmanager
async def servers(found: dict[str, str], work: Path) -> AsyncIterator[dict[str, Any]]:
    port, naive_port = free_port(), free_port()
    naive = [
        sys.executable,
        str(HERE / "naive_lists.py"),
        "--port",
        str(naive_port),
        "--database-url",
        found["database_url"],
    ]
    with (
        pipeline_process(found, "serve", port, work, "serve") as pid,
        process(naive, work / "naive.log") as naive_pid,
    ):
        await wait_listening(port, 120)
        await wait_listening(naive_port, 60)
        yield {
            "base": f"http://127.0.0.1:{port}",
            "pid": pid,
            "naive": f"http://127.0.0.1:{naive_port}",
            "naive_pid": naive_pid,
        }


async def run(args: argparse.Namespace, found: dict[str, str], work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "rounds": []}
    async with servers(found, work) as srv:
        started = time.monotonic()
        people = await seed(srv["base"], args.users, args.notes, args.conversations)
        report["seed_seconds"] = round(time.monotonic() - started, 1)
        log(f"seeded {len(people)} people in {report['seed_seconds']} s")
        base, naive = srv["base"], srv["naive"]

        def who(index: int) -> Person:
            return people[index % len(people)]

        targets: dict[str, tuple[Callable[[int, int], tuple[str, dict[str, str]]], int]] = {
            "naive ORM (baseline)": (
                lambda i, t: (f"{naive}/documents?user_id={who(i).user_id}", {}),
                srv["naive_pid"],
            ),
            "GET /api/documents": (
                lambda i, t: (f"{base}/api/documents", who(i).headers),
                srv["pid"],
            ),
            "GET /api/conversations": (
                lambda i, t: (f"{base}/api/conversations", who(i).headers),
                srv["pid"],
            ),
            "GET /api/search?mode=text": (
                lambda i, t: (
                    f"{base}/api/search?mode=text&record=false"
                    f"&q={SEARCH_WORDS[(i + t) % len(SEARCH_WORDS)]}",
                    who(i).headers,
                ),
                srv["pid"],
            ),
        }
        chosen = {
            k: v for k, v in targets.items() if not args.only or any(o in k for o in args.only)
        }
        for round_ in range(args.rounds):
            entry: dict[str, Any] = {}
            for name, (requests, pid) in chosen.items():
                entry[name] = await closed_loop(
                    requests, args.connections, args.seconds, args.warmup, pid
                )
                log(f"round {round_ + 1} {name}: {json.dumps(entry[name])}")
            report["rounds"].append(entry)
    report["load_average_at_end"] = os.getloadavg()
    return report


def summary(report: dict[str, Any]) -> str:
    lines = [f"load average at start {report['load_average_at_start']}"]
    for number, entry in enumerate(report["rounds"], 1):
        baseline = entry.get("naive ORM (baseline)", {}).get("req_per_core_s")
        for name, v in entry.items():
            ratio = ""
            if baseline and v["req_per_core_s"]:
                ratio = f" ({v['req_per_core_s'] / baseline:.2f}x baseline)"
            lines.append(
                f"round {number} {name}: {v['req_per_core_s']} req/s per core{ratio},"
                f" {v['req_per_s']} req/s using {v['server_cores_used']} core,"
                f" p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms, errors {v['errors'] or 0}"
            )
    lines.append(f"load average at end {report['load_average_at_end']}")
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--notes", type=int, default=120, help="per person")
    parser.add_argument("--conversations", type=int, default=40, help="per person")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--only", type=lambda s: s.split(","), default=None, help="e.g. naive,documents"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and short")
    add_run_options(parser)
    args = parser.parse_args()
    if args.quick:
        args.users, args.notes, args.conversations = 4, 20, 5
        args.seconds, args.warmup, args.rounds, args.connections = 2.0, 0.5, 1, 16
    run_on_services(args, run, summary, "bench-lists-")


if __name__ == "__main__":
    main()
