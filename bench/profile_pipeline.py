"""Load-insensitive measurements of the streaming pipeline, from inside the server process.

Wall-clock benchmarks (``bench_stream.py``) swing with whatever else runs on the machine. This
script measures what does not: the server's own CPU time per request, split into a fixed part
and a per-chunk part (two upstreams, 200 and 20 chunks per answer); the SQL statements of one
request; a cProfile of sequential requests; and, with tracemalloc, what each open stream holds.

It starts two fake upstreams (``upstream.py``) and ``probe_server.py`` (the real app plus
measuring routes under ``/__probe/``) in embedded mode, with the ``openai_compatible`` plugin
pointing at the upstreams (connections ``bench`` with 200 chunks and ``short`` with 20), then
drives requests as ``bench_stream.py`` does (API key, rate limits on).

With ``--production`` the server runs in production mode instead, on a throwaway MariaDB
database and a Redis prefix (as ``bench_lists.py``; dropped at the end).

``--only timeline``: where the wall time to the first token goes, request by request (one at a
time, the 200-chunk upstream at full speed): the client's send and first-token times and the
server's marks (``probe_server.time_first_token``) on the same monotonic clock; the median and
minimum of each interval.

Run: ``python bench/profile_pipeline.py [--only cpu,sql,profile,memory,timeline]
[--requests 100] [--streams 100] [--profile-out FILE] [--production]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import aiohttp
from bench_stream import (
    HERE,
    MARKER,
    PROMPT,
    client_session,
    embedded_env,
    free_port,
    one,
    process,
    setup_user,
    wait_listening,
)


def connection(name: str, base_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": base_url + "/v1",
        "models": ["r0", "r50", "r10", "r1"],
        "max_output": 1024,
        "prices": {"input_per_million": 100, "output_per_million": 400},
    }


async def probe(session: aiohttp.ClientSession, base: str, path: str, **query: Any) -> Any:
    async with session.get(f"{base}/__probe/{path}", params=query) as response:
        text = await response.text()
        assert response.status == 200, text
        return json.loads(text) if response.content_type == "application/json" else text


class Driver:
    def __init__(self, base: str, key: str, conversations: list[str]) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.conversations = iter(conversations)

    def payload(self, model: str) -> bytes:
        return json.dumps({"content": PROMPT, "models": [model]}).encode()

    def url(self) -> str:
        return f"{self.base}/api/conversations/{next(self.conversations)}/messages"

    async def sequential(self, session: aiohttp.ClientSession, model: str, count: int) -> None:
        for _ in range(count):
            result = await one(session, self.url(), self.payload(model), self.headers)
            if not result.ok:
                raise RuntimeError(f"request failed: {result}")

    async def cpu_per_request(
        self, session: aiohttp.ClientSession, model: str, count: int
    ) -> float:
        before = await probe(session, self.base, "cpu")
        await self.sequential(session, model, count)
        after = await probe(session, self.base, "cpu")
        return (after["process_time"] - before["process_time"]) * 1000 / count


MARKS = (
    "middlewares",
    "handler",
    "hold starts",
    "hold committed",
    "plan returned",
    "provider called",
    "provider first chunk",
)


async def timeline(
    driver: Driver, session: aiohttp.ClientSession, model: str, count: int
) -> dict[str, dict[str, float]]:
    """Median and minimum (ms) of each step between the client's send and its first token."""
    await probe(session, driver.base, "timeline")
    client = []
    for _ in range(count):
        sent = time.perf_counter()
        first = 0.0
        async with session.post(
            driver.url(), data=driver.payload(model), headers=driver.headers
        ) as r:
            assert r.status == 200, r.status
            tail = b""
            async for data in r.content.iter_any():
                if not first:
                    seen = tail + data
                    if MARKER in seen:
                        first = time.perf_counter()
                    tail = seen[-8:]
        client.append((sent, first))
    server = await probe(session, driver.base, "timeline")
    assert len(server) == count, (len(server), count)
    steps: dict[str, list[float]] = {}
    for (sent, first), marks in zip(client, server, strict=True):
        points = [("client sent", sent)] + [(m, marks[m]) for m in MARKS if m in marks]
        # The first token goes out once the provider's first chunk is there and the rows are
        # stored: whichever came last.
        if "rows stored" in marks:
            steps.setdefault("rows stored after the first chunk by", []).append(
                max(0.0, marks["rows stored"] - marks["provider first chunk"]) * 1000
            )
            points.append(
                ("first token sent", max(marks["rows stored"], marks["provider first chunk"]))
            )
        points.append(("client first token", first))
        for (a, ta), (b, tb) in itertools.pairwise(points):
            steps.setdefault(f"{a} -> {b}", []).append((tb - ta) * 1000)
        steps.setdefault("total", []).append((first - sent) * 1000)
    return {
        name: {"p50": statistics.median(values), "min": min(values), "n": len(values)}
        for name, values in steps.items()
    }


