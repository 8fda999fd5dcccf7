"""The analytics dashboards with a million messages (issue #19 item 8): how long the rollup
takes and how long each dashboard answers. Budget: every dashboard under 1 s.

In-process: a real app (``create_app``, embedded SQLite in a temporary data dir, or with
``--production`` a throwaway MariaDB database and Redis keys under a run prefix, both removed at
the end) served on loopback by aiohttp's test server; the admin is the first account. Seeding
goes straight to the database through a synchronous SQLAlchemy engine (multi-row inserts), in
the shapes the app writes:

* ``--users`` people signed up over ``--days`` days (80% verified), each conversation 20
  messages, ``--messages`` messages in all: half prompts, half answers, each answer with its
  generation (6 models over 3 providers, tokens, charge and provider cost), spread over the days;
* a note for every fourth user, a paid order for every tenth (two plans), a file for every
  fifth.

Then: the first rollup (every day since the first sign-up), a second one (the days since the
last: what the hourly task does), and ``--repeats`` requests of each dashboard endpoint
(``/api/admin/analytics/...``, the last 30 days and the whole range) and of the console page
``/admin/analytics``, sequentially, as the admin. Reported: p50 / p95 / max per endpoint.

Run: ``python bench/bench_analytics.py [--messages 1000000] [--production]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert

from multinotes.analytics import rollup
from multinotes.app import create_app
from multinotes.billing.models import Order, Plan
from multinotes.chat.models import Conversation, Generation, Message
from multinotes.files.models import File
from multinotes.keys import DB
from multinotes.models import User
from multinotes.notes.models import Document
from multinotes.testing import app_client, embedded_settings

MODELS = [
    ("openai/gpt-4o", "openai", 250, 1000, 0.8),
    ("openai/gpt-4o-mini", "openai", 15, 60, 0.6),
    ("anthropic/claude-sonnet", "anthropic", 300, 1500, 0.75),
    ("anthropic/claude-haiku", "anthropic", 80, 400, 0.7),
    ("gemini/gemini-2.0-flash", "gemini", 10, 40, 0.5),
    ("gemini/gemini-1.5-pro", "gemini", 125, 500, 0.8),
]
BATCH = 5000
MYSQL = os.environ.get("MULTINOTES_TEST_MYSQL", "root@127.0.0.1:3306")
REDIS = os.environ.get("MULTINOTES_TEST_REDIS", "redis://127.0.0.1:6379/15")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def hexid(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def seed(url: str, args: argparse.Namespace) -> dict[str, int]:
    """Bulk inserts; returns the row counts."""
    rng = random.Random(19)
    engine = create_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=args.days)
    users = []
    for n in range(args.users):
        joined = start + timedelta(seconds=rng.randrange(args.days * 86400))
        users.append(
            {
                "id": hexid(rng),
                "email": f"bench{n}@example.com",
                "name": f"Bench {n}",
                "created_at": joined,
                "email_verified_at": joined + timedelta(minutes=5) if rng.random() < 0.8 else None,
            }
        )
    plans = [
        {
            "id": hexid(rng),
            "name": "Starter",
            "kind": "credits",
            "credits": 500_000,
            "price": 500,
            "currency": "EUR",
        },
        {
            "id": hexid(rng),
            "name": "Pro",
            "kind": "credits",
            "credits": 2_500_000,
            "price": 2000,
            "currency": "EUR",
        },
    ]
    counts: dict[str, int] = {}

    def put(conn: Any, model: Any, rows: list[dict[str, Any]]) -> None:
        for i in range(0, len(rows), BATCH):
            conn.execute(insert(model), rows[i : i + BATCH])
        counts[model.__tablename__] = counts.get(model.__tablename__, 0) + len(rows)

    with engine.begin() as conn:
        put(conn, User, users)
        put(conn, Plan, plans)
        put(
            conn,
            Order,
            [
                {
                    "user_id": u["id"],
                    "plan_id": plans[i % 2]["id"],
                    "backend": "manual",
                    "status": "paid",
                    "subtotal": plans[i % 2]["price"],
                    "total": plans[i % 2]["price"],
                    "currency": "EUR",
                    "credits": plans[i % 2]["credits"],
                    "expires_at": u["created_at"] + timedelta(days=1),
                    "paid_at": u["created_at"] + timedelta(days=1),
                    "created_at": u["created_at"] + timedelta(days=1),
                }
                for i, u in enumerate(users[::10])
            ],
        )
        put(
            conn,
            Document,
            [
                {
                    "user_id": u["id"],
                    "title": "Saved",
                    "content": "x",
                    "created_at": u["created_at"] + timedelta(hours=2),
                    "updated_at": u["created_at"] + timedelta(hours=2),
                }
                for u in users[::4]
            ],
        )
        put(
            conn,
            File,
            [
                {
                    "user_id": u["id"],
                    "name": "f.pdf",
                    "content_type": "application/pdf",
                    "kind": "pdf",
                    "size": rng.randrange(10_000, 5_000_000),
                    "sha256": "0" * 64,
                    "storage_key": hexid(rng),
                    "created_at": u["created_at"] + timedelta(hours=3),
                }
                for u in users[::5]
            ],
        )
    per_conversation = 20
    conversations = args.messages // per_conversation
    done = 0
    started = time.perf_counter()
    while done < conversations:
        chunk = min(2500, conversations - done)
        convs, messages, generations = [], [], []
        for _ in range(chunk):
            user = users[rng.randrange(len(users))]
            span = max(1.0, (now - user["created_at"]).total_seconds())
            at = user["created_at"] + timedelta(seconds=rng.random() * span)
            conv = hexid(rng)
            convs.append(
                {
                    "id": conv,
                    "user_id": user["id"],
                    "title": "Bench",
                    "created_at": at,
                    "updated_at": at,
                }
            )
            for turn in range(per_conversation // 2):
                when = at + timedelta(minutes=turn)
                prompt, answer = hexid(rng), hexid(rng)
                model, provider, price_in, price_out, share = MODELS[rng.randrange(len(MODELS))]
                tokens_in, tokens_out = rng.randrange(50, 2000), rng.randrange(50, 1500)
                cost = (tokens_in * price_in + tokens_out * price_out) // 1000 + 1
                messages.append(
                    {
                        "id": prompt,
                        "conversation_id": conv,
                        "user_id": user["id"],
                        "role": "user",
                        "content": "How do I benchmark this?",
                        "created_at": when,
                    }
                )
                messages.append(
                    {
                        "id": answer,
                        "conversation_id": conv,
                        "user_id": user["id"],
                        "parent_id": prompt,
                        "role": "assistant",
                        "content": "Measure it.",
                        "model_id": model,
                        "created_at": when,
                    }
                )
                generations.append(
                    {
                        "user_id": user["id"],
                        "conversation_id": conv,
                        "message_id": answer,
                        "model_id": model,
                        "provider_id": provider,
                        "status": "complete",
                        "input_tokens": tokens_in,
                        "output_tokens": tokens_out,
                        "cost": cost,
                        "provider_cost": int(cost * share),
                        "created_at": when,
                        "finished_at": when,
                    }
                )
        with engine.begin() as conn:
            put(conn, Conversation, convs)
            put(conn, Message, messages)
            put(conn, Generation, generations)
        done += chunk
        if done % 10000 < chunk:
            rate = counts["messages"] / (time.perf_counter() - started)
            log(f"seeded {counts['messages']:,} messages ({rate:,.0f}/s)")
    engine.dispose()
    return counts


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    overrides: dict[str, Any] = {"log_level": "WARNING"}
    mysql_name = None
    if args.production:
        import pymysql

        from multinotes.db import create_engine as create_async_engine
        from multinotes.migrations import upgrade

        userinfo, _, hostport = MYSQL.rpartition("@")
        user, _, password = userinfo.partition(":")
        host, _, port = hostport.partition(":")
        mysql_name = f"multinotes_bench_{secrets.token_hex(4)}"
        conn = pymysql.connect(
            user=user or "root",
            password=password,
            host=host,
            port=int(port or 3306),
            autocommit=True,
        )
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{mysql_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        auth = (user or "root") + (f":{password}" if password else "")
        url = f"mysql+aiomysql://{auth}@{host}:{port or 3306}/{mysql_name}?charset=utf8mb4"
        engine = create_async_engine(url)
        await upgrade(engine)
        await engine.dispose()
        overrides.update(
            mode="production",
            database_url=url,
            redis_url=REDIS,
            redis_prefix=f"mnbench{secrets.token_hex(3)}:",
            allowed_hosts=["127.0.0.1", "localhost"],
            cookie_secure=False,
        )
        sync_url = url.replace("mysql+aiomysql", "mysql+pymysql")
    else:
        sync_url = f"sqlite:///{work / 'multinotes.db'}"
    settings = embedded_settings(work, **overrides)
    report: dict[str, Any] = {
        "mode": "production" if args.production else "embedded",
        "messages": args.messages,
        "users": args.users,
        "days": args.days,
    }
    try:
        app = create_app(settings)
        async with app_client(app) as admin:
            await admin.register_admin("bench-admin@example.com")
            log("seeding")
            started = time.perf_counter()
            report["rows"] = await asyncio.to_thread(seed, sync_url, args)
            report["seed_seconds"] = round(time.perf_counter() - started, 1)
            log(f"seeded {report['rows']} in {report['seed_seconds']} s")
            # Wall time and this process's CPU time (the SQLite engine runs in it too, in
            # embedded mode: the load-insensitive figure there).
            started, cpu = time.perf_counter(), time.process_time()
            first = await rollup.run(app[DB])
            report["rollup_first_seconds"] = round(time.perf_counter() - started, 2)
            report["rollup_first_cpu_seconds"] = round(time.process_time() - cpu, 2)
            report["rollup_first_days"] = first.days
            started, cpu = time.perf_counter(), time.process_time()
            second = await rollup.run(app[DB])
            report["rollup_hourly_seconds"] = round(time.perf_counter() - started, 2)
            report["rollup_hourly_cpu_seconds"] = round(time.process_time() - cpu, 2)
            report["rollup_hourly_days"] = second.days
            log(
                f"rollups: first {report['rollup_first_seconds']} s ({first.days} days), "
                f"hourly {report['rollup_hourly_seconds']} s "
                f"(CPU {report['rollup_hourly_cpu_seconds']} s)"
            )
            today = datetime.now(UTC).date()
            whole = f"from={(today - timedelta(days=args.days)).isoformat()}&to={today.isoformat()}"
            targets = [
                f"/api/admin/analytics/{name}{q}"
                for q in ("", f"?{whole}")
                for name in ("active", "funnel", "retention", "usage", "margin", "storage")
            ] + ["/admin/analytics", f"/admin/analytics?{whole}"]
            timings: dict[str, dict[str, float]] = {}
            for path in targets:
                samples = []
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    response = await admin.get(path)
                    await response.read()
                    samples.append((time.perf_counter() - began) * 1000)
                    assert response.status == 200, (path, response.status)
                timings[path] = {
                    "p50_ms": round(statistics.median(samples), 1),
                    "p95_ms": round(pct(samples, 0.95), 1),
                    "max_ms": round(max(samples), 1),
                }
                log(f"{path}: {timings[path]}")
            report["endpoints"] = timings
            report["worst_ms"] = max(t["max_ms"] for t in timings.values())
            report["within_budget"] = report["worst_ms"] < 1000
    finally:
        if mysql_name:
            import pymysql

            conn = pymysql.connect(
                user=user or "root",
                password=password,
                host=host,
                port=int(port or 3306),
                autocommit=True,
            )
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{mysql_name}`")
            conn.close()
            import redis

            client = redis.Redis.from_url(REDIS)
            for key in client.scan_iter(overrides["redis_prefix"] + "*"):
                client.delete(key)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--production", action="store_true", help="MariaDB + Redis instead of SQLite"
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmp:
        report = asyncio.run(run(args, Path(tmp)))
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
