"""Where a list request's CPU goes (issue #17): a cProfile of the server while a client in
another process sends ``GET /api/documents`` (or ``--path``) with a session cookie, production
mode (MariaDB + Redis, as ``bench_lists.py``). The server runs in this process, so the profile
holds only its work: aiohttp, the middlewares (auth, rate limit), the handler's query and the
row -> JSON step. Prints CPU per request and a split by stage, then the top functions.

Run: ``python bench/profile_lists.py [--path /api/documents] [--seconds 8] [--connections 16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent

#: Where a function's own time is counted: the first pattern its file name holds.
CATEGORIES = (
    ("multinotes: auth + sessions", ("/core/identity/", "/core/http/session")),
    ("multinotes: middlewares", ("/core/http/middleware", "/core/ratelimit", "/core/abuse/")),
    ("multinotes: endpoint + JSON", ("/core/http/endpoint", "json/")),
    ("multinotes: list code", ("/core/notes/", "/core/chat/", "/core/search/", "/core/api/")),
    ("multinotes: other", ("/core/",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("aiomysql + pymysql", ("aiomysql/", "pymysql/")),
    ("redis", ("redis/", "limits/")),
    ("pydantic", ("pydantic",)),
    ("aiohttp", ("aiohttp/", "multidict", "yarl")),
    ("asyncio + sockets", ("asyncio/", "_socket", "select.epoll", "_contextvars", "greenlet")),
    ("structlog + logging", ("structlog/", "logging/")),
)


def category(key: tuple[str, int, str]) -> str:
    where = f"{key[0]}:{key[2]}"
    for name, patterns in CATEGORIES:
        if any(p in where for p in patterns):
            return name
    return "other"


async def client(url: str, cookie: str, seconds: float, connections: int) -> None:
    done = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                async with s.get(url, headers={"Cookie": cookie}) as r:
                    await r.read()
                    assert r.status == 200, r.status
                done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    print(json.dumps({"requests": done}))


async def serve_and_profile(args: argparse.Namespace, found: dict[str, str]) -> None:
    from aiohttp import web
    from bench_lists import production_env, seed
    from bench_stream import free_port

    port = free_port()
    os.environ.update(production_env(found, port, Path(tempfile.mkdtemp(prefix="prof-lists-"))))
    os.environ["MULTINOTES_LOG_LEVEL"] = "WARNING"
    from multinotes.app import create_app

    runner = web.AppRunner(create_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        people = await seed(base, 1, args.notes, args.conversations)
        person = people[0]
        url = base + args.path
        # warm-up, unprofiled; then the whole request's CPU without the profiler's overhead
        await run_client(url, person.cookie, 2.0, args.connections)
        cpu = time.process_time()
        requests = await run_client(url, person.cookie, args.seconds, args.connections)
        whole = (time.process_time() - cpu) / requests * 1000
        print(f"{args.path}, whole request: {whole:.3f} ms CPU (no profiler)")
        if args.path == "/api/documents":
            await stages(runner.app, person, whole)
        profile = cProfile.Profile(time.process_time)  # CPU, not wall: load-proof
        cpu = time.process_time()
        profile.enable()
        requests = await run_client(url, person.cookie, args.seconds, args.connections)
        profile.disable()
        cpu = time.process_time() - cpu
    finally:
        await runner.cleanup()
    report(profile, requests, cpu, args)


async def stages(app: Any, person: Any, whole_ms: float, calls: int = 300) -> None:
    """CPU per call of each stage of ``GET /api/documents``, called one after another in this
    process: what the auth middleware, the rate limit, the handler's read and the response
    step cost; the rest of a request is aiohttp, the other middlewares and the event loop."""
    from cpu_timing import cpu_ms_per_call

    from multinotes.api.documents import DocumentPage
    from multinotes.http.endpoint import to_jsonable
    from multinotes.http.middleware import session_cookie_name
    from multinotes.keys import DB, RATE_LIMITS, SESSION_CACHE, SETTINGS
    from multinotes.notes import service as notes

    db, settings = app[DB], app[SETTINGS]
    token = person.cookie.split(session_cookie_name(settings) + "=", 1)[1].split(";")[0]
    cache = app.get(SESSION_CACHE)
    summaries, _ = await notes.list_document_summaries(db, person.user_id)

    async def auth() -> None:
        assert await cache.actor(db, token) is not None

    async def rate() -> None:
        await app[RATE_LIMITS].hit("api", f"user:{person.user_id}")

    async def read() -> None:
        await notes.list_document_summaries(db, person.user_id)

    async def respond() -> None:
        json.dumps(to_jsonable({"documents": summaries, "next_cursor": None}, DocumentPage))

    for name, call in (("auth", auth), ("rate limit", rate), ("read", read), ("respond", respond)):
        ms = await cpu_ms_per_call(call, calls)
        print(f"  {name:12s} {ms:.3f} ms CPU ({ms / whole_ms * 100:.0f} %)")


async def run_client(url: str, cookie: str, seconds: float, connections: int) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        url,
        cookie,
        str(seconds),
        str(connections),
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return int(json.loads(out)["requests"])


def report(profile: cProfile.Profile, requests: int, cpu: float, args: argparse.Namespace) -> None:
    stats = pstats.Stats(profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    print(f"{args.path}: {requests} requests, {cpu / requests * 1000:.3f} ms CPU per request")
    # The profiler's own overhead inflates every call alike; shares are what count.
    split: dict[str, float] = {}
    for key, value in raw.items():
        split[category(key)] = split.get(category(key), 0.0) + value[2]
    total = sum(split.values()) or 1.0
    for name, seconds in sorted(split.items(), key=lambda item: -item[1]):
        print(f"  {name:30s} {seconds / total * 100:5.1f} %")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    if args.dump:
        profile.dump_stats(args.dump)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, cookie, seconds, connections = sys.argv[2:6]
        asyncio.run(client(url, cookie, float(seconds), int(connections)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/api/documents")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--notes", type=int, default=120)
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", type=Path, help="write the raw profile here")
    args = parser.parse_args()
    from bench_lists import services

    with services() as found:
        if found is None:
            raise SystemExit("MariaDB and Redis are needed (see bench_service.py)")
        asyncio.run(serve_and_profile(args, found))


if __name__ == "__main__":
    main()
