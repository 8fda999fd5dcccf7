"""Full-text search latency over 100,000 notes of one user, on SQLite (FTS5) and MariaDB (InnoDB
FULLTEXT): p50 and p95 of a fixed set of queries, through the service layer
(``multinotes.search.service.search``, mode ``text``) and through HTTP
(``GET /api/search?mode=text``, session cookie, rate limits off).

The notes are bulk-inserted (``INSERT`` of 5,000 rows at a time; on SQLite the FTS5 triggers
index them as they go, on MariaDB InnoDB does): generated, reproducible text in twelve topics
(a title of a few topic words, 40 to 400 words of sentences mixing topic words, words shared by
all topics and common English), so words range from very common (in a third of the notes) to
rare (a few dozen notes).

MariaDB: ``root@127.0.0.1:3306`` (``MULTINOTES_TEST_MYSQL`` overrides) in a scratch database
created here and dropped at the end; Redis (production mode needs it for the HTTP part):
``MULTINOTES_TEST_REDIS`` (default db 15), keys under a prefix of this run, deleted at the end.

Run: ``python bench/bench_search.py [--notes 100000] [--repeats 5] [--only sqlite|mariadb]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import insert

from multinotes.app import create_app
from multinotes.db import new_id, utcnow
from multinotes.keys import DB
from multinotes.notes.models import Document
from multinotes.search.service import SearchRequest, search
from multinotes.testing import app_client, embedded_settings

MYSQL = os.environ.get("MULTINOTES_TEST_MYSQL", "root@127.0.0.1:3306")
REDIS = os.environ.get("MULTINOTES_TEST_REDIS", "redis://127.0.0.1:6379/15")
BATCH = 5000

TOPICS = {
    "cooking": "sourdough starter flour yeast oven bake loaf dough knead recipe butter garlic "
    "onion simmer roast sauce pasta tomato basil oregano skillet broth",
    "programming": "python function compiler database index query cache latency thread async "
    "deploy kubernetes container docker refactor debugger exception parser",
    "travel": "itinerary flight airport hotel museum train ticket passport luggage beach "
    "mountain hostel ferry visa currency guidebook sightseeing",
    "finance": "budget invoice revenue expense forecast quarterly dividend portfolio mortgage "
    "interest inflation ledger audit payroll spreadsheet",
    "gardening": "compost seedling tomato pruning mulch orchard greenhouse soil fertiliser "
    "perennial harvest irrigation weeds raspberry lavender",
    "health": "exercise sleep protein hydration stretching cardio posture vitamin meditation "
    "physiotherapy appointment symptoms dosage allergy",
    "music": "guitar chord melody rhythm tempo rehearsal concert piano scale harmony vinyl "
    "playlist drummer lyrics soundtrack",
    "research": "hypothesis experiment dataset regression variance citation abstract "
    "methodology sample significance peer review journal",
    "ml": "embedding transformer gradient tokenizer inference benchmark finetune dataset "
    "attention prompt latent checkpoint quantization",
    "home": "plumbing renovation paint kitchen insulation boiler furniture carpet ladder "
    "drill warranty landlord mortgage",
    "writing": "chapter draft manuscript editor outline character dialogue narrative publisher "
    "deadline paragraph metaphor",
    "meetings": "agenda minutes stakeholder roadmap milestone retrospective standup deadline "
    "decision owner blocker followup",
}
SHARED = [
    "project",
    "plan",
    "idea",
    "summary",
    "notes",
    "list",
    "question",
    "answer",
    "example",
    "detail",
    "update",
    "review",
    "version",
    "team",
    "customer",
    "problem",
    "solution",
    "result",
    "report",
    "week",
    "morning",
    "evening",
]
COMMON = [
    "the",
    "a",
    "and",
    "of",
    "to",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "this",
    "was",
    "be",
    "by",
    "are",
    "from",
    "or",
    "an",
    "at",
    "not",
    "but",
    "have",
    "we",
    "can",
    "will",
    "more",
    "some",
    "about",
    "when",
    "which",
    "their",
    "also",
    "very",
    "just",
    "into",
    "than",
    "then",
]

QUERIES = [
    # one common topic word (thousands of matches), one rare word, shared words
    "sourdough",
    "kubernetes",
    "quarterly",
    "orchard",
    "melody",
    "tokenizer",
    "plan",
    "summary",
    "report",
    # two or three words
    "sourdough oven",
    "database index query",
    "flight hotel",
    "budget forecast quarterly",
    "compost tomato",
    "guitar chord",
    "hypothesis dataset",
    "team roadmap",
    "project deadline",
    # phrases, prefixes, exclusions
    '"sourdough starter"',
    '"database index"',
    "quarter*",
    "deploy*",
    "bake -sourdough",
    "meeting* agenda",
    # words in no note, short and stop words
    "xylophone",
    "the plan",
    "ai",
]


def generate_notes(count: int, seed: int = 20261126) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    topics = {name: words.split() for name, words in TOPICS.items()}
    names = list(topics)
    notes = []
    for _ in range(count):
        topic = topics[rng.choice(names)]
        # Zipf-like: the first words of a topic are the most frequent.
        weights = [1 / (i + 1) for i in range(len(topic))]
        title = " ".join(rng.choices(topic, weights, k=rng.randint(2, 4))).capitalize()
        length = rng.randint(40, 400)
        words = []
        for _ in range(length):
            roll = rng.random()
            if roll < 0.25:
                words.append(rng.choices(topic, weights)[0])
            elif roll < 0.35:
                words.append(rng.choice(SHARED))
            else:
                words.append(rng.choice(COMMON))
        sentences = []
        for start in range(0, len(words), 12):
            sentence = " ".join(words[start : start + 12])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        notes.append((title, " ".join(sentences)))
    return notes


async def bulk_insert(app: Any, user_id: str, notes: list[tuple[str, str]]) -> float:
    started = time.perf_counter()
    now = utcnow()
    for start in range(0, len(notes), BATCH):
        rows = [
            {
                "id": new_id(),
                "user_id": user_id,
                "folder_id": None,
                "title": title,
                "content": content,
                "version": 1,
                "provenance": None,
                "deleted_at": None,
                "trash_root": None,
                "created_at": now,
                "updated_at": now,
            }
            for title, content in notes[start : start + BATCH]
        ]
        async with app[DB].transaction() as session:
            await session.execute(insert(Document), rows)
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def measure(label: str, run: Callable[[str], Awaitable[int]], repeats: int) -> dict[str, Any]:
    for q in QUERIES:  # warm-up: caches, prepared plans, the FTS index pages
        await run(q)
    timings: list[float] = []
    slowest: dict[str, float] = {}
    hits: dict[str, int] = {}
    for _ in range(repeats):
        for q in QUERIES:
            started = time.perf_counter()
            hits[q] = await run(q)
            elapsed = (time.perf_counter() - started) * 1000
            timings.append(elapsed)
            slowest[q] = max(slowest.get(q, 0.0), elapsed)
    worst = sorted(slowest.items(), key=lambda kv: -kv[1])[:3]
    result = {
        "label": label,
        "n": len(timings),
        "p50": percentile(timings, 0.50),
        "p95": percentile(timings, 0.95),
        "max": max(timings),
        "mean": statistics.fmean(timings),
        "worst": worst,
        "hits": hits,
    }
    print(
        f"  {label:<28} n={result['n']:<5} p50={result['p50']:7.1f} ms  "
        f"p95={result['p95']:7.1f} ms  max={result['max']:7.1f} ms  "
        f"slowest: {', '.join(f'{q!r} {ms:.0f} ms' for q, ms in worst)}",
        flush=True,
    )
    return result


async def bench_app(name: str, settings: Any, notes: list[tuple[str, str]], repeats: int) -> None:
    app = create_app(settings)
    async with app_client(app) as api:
        await api.register_and_login("bench@example.com", name="Bench")
        assert api.user is not None
        user_id = api.user["id"]
        seconds = await bulk_insert(app, user_id, notes)
        print(f"{name}: inserted {len(notes):,} notes in {seconds:.1f} s", flush=True)
        db = app[DB]

        async def service(q: str) -> int:
            page = await search(db, user_id, SearchRequest(q=q, mode="text", limit=20))
            return len(page.results)

        async def over_http(q: str) -> int:
            query = urlencode({"q": q, "mode": "text", "record": "false", "limit": 20})
            body = await api.get_json(f"/api/search?{query}")
            return len(body["results"])

        service_result = await measure("service layer, text", service, repeats)
        await measure("HTTP GET /api/search, text", over_http, repeats)
        print("  results per query:", dict(service_result["hits"]), flush=True)


async def run_sqlite(notes: list[tuple[str, str]], repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        settings = embedded_settings(Path(tmp), rate_limits_enabled=False, log_level="WARNING")
        await bench_app(f"SQLite {sqlite3.sqlite_version}", settings, notes, repeats)


def _mysql_parts() -> dict[str, Any]:
    userinfo, _, hostport = MYSQL.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, _, port = hostport.partition(":")
    return {"user": user or "root", "password": password, "host": host, "port": int(port or 3306)}


async def run_mariadb(notes: list[tuple[str, str]], repeats: int) -> None:
    import pymysql
    import redis

    from multinotes.db import create_engine
    from multinotes.migrations import upgrade

    parts = _mysql_parts()
    name = f"multinotes_bench_{secrets.token_hex(4)}"
    prefix = f"mnbench{secrets.token_hex(3)}:"
    conn = pymysql.connect(**parts, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.execute("SELECT VERSION()")
        (version,) = cur.fetchone()
    auth = parts["user"] + (f":{parts['password']}" if parts["password"] else "")
    url = f"mysql+aiomysql://{auth}@{parts['host']}:{parts['port']}/{name}?charset=utf8mb4"
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        settings = embedded_settings(
            Path(tempfile.mkdtemp(prefix="bench-search-")),
            mode="production",
            database_url=url,
            redis_url=REDIS,
            redis_prefix=prefix,
            allowed_hosts=["127.0.0.1", "localhost"],
            cookie_secure=False,
            rate_limits_enabled=False,
            log_level="WARNING",
        )
        await bench_app(f"MariaDB {version}", settings, notes, repeats)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


def describe_machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load average {load[0]:.1f} at start"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the query set")
    parser.add_argument("--only", choices=["sqlite", "mariadb"])
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    notes = generate_notes(args.notes)
    print(f"{len(notes):,} notes, {len(QUERIES)} queries, {args.repeats} passes", flush=True)
    if args.only in (None, "sqlite"):
        await run_sqlite(notes, args.repeats)
    if args.only in (None, "mariadb"):
        await run_mariadb(notes, args.repeats)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
