"""``multinotes serve`` with measuring probes, for ``profile_pipeline.py``.

The same app as ``multinotes serve`` (settings from ``MULTINOTES_*``), plus a few routes under
``/__probe/`` that measure the process from the inside, so the figures do not depend on how busy
the machine is: CPU time, a cProfile of whatever runs between ``profile/start`` and
``profile/stop``, SQL statements by kind, tracemalloc snapshots and their difference, and live
objects by type. Never used outside the benchmarks: the probes have no access control.

Run: ``python bench/probe_server.py`` (``profile_pipeline.py`` starts it).
"""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import time
import tracemalloc
from collections import Counter
from typing import Any

from aiohttp import web
from sqlalchemy import event

PROFILE: web.AppKey[dict[str, Any]] = web.AppKey("bench_probe_state")


def rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def add_probes(app: web.Application) -> None:
    from multinotes.keys import DB

    state: dict[str, Any] = {
        "sql": Counter(),
        "statements": [],
        "snapshots": {},
        "profiler": None,
        "types": {},
    }
    app[PROFILE] = state

    async def attach_sql_counter(app: web.Application) -> None:
        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            state["sql"][statement.split()[0].upper()] += 1
            if len(state["statements"]) < 200:  # one request's worth, not a growing list
                state["statements"].append(" ".join(statement.split())[:160])

        event.listen(app[DB].engine.sync_engine, "before_cursor_execute", count)
        try:  # statements sent at the driver (since the fifteenth round)
            from multinotes import driver_sql
        except ImportError:  # an older checkout, measured for "before"
            return
        driver_sql.listen(app[DB].engine.sync_engine.pool, lambda sql: count(None, None, sql))

    app.on_startup.append(attach_sql_counter)

    # SQLite only: every call aiosqlite hands to its connection thread is one round trip
    # between the event loop and that thread (cursor, execute, fetch, close, commit, ...).
    import aiosqlite

    original_execute = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        state["sql"]["thread round trips (SQLite)"] += 1
        return await original_execute(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]

    async def cpu(request: web.Request) -> web.Response:
        return web.json_response(
            {"process_time": time.process_time(), "rss_kb": rss_kb(), "tasks": _task_count()}
        )

    async def sql(request: web.Request) -> web.Response:
        counts, state["sql"] = state["sql"], Counter()
        statements, state["statements"] = state["statements"], []
        return web.json_response({"counts": dict(counts), "statements": statements})

    async def profile_start(request: web.Request) -> web.Response:
        profiler = cProfile.Profile()
        state["profiler"] = profiler
        profiler.enable()
        return web.json_response({"ok": True})

    async def profile_stop(request: web.Request) -> web.Response:
        profiler: cProfile.Profile = state["profiler"]
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        sort = request.query.get("sort", "cumulative")
        stats.sort_stats(sort).print_stats(int(request.query.get("limit", "60")))
        path = request.query.get("dump")
        if path:
            stats.dump_stats(path)
        return web.Response(text=out.getvalue())

    async def trace_start(request: web.Request) -> web.Response:
        tracemalloc.start(int(request.query.get("frames", "25")))
        return web.json_response({"ok": True})

    async def snapshot(request: web.Request) -> web.Response:
        gc.collect()
        name = request.query["name"]
        state["snapshots"][name] = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        state["types"][name] = Counter(type(o).__qualname__ for o in gc.get_objects())
        return web.json_response({"rss_kb": rss_kb(), "traced": tracemalloc.get_traced_memory()})

    async def compare(request: web.Request) -> web.Response:
        """The growth from snapshot ``a`` to ``b``, divided by ``per`` (streams)."""
        a, b = state["snapshots"][request.query["a"]], state["snapshots"][request.query["b"]]
        per = int(request.query.get("per", "1"))
        group = request.query.get("group", "lineno")
        limit = int(request.query.get("limit", "40"))
        diff = b.compare_to(a, group)
        total = sum(d.size_diff for d in diff)
        out = [f"total growth {total / per / 1024:.1f} KB per stream ({total} B / {per})"]
        for stat in diff[:limit]:
            if group == "traceback":
                out.append(f"{stat.size_diff / per:9.0f} B  {stat.count_diff / per:7.2f} blocks")
                out.extend(f"      {line}" for line in stat.traceback.format(limit=12))
            else:
                frame = stat.traceback[0]
                out.append(
                    f"{stat.size_diff / per:9.0f} B  {stat.count_diff / per:7.2f} blocks  "
                    f"{frame.filename}:{frame.lineno}"
                )
        types_a, types_b = state["types"][request.query["a"]], state["types"][request.query["b"]]
        grown = Counter({k: types_b[k] - types_a.get(k, 0) for k in types_b})
        out.append("live objects per stream (gc-tracked, by type):")
        out.extend(f"{n / per:8.2f}  {name}" for name, n in grown.most_common(40) if n > 0)
        return web.Response(text="\n".join(out))

    async def timings(request: web.Request) -> web.Response:
        """Wall time of the pre-upstream steps (see ``time_steps``), ms: p50, p90, count."""
        out = {}
        for name, values in STEPS.items():
            ordered = sorted(values)
            if ordered:
                out[name] = {
                    "p50": ordered[len(ordered) // 2] * 1000,
                    "p90": ordered[int(len(ordered) * 0.9)] * 1000,
                    "n": len(ordered),
                }
            values.clear()
        return web.json_response(out)

    async def live_broadcast(request: web.Request) -> web.Response:
        """One live event to each user named (``bench_live.py``), stamped with when it was
        sent, through the hub as every live source publishes: this process's connections get
        it from the bus, other processes' through Redis. As one event for all of them
        (``Hub.publish_many``, what an organisation-wide event uses), or with ``"each": true``
        one publish per user."""
        from multinotes.live import HUB

        body = await request.json()
        users = body["users"]
        hub = request.app[HUB]
        sent = time.time()  # the broadcast's start: the last user's wait counts the loop too
        cpu = time.thread_time()  # the event loop's own CPU time, which load does not inflate
        if body.get("each"):
            for user_id in users:
                await hub.publish(user_id, "bench.ping", {"sent": sent})
        else:
            await hub.publish_many(users, "bench.ping", {"sent": sent})
        # In embedded mode the bus delivers in the call: this is until every frame was written
        # to every socket of this process (what the clients then take to read it is theirs).
        done = time.time() - sent
        return web.json_response(
            {
                "published": len(users),
                "sent": sent,
                "seconds": done,
                "cpu_seconds": time.thread_time() - cpu,
            }
        )

    async def live_connections(request: web.Request) -> web.Response:
        from multinotes.live import HUB

        hub = request.app[HUB]
        return web.json_response(
            {
                "connections": hub.total(),
                "rss_kb": rss_kb(),
            }
        )

    app.router.add_post("/__probe/live/broadcast", live_broadcast)
    app.router.add_get("/__probe/live/connections", live_connections)

    async def timeline(request: web.Request) -> web.Response:
        rows, TIMELINE[:] = list(TIMELINE), []
        return web.json_response(rows)

    app.router.add_get("/__probe/timeline", timeline)
    app.router.add_get("/__probe/timings", timings)
    app.router.add_get("/__probe/cpu", cpu)
    app.router.add_get("/__probe/sql", sql)
    app.router.add_get("/__probe/profile/start", profile_start)
    app.router.add_get("/__probe/profile/stop", profile_stop)
    app.router.add_get("/__probe/trace/start", trace_start)
    app.router.add_get("/__probe/trace/snapshot", snapshot)
    app.router.add_get("/__probe/trace/compare", compare)


STEPS: dict[str, list[float]] = {}
#: Per request (``POST .../messages``), ``time.perf_counter()`` (CLOCK_MONOTONIC, the client's
#: clock too) at each mark up to the first token: see ``time_first_token``.
TIMELINE: list[dict[str, float]] = []


def time_steps() -> None:
    """Wrap the steps before the upstream call to record their wall time."""
    import functools

    from multinotes.api import conversations
    from multinotes.chat import pipeline
    from multinotes.identity import service as identity
    from multinotes.wallet import service as wallet

    def timed(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                STEPS.setdefault(label, []).append(time.perf_counter() - started)

        setattr(owner, name, wrapper)

    timed(identity, "actor_from_api_key", "auth (API key lookup)")
    timed(conversations, "plan_generations", "plan (conversation + history read, hold + store)")
    timed(pipeline, "_store_plan", "hold + store transaction")
    timed(pipeline, "finish_generation", "settle + store answer")
    timed(wallet, "settle_in", "settle (inside that transaction)")


def time_first_token() -> None:
    """Marks on the way to the first token, per generation request: middlewares entered,
    ``plan_generations`` entered (middlewares and the handler's parsing done), hold committed,
    plan returned, provider stream opened, its first chunk, the rows beside the call stored.
    Tasks started by the request inherit its context, so they write to its row."""
    import contextvars
    import functools

    from multinotes import openai_wire
    from multinotes.api import conversations
    from multinotes.chat import pipeline
    from multinotes.http import middleware

    row: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
        "bench_timeline", default=None
    )

    def mark(name: str) -> None:
        current = row.get()
        if current is not None and name not in current:
            current[name] = time.perf_counter()

    original_context = middleware.request_context

    @web.middleware
    async def request_context(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/messages"):
            current = {"middlewares": time.perf_counter()}
            TIMELINE.append(current)
            row.set(current)
        return await original_context(request, handler)

    middleware.request_context = request_context  # type: ignore[assignment]

    def around(owner: Any, name: str, start: str | None, end: str | None) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if start:
                mark(start)
            try:
                return await original(*args, **kwargs)
            finally:
                if end:
                    mark(end)

        setattr(owner, name, wrapper)

    around(conversations, "plan_generations", "handler", "plan returned")
    around(pipeline, "_hold", "hold starts", "hold committed")
    around(pipeline, "_store_or_release", None, "rows stored")
    original_stream = openai_wire.stream_chat_http

    @functools.wraps(original_stream)
    async def stream(*args: Any, **kwargs: Any) -> Any:
        mark("provider called")
        async for item in original_stream(*args, **kwargs):
            mark("provider first chunk")
            yield item

    openai_wire.stream_chat_http = stream  # type: ignore[assignment]


def _task_count() -> int:
    import asyncio

    return len(asyncio.all_tasks())


def main() -> None:
    from multinotes.app import create_app
    from multinotes.settings import Settings

    if os.environ.get("BENCH_NO_SEARCH_INDEX"):
        # Semantic search indexes every finished answer in a background task, which runs in the
        # web process in embedded mode: off, to measure the streaming pipeline alone.
        # index_owner (on GenerationFinished) queues it, no longer the pipeline.
        from multinotes.search import tasks as pipeline

        async def no_index(app: web.Application, user_id: str) -> None:
            return None

        pipeline.queue_embedding = no_index  # type: ignore[assignment]

    time_steps()
    time_first_token()
    settings = Settings()
    # BENCH_NO_PLUGINS: no plugin at all (the process's base memory without their SDKs).
    app = create_app(settings, plugins=[] if os.environ.get("BENCH_NO_PLUGINS") else None)
    add_probes(app)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
