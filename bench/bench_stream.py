"""Streaming benchmark: the full MultinotesAI pipeline beside a bare aiohttp relay, one run.

Starts three server processes on loopback: the fake upstream (bench/upstream.py, 200 chunks per
answer), the bare relay (bench/relay.py) and a real ``multinotes serve`` in embedded mode
(bench/pipeline_server.py) with the openai_compatible plugin pointing at the upstream, rate
limits on (generation limit raised so it never trips). This process is the client: it registers
a user, makes an API key, grants credits, and sends ``POST /api/conversations/{id}/messages``
with ``Authorization: Bearer`` (auth, rate limit, reserve, stream, settle, persist).

Measures, each target beside the bare relay's:

* ttfb: time to the first content token, calling the upstream directly, through the relay and
  through the pipeline, requests interleaved round-robin; "added" = target minus direct.
* ramp: concurrent streams at 50 chunks/s each (50, 100, 200, 400, ...; then one step between
  the last pass and the first fail, or halving when the first level fails); a level passes
  when the p99 time to first token of the requests started in steady state is under 100 ms
  and no request failed.
* memory: server RSS with N streams open minus idle, divided by N.

LiteLLM, when installed (``pip install 'litellm[proxy]'``; found on ``PATH`` or given with
``--litellm /path/to/litellm``, e.g. from a separate virtualenv), is a fourth target: its proxy
with one worker, a master key and no database, its three models (``r0``, ``r50``, ``r10``)
pointing at the same fake upstream, measured like the relay. ``--no-litellm`` leaves it out.

Everything is bounded (request counts, per-level time limits) and stops by itself.

``--production`` runs the pipeline in production mode instead (a throwaway MariaDB database and
Redis prefix per run, as ``bench_lists.py``).

Run: ``python bench/bench_stream.py`` (see ``--help``; ``--shared-ssl-context`` runs the pipeline
with the TLS fix proposed in bench/README.md).
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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
MARKER = b"tok0 "  # the first content chunk, as the upstream words it
PROMPT = "Write two hundred words about benchmarks."
SLO_MS = 100.0
WARMUP = 20  # requests to each server before measuring


# -- processes ----------------------------------------------------------------------------------


def embedded_env(data_dir: Path, port: int) -> dict[str, str]:
    """A bench server's environment in embedded mode: rate limits on (their cost is part of
    the path measured) but far above what the bench sends."""
    return {
        **os.environ,
        "MULTINOTES_MODE": "embedded",
        "MULTINOTES_DATA_DIR": str(data_dir),
        "MULTINOTES_HOST": "127.0.0.1",
        "MULTINOTES_PORT": str(port),
        "MULTINOTES_SECRET_KEY": secrets.token_urlsafe(48),
        "MULTINOTES_RATE_LIMITS_ENABLED": "true",
        "MULTINOTES_RATE_LIMIT_GENERATION": "1000000/minute",
        "MULTINOTES_RATE_LIMIT_API": "1000000/minute",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """Run ``args``; yields its pid; always stops it (SIGINT, then SIGKILL)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc.pid
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_listening(port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {within} s")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def rss_sample(pid: int, samples: int = 5) -> int:
    values = []
    for _ in range(samples):
        values.append(rss_kb(pid))
        await asyncio.sleep(0.2)
    return int(statistics.median(values))


# -- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where to send one kind of request. ``urls`` are used in turn (pipeline: one conversation
    per request or per worker)."""

    name: str
    urls: list[str]
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    #: The pipeline takes ``models: ["bench/r50"]`` (connection/model); the others ``model``.
    pipeline: bool = False
    #: The server process, to read its CPU time and memory (None: not measured).
    pid: int | None = None

    def payload(self, model: str) -> bytes:
        body = dict(self.body)
        if self.pipeline:
            body["models"] = [f"bench/{model}"]
        else:
            body["model"] = model
        return json.dumps(body).encode()


@dataclass
class Result:
    ok: bool
    headers_ms: float = 0.0
    first_ms: float = 0.0
    total_ms: float = 0.0
    status: int = 0
    error: str = ""


async def one(session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str]):
    """One streamed request, read to the end; times headers, first content token, end."""
    t0 = time.perf_counter()
    first = 0.0
    try:
        async with session.post(url, data=data, headers=headers) as response:
            t_headers = time.perf_counter()
            if response.status != 200:
                await response.read()
                return Result(False, status=response.status, error="http")
            tail = b""
            async for data_in in response.content.iter_any():
                if not first:
                    seen = tail + data_in
                    if MARKER in seen:
                        first = time.perf_counter()
                    else:
                        tail = seen[-8:]
    except (aiohttp.ClientError, OSError) as exc:
        return Result(False, error=type(exc).__name__)
    end = time.perf_counter()
    if not first:
        return Result(False, status=200, error="no content")
    return Result(
        True,
        (t_headers - t0) * 1000,
        (first - t0) * 1000,
        (end - t0) * 1000,
        200,
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def client_session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # keep cookies of 127.0.0.1
        timeout=aiohttp.ClientTimeout(total=120),
    )


# -- setup --------------------------------------------------------------------------------------


async def setup_user(base: str, conversations: int) -> tuple[str, list[str]]:
    """Register the admin, make an API key, grant credits, create conversations (API key)."""
    async with client_session(limit=20) as session:
        email = f"bench-{secrets.token_hex(4)}@example.com"
        password = "correct horse battery staple"
        register = {"email": email, "password": password, "name": "Bench"}
        async with session.post(base + "/api/auth/register", json=register) as r:
            assert r.status == 201, await r.text()
        login = {"email": email, "password": password}
        async with session.post(base + "/api/auth/login", json=login) as r:
            body = await r.json()
            assert r.status == 200, body
        csrf = {"X-CSRF-Token": body["csrf_token"]}
        user_id = body["user"]["id"]
        async with session.post(base + "/api/keys", json={"name": "bench"}, headers=csrf) as r:
            key = (await r.json())["key"]
        grant = {"amount": 10**12, "reason": "benchmark"}
        url = f"{base}/api/admin/users/{user_id}/credits"
        async with session.post(url, json=grant, headers=csrf) as r:
            assert r.status in (200, 201), await r.text()
    bearer = {"Authorization": f"Bearer {key}"}
    async with client_session(limit=20) as session:
        async with session.get(base + "/api/models", headers=bearer) as r:
            models = {m["id"]: m for m in await r.json()}
        for name in ("bench/r0", "bench/r50", "bench/r10"):
            assert models.get(name, {}).get("available"), (name, models.get(name))

        async def create() -> str:
            async with session.post(base + "/api/conversations", json={}, headers=bearer) as r:
                assert r.status == 201, await r.text()
                return str((await r.json())["id"])

        ids: list[str] = []
        while len(ids) < conversations:
            batch = min(20, conversations - len(ids))
            ids += await asyncio.gather(*(create() for _ in range(batch)))
    return key, ids


# -- measurements -------------------------------------------------------------------------------


async def measure_ttfb(targets: list[Target], requests: int, warmup: int) -> dict[str, Any]:
    """Sequential requests, one target after another in shuffled order, ``r0`` upstream."""
    results: dict[str, list[Result]] = {t.name: [] for t in targets}
    cpu = {t.name: cpu_seconds(t.pid) for t in targets if t.pid}
    async with client_session() as session:
        for round_ in range(warmup + requests):
            order = list(targets)
            random.shuffle(order)
            for target in order:
                url = target.urls[round_ % len(target.urls)]
                result = await one(session, url, target.payload("r0"), target.headers)
                if not result.ok:
                    raise RuntimeError(f"{target.name}: {result}")
                if round_ >= warmup:
                    results[target.name].append(result)
            if round_ == warmup - 1:
                cpu = {t.name: cpu_seconds(t.pid) for t in targets if t.pid}
    for target in targets:
        if target.pid:
            cpu[target.name] = (cpu_seconds(target.pid) - cpu[target.name]) / requests
    out: dict[str, Any] = {}
    direct = [r.first_ms for r in results.get("direct", [])] or [float("nan")]
    for name, rows in results.items():
        first = [r.first_ms for r in rows]
        out[name] = {
            "first_p50": statistics.median(first),
            "first_p95": pct(first, 95),
            "headers_p50": statistics.median(r.headers_ms for r in rows),
            "total_p50": statistics.median(r.total_ms for r in rows),
            "added_p50": statistics.median(first) - statistics.median(direct),
            "added_p95": pct(first, 95) - pct(direct, 95),
            "server_cpu_ms": cpu[name] * 1000 if name in cpu else None,
        }
    return out


async def run_level(
    target: Target, concurrency: int, stream_seconds: float, measure_seconds: float
) -> dict[str, Any]:
    """``concurrency`` workers each streaming back to back for a while, starts staggered over
    one stream's length; only requests started after that ramp count."""
    data = target.payload("r50")
    start = time.perf_counter()
    steady = start + stream_seconds
    stop = steady + measure_seconds
    counted: list[Result] = []
    errors: list[str] = []
    completed = 0
    cpu_before = cpu_seconds(target.pid) if target.pid else 0.0

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal completed
        await asyncio.sleep(index * stream_seconds / concurrency)
        url = target.urls[index % len(target.urls)]
        while time.perf_counter() < stop:
            began = time.perf_counter()
            result = await one(session, url, data, target.headers)
            if not result.ok:
                errors.append(result.error or str(result.status))
                await asyncio.sleep(0.5)
                continue
            completed += 1
            if began >= steady:
                counted.append(result)

    async with client_session() as session:
        tasks = [asyncio.create_task(worker(i, session)) for i in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=stop - start + stream_seconds * 4 + 30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    cpu = (cpu_seconds(target.pid) - cpu_before) if target.pid else 0.0
    first = [r.first_ms for r in counted]
    duration = [r.total_ms for r in counted]
    headers = [r.headers_ms for r in counted]
    p99 = pct(first, 99)
    return {
        "concurrency": concurrency,
        "requests": len(counted),
        "errors": len(errors) + len(pending),
        "headers_p50": statistics.median(headers) if headers else float("nan"),
        "headers_p99": pct(headers, 99),
        "first_p50": statistics.median(first) if first else float("nan"),
        "first_p99": p99,
        "duration_p50_s": (statistics.median(duration) / 1000) if duration else float("nan"),
        "duration_p99_s": pct(duration, 99) / 1000,
        "server_cpu_ms_per_stream": cpu * 1000 / completed if completed else None,
        "server_cpu_share": cpu / (time.perf_counter() - start),
        "passed": bool(counted) and not errors and not pending and p99 < SLO_MS,
    }


async def ramp(
    target: Target, levels: list[int], stream_seconds: float, measure_seconds: float, log: Any
) -> dict[str, Any]:
    rows = []
    best, worst = 0, None
    for level in levels:
        row = await run_level(target, level, stream_seconds, measure_seconds)
        rows.append(row)
        log(f"  {target.name} {row}")
        if row["passed"]:
            best = level
        else:
            worst = level
            break
        await asyncio.sleep(2)
    while not best and worst is not None and worst > 10:  # failed at the first level: go down
        level = worst // 2
        await asyncio.sleep(2)
        row = await run_level(target, level, stream_seconds, measure_seconds)
        rows.append(row)
        log(f"  {target.name} {row}")
        if row["passed"]:
            best = level
        else:
            worst = level
    if worst is not None and best and worst - best > 50:  # one step in between
        middle = (best + worst) // 2
        await asyncio.sleep(2)
        row = await run_level(target, middle, stream_seconds, measure_seconds)
        rows.append(row)
        log(f"  {target.name} {row}")
        if row["passed"]:
            best = middle
    return {"sustained": best, "levels": rows}


async def measure_memory(target: Target, streams: int) -> dict[str, Any]:
    """RSS of ``pid`` idle, then with ``streams`` open ``r10`` streams (20 s each at 10 chunks/s;
    measured once every stream has sent its first token), then after they are closed."""
    pid = target.pid
    assert pid is not None
    idle = await rss_sample(pid)
    data = target.payload("r10")
    opened = 0
    all_open = asyncio.Event()
    release = asyncio.Event()

    async def hold(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal opened
        url = target.urls[index % len(target.urls)]
        async with session.post(url, data=data, headers=target.headers) as response:
            assert response.status == 200, response.status
            tail = b""
            async for chunk in response.content.iter_any():
                seen = tail + chunk
                if MARKER in seen:
                    break
                tail = seen[-8:]
            opened += 1
            if opened == streams:
                all_open.set()
            await release.wait()  # then leaving the block closes the connection

    async with client_session() as session:
        tasks = [asyncio.create_task(hold(i, session)) for i in range(streams)]
        try:
            await asyncio.wait_for(all_open.wait(), 60)
            await asyncio.sleep(1.0)
            loaded = await rss_sample(pid)
        finally:
            release.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(3)
    after = await rss_sample(pid)
    return {
        "streams": streams,
        "idle_kb": idle,
        "loaded_kb": loaded,
        "after_kb": after,
        "per_stream_kb": (loaded - idle) / streams,
    }


SOAK_SAMPLE_SECONDS = 30.0


async def soak(target: Target, streams: int, minutes: float, log: Any) -> dict[str, Any]:
    """``streams`` workers streaming ``r50`` answers back to back for ``minutes``, each answer
    in a new chat (``POST /api/messages``, so no conversation grows without bound); the
    server's RSS every ``SOAK_SAMPLE_SECONDS``. Flat = the last minute's median within a few
    MB of the second minute's (the first is warm-up: pools, caches, the allocator's arenas)."""
    pid = target.pid
    assert pid is not None
    data = target.payload("r50")
    start = time.perf_counter()
    stop = start + minutes * 60
    completed, errors = 0, 0
    samples: list[tuple[float, int]] = []

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal completed, errors
        await asyncio.sleep(index * 4.0 / streams)  # one answer's length, staggered
        while time.perf_counter() < stop:
            result = await one(session, target.urls[0], data, target.headers)
            if result.ok:
                completed += 1
            else:
                errors += 1
                await asyncio.sleep(0.5)

    async def sampler() -> None:
        while time.perf_counter() < stop:
            samples.append((time.perf_counter() - start, rss_kb(pid)))
            log(f"  soak t={samples[-1][0]:.0f}s rss={samples[-1][1] / 1024:.1f} MB")
            await asyncio.sleep(SOAK_SAMPLE_SECONDS)

    async with client_session() as session:
        watching = asyncio.create_task(sampler())
        tasks = [asyncio.create_task(worker(i, session)) for i in range(streams)]
        _, pending = await asyncio.wait(tasks, timeout=minutes * 60 + 120)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        watching.cancel()
    samples.append((time.perf_counter() - start, rss_kb(pid)))

    def minute(at: float) -> float:
        values = [kb for t, kb in samples if at <= t < at + 60] or [samples[-1][1]]
        return statistics.median(values) / 1024

    second, last = minute(60), minute(max(60, minutes * 60 - 60))
    return {
        "streams": streams,
        "minutes": minutes,
        "answers": completed,
        "errors": errors + len(pending),
        "rss_mb": [(round(t), round(kb / 1024, 1)) for t, kb in samples],
        "second_minute_mb": round(second, 1),
        "last_minute_mb": round(last, 1),
        "growth_mb": round(last - second, 1),
    }


# -- main ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def servers(
    args: argparse.Namespace, workdir: Path, found: dict[str, str] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The upstream, the relay, the pipeline (embedded, or production on ``found``'s MariaDB
    database and Redis prefix) and LiteLLM when installed, each its own process."""
    ports = {name: free_port() for name in ("upstream", "relay", "pipeline")}
    litellm = litellm_command(args)
    if litellm:
        ports["litellm"] = free_port()
    upstream = f"http://127.0.0.1:{ports['upstream']}"
    python = sys.executable
    connection = {
        "name": "bench",
        "base_url": upstream + "/v1",
        "models": ["r0", "r50", "r10"],
        "max_output": 1024,
        "prices": {"input_per_million": 100, "output_per_million": 400},
    }
    if found is not None:
        from bench_lists import production_env

        env = production_env(found, ports["pipeline"], workdir / "data")
    else:
        env = embedded_env(workdir / "data", ports["pipeline"])
    env["MULTINOTES_PLUGINS__OPENAI_COMPATIBLE__CONNECTIONS"] = json.dumps([connection])
    env.pop("OPENAI_API_KEY", None)
    pipeline_cmd = [python, str(HERE / "pipeline_server.py")]
    if args.shared_ssl_context:
        pipeline_cmd.append("--shared-ssl-context")
    if args.sqlite_write_lock:
        pipeline_cmd.append("--sqlite-write-lock")
    if args.no_search_index:
        pipeline_cmd.append("--no-search-index")
    if getattr(args, "trace_memory", None):
        pipeline_cmd.append(f"--trace-memory={args.trace_memory}")
    pipeline_cmd += ["--", "serve"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            process(
                [python, str(HERE / "upstream.py"), "--port", str(ports["upstream"])],
                workdir / "upstream.log",
            )
        )
        relay_pid = stack.enter_context(
            process(
                [
                    python,
                    str(HERE / "relay.py"),
                    "--port",
                    str(ports["relay"]),
                    "--upstream",
                    upstream,
                ],
                workdir / "relay.log",
            )
        )
        pipeline_pid = stack.enter_context(process(pipeline_cmd, workdir / "pipeline.log", env))
        litellm_pid = None
        if litellm:
            config = workdir / "litellm.yaml"
            config.write_text(litellm_config(upstream))
            command = [litellm, "--config", str(config), "--host", "127.0.0.1"]
            command += ["--port", str(ports["litellm"]), "--num_workers", "1"]
            litellm_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
            litellm_env["LITELLM_LOG"] = "ERROR"
            litellm_pid = stack.enter_context(
                process(command, workdir / "litellm.log", litellm_env)
            )
        for port in ports.values():
            await wait_listening(port, 180)  # a busy machine starts them slowly
        yield {
            "litellm": f"http://127.0.0.1:{ports['litellm']}" if litellm else None,
            "litellm_pid": litellm_pid,
            "upstream": upstream,
            "relay": f"http://127.0.0.1:{ports['relay']}",
            "pipeline": f"http://127.0.0.1:{ports['pipeline']}",
            "relay_pid": relay_pid,
            "pipeline_pid": pipeline_pid,
        }


LITELLM_KEY = "sk-bench-master"


def litellm_command(args: argparse.Namespace) -> str | None:
    """The ``litellm`` proxy executable to run, or None (not installed, or ``--no-litellm``)."""
    if args.no_litellm:
        return None
    found = args.litellm or shutil.which("litellm")
    if args.litellm and not Path(args.litellm).exists():
        raise SystemExit(f"no litellm at {args.litellm}")
    return found


def litellm_config(upstream: str) -> str:
    """One worker's proxy config: the fake upstream's models, a master key, no database."""
    models = "".join(
        f"  - model_name: {name}\n"
        f"    litellm_params:\n"
        f"      model: openai/{name}\n"
        f"      api_base: {upstream}/v1\n"
        f"      api_key: bench\n"
        for name in ("r0", "r50", "r10")
    )
    return f"model_list:\n{models}general_settings:\n  master_key: {LITELLM_KEY}\n"


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"args": vars(args), "ttfb": [], "ramp": [], "memory": []}
    for run in range(args.repeats):
        if args.production:  # a fresh database and Redis prefix each run, like the data dir
            from bench_lists import services

            with services() as found:
                if found is None:
                    raise SystemExit("MariaDB and Redis are needed (see bench_lists.py)")
                asyncio.run(fresh_run(args, run, report, found))
        else:
            asyncio.run(fresh_run(args, run, report))
    return report


async def fresh_run(
    args: argparse.Namespace,
    run: int,
    report: dict[str, Any],
    found: dict[str, str] | None = None,
) -> None:
    # Fresh processes for every run: memory is measured first, before earlier load has
    # grown the heap (freed memory is reused and would hide the cost of new streams).
    workdir = Path(tempfile.mkdtemp(prefix="multinotes-bench-"))
    try:
        await one_run(args, workdir, run, report, found)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def one_run(
    args: argparse.Namespace,
    workdir: Path,
    run: int,
    report: dict[str, Any],
    found: dict[str, str] | None = None,
) -> None:
    async with servers(args, workdir, found) as srv:
        per_run = args.ttfb_requests + args.ttfb_warmup
        need = per_run + args.memory_streams + max(args.levels) + WARMUP
        log(f"run {run + 1}/{args.repeats}: setting up (user, key, credits, {need} conversations)")
        key, conversations = await setup_user(srv["pipeline"], need)
        bearer = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        json_header = {"Content-Type": "application/json"}
        direct_body = {
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        direct = Target(
            "direct", [srv["upstream"] + "/v1/chat/completions"], direct_body, json_header
        )
        relay = Target(
            "relay",
            [srv["relay"] + "/relay"],
            {"content": PROMPT},
            json_header,
            pid=srv["relay_pid"],
        )
        ids = iter(conversations)
        others = [relay]
        if srv["litellm"]:
            litellm_headers = {**json_header, "Authorization": f"Bearer {LITELLM_KEY}"}
            others.append(
                Target(
                    "litellm",
                    [srv["litellm"] + "/v1/chat/completions"],
                    direct_body,
                    litellm_headers,
                    pid=srv["litellm_pid"],
                )
            )

        def pipeline(count: int) -> Target:
            urls = [
                f"{srv['pipeline']}/api/conversations/{next(ids)}/messages" for _ in range(count)
            ]
            body = {"content": PROMPT}
            return Target("pipeline", urls, body, bearer, pipeline=True, pid=srv["pipeline_pid"])

        # Warm up both servers (imports, pools, caches) before anything is measured.
        await measure_ttfb([*others, pipeline(WARMUP)], WARMUP, 0)
        if "memory" in args.only:
            entry = {}
            for target in (*others, pipeline(args.memory_streams)):
                entry[target.name] = await measure_memory(target, args.memory_streams)
                log(f"  memory {target.name} {entry[target.name]}")
            report["memory"].append(entry)
        if "ttfb" in args.only:
            targets = [direct, *others, pipeline(per_run)]
            result = await measure_ttfb(targets, args.ttfb_requests, args.ttfb_warmup)
            log(f"  ttfb {json.dumps(result)}")
            report["ttfb"].append(result)
        if "ramp" in args.only:
            # One conversation per worker, reused: each worker's requests are chat turns.
            workers = pipeline(max(args.levels))
            entry = {}
            for target in (*others, workers):
                entry[target.name] = await ramp(
                    target, args.levels, args.stream_seconds, args.measure_seconds, log
                )
            report["ramp"].append(entry)
        if "soak" in args.only:
            target = Target(
                "pipeline",
                [srv["pipeline"] + "/api/messages"],
                {"content": PROMPT},
                bearer,
                pipeline=True,
                pid=srv["pipeline_pid"],
            )
            result = await soak(target, args.soak_streams, args.soak_minutes, log)
            log(f"  soak {json.dumps(result)}")
            report.setdefault("soak", []).append(result)


def summary(report: dict[str, Any]) -> str:
    lines = []
    for i, run in enumerate(report["ttfb"], 1):
        parts = [
            f"{name}: first {v['first_p50']:.2f}/{v['first_p95']:.2f} ms"
            f" (added {v['added_p50']:+.2f}/{v['added_p95']:+.2f})"
            for name, v in run.items()
        ]
        lines.append(f"ttfb #{i} (p50/p95): " + "; ".join(parts))
    for i, run in enumerate(report["ramp"], 1):
        parts = [f"{name}: {v['sustained']}" for name, v in run.items()]
        lines.append(f"ramp #{i} sustained streams: " + "; ".join(parts))
    for i, run in enumerate(report.get("soak", []), 1):
        lines.append(
            f"soak #{i}: {run['streams']} streams for {run['minutes']} min, {run['answers']}"
            f" answers, {run['errors']} errors; RSS {run['second_minute_mb']} MB in minute 2,"
            f" {run['last_minute_mb']} MB in the last ({run['growth_mb']:+.1f} MB)"
        )
    for i, run in enumerate(report["memory"], 1):
        parts = [f"{name}: {v['per_stream_kb']:.1f} KB/stream" for name, v in run.items()]
        lines.append(f"memory #{i}: " + "; ".join(parts))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Pipeline vs bare relay streaming benchmark.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ttfb-requests", type=int, default=300)
    parser.add_argument("--ttfb-warmup", type=int, default=30)
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[50, 100, 200, 400, 800]
    )
    parser.add_argument("--stream-seconds", type=float, default=4.0, help="200 chunks at 50/s")
    parser.add_argument("--measure-seconds", type=float, default=8.0)
    parser.add_argument("--memory-streams", type=int, default=200)
    parser.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=["ttfb", "ramp", "memory"],
        help="phases: ttfb, ramp, memory, soak (RSS over --soak-minutes of paced streams)",
    )
    parser.add_argument("--soak-streams", type=int, default=50)
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument(
        "--shared-ssl-context", action="store_true", help="pipeline with proposed TLS fix"
    )
    parser.add_argument(
        "--sqlite-write-lock", action="store_true", help="pipeline with proposed SQLite fix"
    )
    parser.add_argument(
        "--no-search-index",
        action="store_true",
        help="pipeline without the search indexing each finished answer queues (in-process)",
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="pipeline in production mode: a throwaway MariaDB database and Redis prefix per run"
        " (as bench_lists.py; no worker, so queued tasks wait in Redis)",
    )
    parser.add_argument("--litellm", help="the litellm executable (default: on PATH, if any)")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    parser.add_argument("--out", type=Path, help="write the full report here as JSON")
    args = parser.parse_args()
    report = run_all(args)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))
    print(summary(report))


if __name__ == "__main__":
    main()