async def hold_streams(
    driver: Driver, count: int, opened_event: asyncio.Event, model: str = "bench/r10"
) -> Any:
    """Open ``count`` paced streams (``bench/r10``: 20 s each), each read up to its first token;
    they stay open until the returned ``close`` is awaited (or the upstream finishes)."""
    release = asyncio.Event()
    opened = 0

    async def hold(session: aiohttp.ClientSession) -> None:
        nonlocal opened
        url = driver.url()
        data = driver.payload(model)
        async with session.post(url, data=data, headers=driver.headers) as response:
            assert response.status == 200, response.status
            tail = b""
            async for chunk in response.content.iter_any():
                seen = tail + chunk
                if MARKER in seen:
                    break
                tail = seen[-8:]
            opened += 1
            if opened == count:
                opened_event.set()
            await release.wait()

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),  # every stream at once, none queued
        timeout=aiohttp.ClientTimeout(total=None),
    )
    tasks = [asyncio.create_task(hold(session)) for _ in range(count)]

    async def close() -> None:
        release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()

    return close


async def run(
    args: argparse.Namespace, workdir: Path, found: dict[str, str] | None = None
) -> dict[str, Any]:
    ports = {name: free_port() for name in ("long", "short", "server")}
    python = sys.executable
    long_url = f"http://127.0.0.1:{ports['long']}"
    short_url = f"http://127.0.0.1:{ports['short']}"
    if found is not None:  # production mode, on this run's MariaDB database and Redis prefix
        from bench_lists import production_env

        env = production_env(found, ports["server"], workdir / "data")
    else:
        env = embedded_env(workdir / "data", ports["server"])
    env["MULTINOTES_PLUGINS__OPENAI_COMPATIBLE__CONNECTIONS"] = json.dumps(
        [connection("bench", long_url), connection("short", short_url)]
    )
    env.pop("OPENAI_API_KEY", None)
    if args.no_search_index:
        env["BENCH_NO_SEARCH_INDEX"] = "1"
    report: dict[str, Any] = {}
    with (
        process(
            [python, str(HERE / "upstream.py"), "--port", str(ports["long"])],
            workdir / "upstream-long.log",
        ),
        process(
            [python, str(HERE / "upstream.py"), "--port", str(ports["short"]), "--chunks", "20"],
            workdir / "upstream-short.log",
        ),
        process([python, str(HERE / "probe_server.py")], workdir / "server.log", env) as pid,
    ):
        for port in ports.values():
            await wait_listening(port, within=300.0)  # a loaded machine starts it slowly
        base = f"http://127.0.0.1:{ports['server']}"
        need = 40 + args.streams * 2 + args.requests * 4 + 10
        key, conversations = await setup_user(base, need)
        driver = Driver(base, key, conversations)
        async with client_session() as session:
            await driver.sequential(session, "bench/r0", 20)
            await driver.sequential(session, "short/r0", 20)
            if "memory" in args.only:
                # RSS first, on a fresh heap and without tracemalloc's own overhead.
                idle = await probe(session, base, "cpu")
                opened = asyncio.Event()
                close = await hold_streams(driver, args.streams, opened)
                await asyncio.wait_for(opened.wait(), 120)
                await asyncio.sleep(1)
                loaded = await probe(session, base, "cpu")
                await close()
                report["rss_kb_per_stream"] = (loaded["rss_kb"] - idle["rss_kb"]) / args.streams
                report["tasks_per_stream"] = (loaded["tasks"] - idle["tasks"]) / args.streams
                print(
                    f"RSS per open stream: {report['rss_kb_per_stream']:.1f} KB; "
                    f"tasks per stream: {report['tasks_per_stream']:.2f}",
                    flush=True,
                )
            if "cpu" in args.only:
                long = await driver.cpu_per_request(session, "bench/r0", args.requests)
                short = await driver.cpu_per_request(session, "short/r0", args.requests)
                per_chunk = (long - short) / 180
                report["cpu_ms"] = {
                    "per_request_200_chunks": long,
                    "per_request_20_chunks": short,
                    "per_chunk_us": per_chunk * 1000,
                    "fixed_per_request": short - 20 * per_chunk,
                }
                print(f"CPU: {json.dumps(report['cpu_ms'])}", flush=True)
            if "timeline" in args.only:
                report["timeline_ms"] = await timeline(driver, session, "bench/r0", args.requests)
                for name, row in report["timeline_ms"].items():
                    print(f"  {name}: p50 {row['p50']:.2f} ms, min {row['min']:.2f} ms", flush=True)
            if "steps" in args.only:
                await probe(session, base, "timings")
                await driver.sequential(session, "short/r0", args.requests)
                report["steps_ms"] = await probe(session, base, "timings")
                for name, row in report["steps_ms"].items():
                    print(f"  {name}: p50 {row['p50']:.2f} ms, p90 {row['p90']:.2f} ms", flush=True)
            if "sql" in args.only:
                await probe(session, base, "sql")
                await driver.sequential(session, "short/r0", 1)
                await asyncio.sleep(0.2)
                sql = await probe(session, base, "sql")
                report["sql_per_request"] = sql["counts"]
                report["sql_statements"] = sql["statements"]
                print(f"SQL per request: {sql['counts']}", flush=True)
                if args.show_sql:
                    print("\n".join(f"  {line}" for line in sql["statements"]), flush=True)
            if "pyspy" in args.only:
                # Sampling, on-CPU only: the share of CPU each function (with its callees) uses.
                spy = await asyncio.create_subprocess_exec(
                    "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "500",
                    "--format",
                    "raw",
                    "--output",
                    str(args.pyspy_out),
                    "--nonblocking",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                await asyncio.sleep(1)
                await driver.sequential(session, args.profile_model, args.requests)
                spy.send_signal(signal.SIGINT)
                await spy.wait()
                print(f"py-spy samples in {args.pyspy_out}", flush=True)
            if "profile" in args.only:
                await probe(session, base, "profile/start")
                await driver.sequential(session, args.profile_model, args.requests)
                text = await probe(
                    session,
                    base,
                    "profile/stop",
                    sort=args.profile_sort,
                    limit=args.profile_limit,
                    dump=str(args.profile_out or ""),
                )
                report["profile"] = text
                print(text, flush=True)
            if "trace" in args.only:
                # Few frames: tracemalloc slows the server down, and every stream must still be
                # open (1 chunk/s: 200 s) when the second snapshot is taken.
                await probe(session, base, "trace/start", frames=args.frames)
                await driver.sequential(session, "bench/r0", 10)
                await probe(session, base, "trace/snapshot", name="idle")
                opened = asyncio.Event()
                close = await hold_streams(driver, args.streams, opened, "bench/r1")
                await asyncio.wait_for(opened.wait(), 150)
                await asyncio.sleep(1)
                await probe(session, base, "trace/snapshot", name="loaded")
                await close()
                for group in ("lineno", "traceback"):
                    text = await probe(
                        session,
                        base,
                        "trace/compare",
                        a="idle",
                        b="loaded",
                        per=args.streams,
                        group=group,
                        limit=40 if group == "lineno" else 15,
                    )
                    report[f"trace_{group}"] = text
                    print(text, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", type=lambda s: s.split(","), default=["memory", "cpu", "steps", "sql"]
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--profile-model", default="bench/r0")
    parser.add_argument("--frames", type=int, default=8, help="tracemalloc frames kept")
    parser.add_argument("--profile-sort", default="cumulative")
    parser.add_argument("--profile-limit", default="70")
    parser.add_argument("--profile-out", type=Path)
    parser.add_argument("--pyspy-out", type=Path, default=Path("pyspy.txt"))
    parser.add_argument("--show-sql", action="store_true", help="print each SQL statement")
    parser.add_argument(
        "--no-search-index",
        action="store_true",
        help="skip the semantic-search indexing each finished answer queues (in-process here)",
    )
    parser.add_argument("--out", type=Path, help="write the report here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and server logs")
    parser.add_argument(
        "--production",
        action="store_true",
        help="production mode: a throwaway MariaDB database and Redis prefix (as bench_lists.py)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="multinotes-profile-"))
    if args.production:
        from bench_lists import services
    try:
        with services() if args.production else nullcontext({}) as found:
            if args.production and found is None:
                raise SystemExit("MariaDB and Redis are needed (see bench_lists.py)")
            report = asyncio.run(run(args, workdir, found or None))
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
