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

Run: ``python bench/bench_search.py [--notes 100000] [--repeats 5] [--only sqlite|mariadb]
[--buffer-pool-mb 1024]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import secrets
import sqlite3
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
from multinotes.search.tasks import embed_pending
from multinotes.search.vectors import VECTORS
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
VOCABULARY_SEED = 20261126


def vocabulary() -> list[str]:
    """Real English words: the distinct words of Python's bundled help text (pydoc_data, about
    7,000 of three letters or more), shuffled so their rank is not alphabetical."""
    from pydoc_data.topics import topics

    words = sorted({w.lower() for w in re.findall(r"[A-Za-z]{3,}", " ".join(topics.values()))})
    words = [w for w in words if w not in COMMON]
    random.Random(VOCABULARY_SEED).shuffle(words)
    return words


def zipf(count: int, exponent: float = 1.1) -> list[float]:
    """Cumulative Zipf weights for ``random.choices``: rank r is drawn ~ 1 / r^exponent."""
    total, cumulative = 0.0, []
    for rank in range(1, count + 1):
        total += 1 / rank**exponent
        cumulative.append(total)
    return cumulative


def generate_notes(count: int, seed: int = 20261126) -> list[tuple[str, str]]:
    """Notes in twelve topics. A word of a note is a common English word (40%), a word of the
    note's topic (35%: the topic's named words first, then its share of the vocabulary, drawn
    by a Zipf law) or any word of the vocabulary (25%, Zipf again), so document frequencies
    range from nearly every note to a handful, as in real text."""
    rng = random.Random(seed)
    words = vocabulary()
    names = list(TOPICS)
    share = len(words) // len(names)
    topic_words = {
        name: TOPICS[name].split() + words[i * share : (i + 1) * share]
        for i, name in enumerate(names)
    }
    topic_weights = {name: zipf(len(v)) for name, v in topic_words.items()}
    global_weights = zipf(len(words))
    notes = []
    for _ in range(count):
        name = rng.choice(names)
        own, own_weights = topic_words[name], topic_weights[name]
        title = " ".join(rng.choices(own, cum_weights=own_weights, k=rng.randint(2, 5)))
        picks = []
        for _ in range(rng.randint(40, 400)):
            roll = rng.random()
            if roll < 0.40:
                picks.append(rng.choice(COMMON))
            elif roll < 0.75:
                picks.append(rng.choices(own, cum_weights=own_weights)[0])
            else:
                picks.append(rng.choices(words, cum_weights=global_weights)[0])
        sentences = []
        for start in range(0, len(picks), 12):
            sentence = " ".join(picks[start : start + 12])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        notes.append((title.capitalize(), " ".join(sentences)))
    return notes


#: Share of notes holding a word, per band of query words, and how many queries each.
BANDS = {
    "rare word (<0.1% of notes)": (0.0002, 0.001, 8),
    "uncommon word (0.1-1%)": (0.001, 0.01, 8),
    "common word (1-5%)": (0.01, 0.05, 6),
    "frequent word (5-20%)": (0.05, 0.20, 3),
    "very frequent word (>20%)": (0.20, 1.0, 1),
}


def choose_queries(notes: list[tuple[str, str]], seed: int = 7) -> list[tuple[str, str]]:
    """(band, query): words picked by how many notes hold them (counted on a sample), then
    pairs, phrases, prefixes, an exclusion, a word in no note and a two-letter word. The mix
    leans to rarer words, as searches for something specific do."""
    rng = random.Random(seed)
    sample = notes[: min(len(notes), 10_000)]
    frequency: dict[str, int] = {}
    for title, content in sample:
        for word in set(f"{title} {content}".lower().replace(".", "").split()):
            frequency[word] = frequency.get(word, 0) + 1
    share = {w: n / len(sample) for w, n in frequency.items() if w not in COMMON}
    queries: list[tuple[str, str]] = []
    picked: dict[str, list[str]] = {}
    for band, (low, high, how_many) in BANDS.items():
        candidates = sorted(w for w, f in share.items() if low <= f < high)
        picked[band] = rng.sample(candidates, min(how_many, len(candidates)))
        queries += [(band, w) for w in picked[band]]
    uncommon, common = picked["uncommon word (0.1-1%)"], picked["common word (1-5%)"]
    frequent = picked["frequent word (5-20%)"]
    for i in range(4):
        queries.append(("two words", f"{common[i]} {uncommon[i]}"))
    queries.append(("two words", f"{frequent[0]} {common[4]}"))
    queries.append(("three words", f"{common[5]} {uncommon[4]} {frequent[1]}"))
    for title, _ in rng.sample(sample, 3):
        queries.append(("phrase", '"' + " ".join(title.lower().split()[:2]) + '"'))
    for word in rng.sample([w for w in uncommon if len(w) >= 6], 2):
        queries.append(("prefix", word[:5] + "*"))
    queries.append(("exclusion", f"{common[0]} -{frequent[2]}"))
    queries.append(("no match", "xylophonist"))
    queries.append(("two-letter word", "ai"))
    return queries


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


