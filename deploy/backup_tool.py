"""Helpers of deploy/backup.sh and deploy/restore-drill.sh that need the app's code; run with a
release's Python (``/opt/multinotes/current/venv/bin/python deploy/backup_tool.py ...``) and the
app's settings in the environment.

  export-objects DIR        copy every stored file the database names (uploads, generated
                            media, avatars, data and note exports) from S3 to DIR/<key>; nothing
                            to do for local storage (the data folder's tarball has it)
  put FILE s3://BUCKET/KEY  upload FILE with BACKUP_S3_ENDPOINT_URL, BACKUP_S3_ACCESS_KEY,
                            BACKUP_S3_SECRET_KEY, BACKUP_S3_REGION
  get s3://BUCKET/KEY FILE  the reverse
  counts                    rows per table, as JSON
  verify URL                check a restored copy served at URL: rows, every upload's bytes,
                            every other stored object, a login (DRILL_EMAIL, DRILL_PASSWORD) and
                            a search (DRILL_SEARCH)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, inspect, select, table, text


def _settings() -> Any:
    from multinotes.settings import Settings

    return Settings()


async def _rows(query: str) -> list[Any]:
    from multinotes.db import create_engine

    engine = create_engine(_settings().effective_database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(query))).all())
    finally:
        await engine.dispose()


# Every row that names an object in the storage backend, by what it holds: uploads, generated
# media (and prompt attachments), data exports and note exports hold its key (old rows a path
# that ``key_of`` maps); a user's avatar is ``avatars/<avatar_id>.png``. A new kind of stored
# file must be added here, or S3 backups leave it out (tests/deploy/test_backup_drill.py).
KEYS_IN = (
    "SELECT storage_key FROM files",
    "SELECT path FROM message_media WHERE path IS NOT NULL",
    "SELECT path FROM data_exports WHERE path IS NOT NULL",
    "SELECT storage_key FROM note_exports WHERE storage_key IS NOT NULL",
)


async def stored_keys() -> list[str]:
    """The key of every object the database names."""
    from multinotes.storage.objects import avatar_key, key_of

    keys = {key_of(row[0]) for query in KEYS_IN for row in await _rows(query)}
    avatars = await _rows("SELECT avatar_id FROM users WHERE avatar_id IS NOT NULL")
    keys.update(avatar_key(row[0]) for row in avatars)
    return sorted(keys)


async def export_objects(target: Path) -> int:
    from multinotes import outgoing
    from multinotes.storage.lifecycle import make_storage

    settings = _settings()
    if settings.storage_backend != "s3":
        print("Files are in the data folder (local storage): nothing to export.")
        return 0
    # The app's outgoing policy: a bucket on an internal address (a MinIO on the LAN) is
    # reached when MULTINOTES_OUTGOING_ALLOW lists it, as it is by the app.
    outgoing.install(outgoing.OutgoingPolicy.from_settings(settings))
    storage = make_storage(settings)
    keys = await stored_keys()
    copied, missing = 0, []
    try:
        for key in keys:
            # A row written while this runs may name an object not stored yet, and an expiring
            # export may go between the query and the copy: report those, keep the rest.
            if await storage.size(key) is None:
                missing.append(key)
                continue
            path = target / key
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                async for chunk in storage.read(key):
                    out.write(chunk)
            copied += 1
    finally:
        close = getattr(storage, "close", None)
        if close is not None:
            await close()
    print(f"Exported {copied} stored objects from S3.")
    if missing:
        print(f"Not in the bucket ({len(missing)}): {', '.join(missing)}", file=sys.stderr)
    return 0


def _backup_bucket(url: str) -> tuple[Any, str]:
    from multinotes import outgoing
    from multinotes.storage.s3 import S3Storage

    # The same outgoing policy as the app's: an S3 endpoint on an internal address (a MinIO on the
    # LAN) must be allowed with MULTINOTES_OUTGOING_ALLOW, as for any other outgoing request.
    outgoing.install(outgoing.OutgoingPolicy.from_settings(_settings()))

    if not url.startswith("s3://"):
        raise SystemExit(f"not an s3:// address: {url}")
    bucket, _, key = url[5:].partition("/")
    env = os.environ
    store = S3Storage(
        endpoint_url=env["BACKUP_S3_ENDPOINT_URL"],
        bucket=bucket,
        region=env.get("BACKUP_S3_REGION", "us-east-1"),
        access_key=env["BACKUP_S3_ACCESS_KEY"],
        secret_key=env["BACKUP_S3_SECRET_KEY"],
    )
    return store, key


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            yield chunk


async def put(source: Path, url: str) -> int:
    store, key = _backup_bucket(url)
    try:
        size = await store.put(key, _chunks(source))
    finally:
        await store.close()
    print(f"Uploaded {size} bytes to {url}.")
    return 0


async def get(url: str, target: Path) -> int:
    store, key = _backup_bucket(url)
    try:
        with target.open("wb") as out:
            async for chunk in store.read(key):
                out.write(chunk)
    finally:
        await store.close()
    return 0


async def counts() -> dict[str, int]:
    """Rows in every table of the database (what it holds, whatever the code expects)."""
    from multinotes.db import create_engine

    engine = create_engine(_settings().effective_database_url)
    found: dict[str, int] = {}
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            for name in sorted(names):
                query = select(func.count()).select_from(table(name))
                found[name] = int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()
    return found


async def verify(url: str) -> int:
    """Every check prints one line; the exit code is the number of failures."""
    from multinotes.storage.lifecycle import make_storage

    failures = 0

    def report(ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"[{'PASS' if ok else 'FAIL'}] {what}")

    rows = await counts()
    report(rows.get("users", 0) > 0, f"rows: {json.dumps(rows)}")
    expected = os.environ.get("DRILL_EXPECT_COUNTS")
    if expected:
        want = json.loads(await asyncio.to_thread(Path(expected).read_text))
        differ = {t: (n, rows.get(t)) for t, n in want.items() if rows.get(t) != n}
        # The counts were taken beside the dump, not inside its snapshot: on a busy site a
        # few rows may differ. A table that lost all its rows, or 1% of all rows, fails.
        emptied = [t for t, n in want.items() if n and not rows.get(t)]
        total_want, total = sum(want.values()), sum(rows.get(t, 0) for t in want)
        ok = not emptied and abs(total - total_want) <= total_want // 100
        report(ok, f"row counts match the backup's manifest: {differ or 'all equal'}")

    storage = make_storage(_settings())
    files = await _rows("SELECT storage_key, size, sha256 FROM files")
    bad = []
    for key, size, sha256 in files:
        digest, length = hashlib.sha256(), 0
        try:
            async for chunk in storage.read(key):
                digest.update(chunk)
                length += len(chunk)
        except Exception as exc:  # a missing object is what the drill looks for
            bad.append(f"{key}: {type(exc).__name__}")
            continue
        if length != size or digest.hexdigest() != sha256:
            bad.append(f"{key}: {length} bytes, sha256 differs")
    intact = len(files) - len(bad)
    report(not bad, f"files: {intact} of {len(files)} readable and intact {bad or ''}")
    others = [k for k in await stored_keys() if k not in {key for key, _, _ in files}]
    absent = [key for key in others if await storage.size(key) is None]
    report(
        not absent,
        f"stored objects (media, avatars, exports): {len(others) - len(absent)} of "
        f"{len(others)} present {absent or ''}",
    )

    email, password = os.environ.get("DRILL_EMAIL"), os.environ.get("DRILL_PASSWORD")
    if not (email and password):
        print("[SKIP] login and search: set DRILL_EMAIL and DRILL_PASSWORD (a canary account)")
        return failures
    jar = aiohttp.CookieJar(unsafe=True)  # the scratch copy answers on 127.0.0.1
    async with aiohttp.ClientSession(base_url=url, cookie_jar=jar) as http:
        async with http.post(
            "/api/auth/login", json={"email": email, "password": password}
        ) as response:
            report(response.status == 200, f"login as {email}: HTTP {response.status}")
            if response.status != 200:
                return failures
        if files:
            async with http.get("/api/files") as response:
                listed = response.status == 200
                report(listed, f"file list over the API: HTTP {response.status}")
        word = os.environ.get("DRILL_SEARCH")
        if word:
            async with http.get("/api/search", params={"q": word, "mode": "text"}) as response:
                found = (await response.json()).get("results", []) if response.ok else []
                report(bool(found), f"search for {word!r}: {len(found)} results")
    return failures


def main(argv: list[str]) -> int:
    command, *args = argv or ["help"]
    if command == "export-objects" and len(args) == 1:
        return asyncio.run(export_objects(Path(args[0])))
    if command == "put" and len(args) == 2:
        return asyncio.run(put(Path(args[0]), args[1]))
    if command == "get" and len(args) == 2:
        return asyncio.run(get(args[0], Path(args[1])))
    if command == "counts" and not args:
        print(json.dumps(asyncio.run(counts()), sort_keys=True))
        return 0
    if command == "verify" and len(args) == 1:
        return min(asyncio.run(verify(args[0])), 100)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
