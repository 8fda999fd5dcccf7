"""In-process costs of the generation pipeline, on SQLite and (when reachable) MariaDB + Redis.

1. ``plan_generations`` + ``finish_generation`` (reserve, store prompt and pending answer,
   settle, store the answer) called directly, many times, with a scripted model: wall time and
   process CPU time per request, and the SQL statements each request runs. The conversation is
   created outside the timed part; markdown rendering (the ``done`` event) is not included
   (``finish_generation`` gets no event sink).
2. Whole requests over HTTP (``POST /api/conversations/{id}/messages``, API key, rate limits on)
   with a scripted model streaming 20 and then 200 chunks: SQL statements and Redis commands
   per request must not grow with the chunks.

MariaDB: ``root@127.0.0.1:3306`` (``MULTINOTES_TEST_MYSQL`` overrides), a throwaway database
created and dropped here; Redis: ``MULTINOTES_TEST_REDIS`` (default db 15), keys under a prefix
of this run, deleted at the end.

Run: ``python bench/bench_service.py [--iterations 500] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

from multinotes import hookimpl
from multinotes.app import create_app
from multinotes.chat import service as chat
from multinotes.chat.pipeline import Outcome, finish_generation, plan_generations
from multinotes.keys import DB
from multinotes.providers import Chunk, GenerationRequest, Model, Pricing, Provider
from multinotes.testing import ApiClient, app_client, embedded_settings

MODEL = "benchscript/model"
PROMPT = "Write two hundred words about benchmarks."
ANSWER_TOKENS = 200
ANSWER = "".join(f"tok{i} " for i in range(ANSWER_TOKENS))
MYSQL = os.environ.get("MULTINOTES_TEST_MYSQL", "root@127.0.0.1:3306")
REDIS = os.environ.get("MULTINOTES_TEST_REDIS", "redis://127.0.0.1:6379/15")


class ScriptedModel(Model):
    model_id = MODEL
    name = "Bench scripted model"
    context_window = 8192
    max_output = 1024
    pricing = Pricing(input_per_million=100, output_per_million=400)

    def __init__(self) -> None:
        self.chunks = 20

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        request.usage.input_tokens = 12
        for i in range(self.chunks):
            request.usage.output_tokens += 1
            yield f"tok{i} "
            await asyncio.sleep(0)  # let the SSE writer run, as a network read would


class ScriptedProvider(Provider):
    provider_id = "benchscript"
    name = "Bench script"
    key_field = None

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model

    async def list_models(self, config: Any) -> list[Model]:
        return [self.model]


class ScriptedPlugin:
    def __init__(self, model: ScriptedModel) -> None:
        self.provider = ScriptedProvider(model)

    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(self.provider)


# -- counting -----------------------------------------------------------------------------------


class Statements:
    """SQL statements the engine sends, by first keyword, and the other round trips a session
    makes to the server: ``(ping)`` (``pool_pre_ping``), ``(commit)`` and ``(rollback)`` (an
    explicit one or the pool's reset when a connection goes back). Wrapped on this engine's
    dialect instance, so nothing else is affected."""

    TRIPS = ("do_ping", "do_commit", "do_rollback")

    def __init__(self, db: Any) -> None:
        # The read pool (MariaDB) is an engine of its own: count both.
        # On SQLite the read engine is a view of the main one (same pool, same dialect, and
        # the main engine's listeners hear it): count each pool once.
        engines: dict[int, Any] = {}
        for engine in (db.engine, getattr(db, "read_engine", db.engine)):
            engines.setdefault(id(engine.sync_engine.pool), engine.sync_engine)
        self.engines = list(engines.values())
        self.counts: Counter[str] = Counter()

    def __enter__(self) -> Statements:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._count)
            dialect = engine.dialect
            for name in self.TRIPS:
                setattr(dialect, name, self._counted(name, getattr(dialect, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._count)
            for name in self.TRIPS:
                vars(engine.dialect).pop(name, None)

    def _counted(self, name: str, method: Any) -> Any:
        label = f"({name.removeprefix('do_')})"

        dialect = getattr(method, "__self__", None)

        def counted(dbapi_connection: Any, *args: Any, **kwargs: Any) -> Any:
            skipped = (  # an autocommit connection's rollback is not sent (read pool)
                name == "do_rollback"
                and dialect is not None
                and dialect.skip_autocommit_rollback
                and dialect.detect_autocommit_setting(dbapi_connection)
            )
            if not skipped:
                self.counts[label] += 1
            return method(dbapi_connection, *args, **kwargs)

        return counted

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.counts[statement.split()[0].upper()] += 1

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


def statements_only(counts: Counter[str]) -> int:
    return sum(v for k, v in counts.items() if not k.startswith("("))


class RedisCommands:
    """Redis commands sent by this process (rate limits, bus, sessions), by name."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._undo: list[Any] = []

    def __enter__(self) -> RedisCommands:
        from redis.asyncio.client import Pipeline, Redis

        counts = self.counts
        execute_command = Redis.execute_command
        pipeline_execute = Pipeline.execute

        async def counted(self: Any, *args: Any, **options: Any) -> Any:
            counts[str(args[0]).upper()] += 1
            return await execute_command(self, *args, **options)

        async def counted_pipeline(self: Any, *args: Any, **kwargs: Any) -> Any:
            for command in self.command_stack:
                counts[str(command[0][0]).upper()] += 1
            return await pipeline_execute(self, *args, **kwargs)

        Redis.execute_command = counted  # type: ignore[method-assign]
        Pipeline.execute = counted_pipeline  # type: ignore[method-assign]
        self._undo = [(Redis, "execute_command", execute_command)]
        self._undo.append((Pipeline, "execute", pipeline_execute))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in self._undo:
            setattr(owner, name, value)

    def take(self) -> Counter[str]:
        counts = Counter(self.counts)
        self.counts.clear()
        return counts


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
REDIS_WRITES = ("SET", "SETEX", "INCR", "INCRBY", "EXPIRE", "ZADD", "LPUSH", "RPUSH", "XADD")
REDIS_WRITES += ("PUBLISH", "HSET", "DEL", "EVALSHA", "EVAL")


# -- databases ----------------------------------------------------------------------------------


@contextlib.contextmanager
def mariadb() -> Any:
    """A throwaway, migrated MariaDB database and a Redis prefix, or None when unreachable."""
    try:
        import pymysql
        import redis
    except ImportError:
        yield None
        return
    userinfo, _, hostport = MYSQL.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, _, port = hostport.partition(":")
    parts = {"user": user or "root", "password": password, "host": host, "port": int(port or 3306)}
    try:
        conn = pymysql.connect(**parts, autocommit=True, connect_timeout=2)
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
        print(f"MariaDB/Redis not reachable ({problem}); skipped", file=sys.stderr)
        yield None
        return
    name = f"multinotes_bench_{os.getpid()}{secrets.token_hex(2)}"
    prefix = f"mnbench{secrets.token_hex(3)}:"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    auth = parts["user"] + (f":{parts['password']}" if parts["password"] else "")
    url = f"mysql+aiomysql://{auth}@{parts['host']}:{parts['port']}/{name}?charset=utf8mb4"
    try:
        yield {"database_url": url, "redis_url": REDIS, "redis_prefix": prefix}
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


async def migrate(url: str) -> None:
    from multinotes.db import create_engine
    from multinotes.migrations import upgrade

    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


@contextlib.asynccontextmanager
async def bench_app(data_dir: Path, services: dict[str, str] | None) -> AsyncIterator[Any]:
    model = ScriptedModel()
    values: dict[str, Any] = {
        "rate_limit_generation": "1000000/minute",
        "rate_limit_api": "1000000/minute",
        "rate_limits_enabled": True,
    }
    if services:
        await migrate(services["database_url"])
        values.update(
            mode="production",
            allowed_hosts=["127.0.0.1", "localhost"],
            cookie_secure=False,
            **services,
        )
    settings = embedded_settings(data_dir, **values)
    app = create_app(settings, plugins=[("benchscript", ScriptedPlugin(model))])
    async with app_client(app) as api:
        user = await api.register_admin()
        await api.mark_verified()
        grant = {"amount": 10**12, "reason": "benchmark"}
        response = await api.post(f"/api/admin/users/{user['id']}/credits", grant)
        assert response.status in (200, 201), await response.text()
        response = await api.post("/api/keys", {"name": "bench"})
        api.use_key((await response.json())["key"])
        yield api, user["id"], model


# -- measurements -------------------------------------------------------------------------------


async def service_cost(api: ApiClient, user_id: str, iterations: int) -> dict[str, Any]:
    app = api.app
    db = app[DB]

    async def once() -> tuple[float, float]:
        conversation = await chat.create_conversation(db, user_id, None)
        wall, cpu = time.perf_counter(), time.process_time()
        _, planned = await plan_generations(
            app,
            user_id=user_id,
            conversation_id=conversation.id,
            content=PROMPT,
            model_ids=[MODEL],
            options={},
            parent_id=None,
            attachments=[],
        )
        item = planned[0]
        item.usage.input_tokens = 12
        item.usage.output_tokens = ANSWER_TOKENS
        outcome = Outcome("complete", None, ANSWER, [], 120.0, 4000.0)
        await finish_generation(app, item, outcome, None)
        return time.perf_counter() - wall, time.process_time() - cpu

    for _ in range(max(20, iterations // 10)):  # warm caches, pools, statement cache
        await once()
    with Statements(db) as statements:
        await once()
        per_request = statements.take()
    walls, cpus = [], []
    for _ in range(iterations):
        wall, cpu = await once()
        walls.append(wall)
        cpus.append(cpu)
    return {
        "iterations": iterations,
        "wall_us_p50": statistics.median(walls) * 1e6,
        "wall_us_mean": statistics.fmean(walls) * 1e6,
        "cpu_us_mean": statistics.fmean(cpus) * 1e6,
        "sql_statements": dict(per_request),
        "sql_writes": sum(v for k, v in per_request.items() if k in WRITES),
        "sql_round_trips": sum(per_request.values()),
    }


async def writes_per_chunk(api: ApiClient, model: ScriptedModel, redis: bool) -> dict[str, Any]:
    """Statements and Redis commands of whole HTTP requests streaming 20 and 200 chunks."""
    db = api.app[DB]
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        statements = stack.enter_context(Statements(db))
        commands = stack.enter_context(RedisCommands()) if redis else None
        # Three of each; the row kept is the one with the fewest round trips: background work
        # of the same process (sweeps, the in-memory task queue) can fall inside a request.
        for chunks in (20, 200) * 3:
            model.chunks = chunks
            conversation = (await (await api.post("/api/conversations", {})).json())["id"]
            statements.take()
            if commands:
                commands.take()
            response = await api.post(
                f"/api/conversations/{conversation}/messages",
                {"content": PROMPT, "models": [MODEL]},
            )
            text = await response.text()
            assert response.status == 200 and text.count("event: delta") == chunks, text[-300:]
            await asyncio.sleep(0.05)  # generation.completed and friends run after the stream
            sql = statements.take()
            row: dict[str, Any] = {
                "sql_statements": statements_only(sql),
                "sql_writes": sum(v for k, v in sql.items() if k in WRITES),
                "sql_round_trips": sum(sql.values()),
                "sql_by_kind": dict(sql),
            }
            if commands:
                sent = commands.take()
                row["redis_commands"] = sum(sent.values())
                row["redis_writes"] = sum(v for k, v in sent.items() if k in REDIS_WRITES)
                row["redis_by_command"] = dict(sent)
            name = f"{chunks} chunks"
            if name not in out or row["sql_round_trips"] < out[name]["sql_round_trips"]:
                out[name] = row
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="multinotes-bench-") as tmp:
        async with bench_app(Path(tmp), None) as (api, user_id, model):
            report["sqlite"] = {
                "service": [
                    await service_cost(api, user_id, args.iterations) for _ in range(args.repeats)
                ],
                "per_chunk": await writes_per_chunk(api, model, redis=False),
            }
    if not args.sqlite_only:
        with mariadb() as services:
            if services is not None:
                with tempfile.TemporaryDirectory(prefix="multinotes-bench-") as tmp:
                    async with bench_app(Path(tmp), services) as (api, user_id, model):
                        report["mariadb"] = {
                            "service": [
                                await service_cost(api, user_id, args.iterations)
                                for _ in range(args.repeats)
                            ],
                            "per_chunk": await writes_per_chunk(api, model, redis=True),
                        }
    return report


def summary(report: dict[str, Any]) -> str:
    lines = []
    for backend, data in report.items():
        runs = data["service"]
        walls = [r["wall_us_p50"] for r in runs]
        cpus = [r["cpu_us_mean"] for r in runs]
        lines.append(
            f"{backend}: plan+finish wall p50 best {min(walls):.0f} us (runs: "
            + ", ".join(f"{w:.0f}" for w in walls)
            + f"); process CPU mean best {min(cpus):.0f} us (runs: "
            + ", ".join(f"{c:.0f}" for c in cpus)
            + f"); {runs[0]['sql_writes']} SQL writes, statements {runs[0]['sql_statements']}"
        )
        for name, row in data["per_chunk"].items():
            lines.append(f"  full request, {name}: {row}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Reserve + settle + persist cost per request.")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument(
        "--no-search-index",
        action="store_true",
        help="skip the semantic-search indexing each finished answer queues (it runs in this "
        "process with the in-memory task broker)",
    )
    args = parser.parse_args()
    if args.no_search_index:
        # index_owner (on GenerationFinished) queues it, no longer the pipeline.
        from multinotes.search import tasks as pipeline

        async def no_index(app: Any, user_id: str) -> None:
            return None

        pipeline.queue_embedding = no_index  # type: ignore[assignment]
    print(summary(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