async def measure(
    label: str,
    run: Callable[[str], Awaitable[int]],
    queries: list[tuple[str, str]],
    repeats: int,
) -> dict[str, Any]:
    for _, q in queries:  # warm-up: caches, prepared statements, the index pages
        await run(q)
    timings: list[float] = []
    by_band: dict[str, list[float]] = {}
    slowest: dict[str, float] = {}
    hits: dict[str, int] = {}
    for _ in range(repeats):
        for band, q in queries:
            started = time.perf_counter()
            hits[q] = await run(q)
            elapsed = (time.perf_counter() - started) * 1000
            timings.append(elapsed)
            by_band.setdefault(band, []).append(elapsed)
            slowest[q] = max(slowest.get(q, 0.0), elapsed)
    worst = sorted(slowest.items(), key=lambda kv: -kv[1])[:3]
    print(
        f"  {label:<28} n={len(timings):<5} p50={percentile(timings, 0.5):7.1f} ms  "
        f"p95={percentile(timings, 0.95):7.1f} ms  max={max(timings):7.1f} ms  "
        f"slowest: {', '.join(f'{q!r} {ms:.0f} ms' for q, ms in worst)}",
        flush=True,
    )
    for band, values in by_band.items():
        print(
            f"      {band:<28} p50={percentile(values, 0.5):7.1f} ms  "
            f"p95={percentile(values, 0.95):7.1f} ms",
            flush=True,
        )
    return {"timings": timings, "hits": hits}


async def bench_app(
    name: str,
    settings: Any,
    notes: list[tuple[str, str]],
    queries: list[tuple[str, str]],
    repeats: int,
    semantic: bool = False,
) -> None:
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

        result = await measure("service layer, text", service, queries, repeats)
        await measure("HTTP GET /api/search, text", over_http, queries, repeats)
        print("  results per query:", result["hits"], flush=True)
        if not semantic:
            return
        started = time.perf_counter()
        embedded = await embed_pending(app, user_id, limit=len(notes))
        print(f"  embedded {embedded:,} notes in {time.perf_counter() - started:.1f} s")
        for mode in ("semantic", "hybrid"):

            async def other_mode(q: str, mode: str = mode) -> int:
                request = SearchRequest(q=q, mode=mode, limit=20)
                page = await search(db, user_id, request, app[VECTORS])
                return len(page.results)

            await measure(f"service layer, {mode}", other_mode, queries, 1)


async def run_sqlite(
    notes: list[tuple[str, str]], queries: list[Any], repeats: int, semantic: bool
) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        settings = embedded_settings(Path(tmp), rate_limits_enabled=False, log_level="WARNING")
        name = f"SQLite {sqlite3.sqlite_version}"
        await bench_app(name, settings, notes, queries, repeats, semantic)


def _mysql_parts() -> dict[str, Any]:
    userinfo, _, hostport = MYSQL.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, _, port = hostport.partition(":")
    return {"user": user or "root", "password": password, "host": host, "port": int(port or 3306)}


async def run_mariadb(
    notes: list[tuple[str, str]], queries: list[Any], repeats: int, buffer_pool_mb: int | None
) -> None:
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
        cur.execute("SELECT VERSION(), @@innodb_buffer_pool_size")
        version, pool_before = cur.fetchone()
        if buffer_pool_mb:
            # Dynamic in MariaDB 10.2+ and MySQL 5.7+; put back as it was at the end.
            cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {buffer_pool_mb * 1024 * 1024}")
            cur.execute("SELECT @@innodb_buffer_pool_size")
            (pool,) = cur.fetchone()
            print(
                f"MariaDB innodb_buffer_pool_size: {pool_before // 2**20} MiB -> "
                f"{pool // 2**20} MiB for this run",
                flush=True,
            )
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
        await bench_app(f"MariaDB {version}", settings, notes, queries, repeats)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            if buffer_pool_mb:
                cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {pool_before}")
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
    parser.add_argument(
        "--buffer-pool-mb",
        type=int,
        help="set MariaDB's innodb_buffer_pool_size for the run (restored after)",
    )
    parser.add_argument(
        "--semantic",
        action="store_true",
        help="also embed every note and time semantic and hybrid searches (SQLite only)",
    )
    args = parser.parse_args()
    print(describe_machine(), flush=True)
    notes = generate_notes(args.notes)
    queries = choose_queries(notes)
    print(f"{len(notes):,} notes, {len(queries)} queries, {args.repeats} passes", flush=True)
    for band, q in queries:
        print(f"  {band:<28} {q}", flush=True)
    if args.only in (None, "sqlite"):
        await run_sqlite(notes, queries, args.repeats, args.semantic)
    if args.only in (None, "mariadb"):
        await run_mariadb(notes, queries, args.repeats, args.buffer_pool_mb)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
