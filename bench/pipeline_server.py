"""Runs the real ``multinotes serve`` (settings from ``MULTINOTES_*`` environment variables, set
by ``bench_stream.py``), optionally with a proposed fix applied first, so the benchmark can show
what the fix buys.

Proposed fixes (see bench/README.md); without a flag nothing is changed:

* ``--shared-ssl-context`` (``multinotes.openai_wire``): build the TLS context once per process
  instead of once per call (loading the CA bundle costs ~16 ms of CPU per ``AsyncOpenAI``).
* ``--sqlite-write-lock`` (``multinotes.db.Database.transaction``): in SQLite mode, queue write
  transactions on an ``asyncio.Lock`` instead of in SQLite's sleeping busy handler.

Both are in the code since 2026-11-26 (the flags are kept so old commands still run; they no
longer change anything measurable). ``--no-search-index`` is a measuring switch, not a fix: it
skips the semantic-search indexing each finished answer queues and the every-minute sweep, to
measure the pipeline alone.

Run: ``python bench/pipeline_server.py [--shared-ssl-context] [--sqlite-write-lock]
[--no-search-index] -- serve``.
"""

from __future__ import annotations

import functools
import sys
from typing import Any


def apply_shared_ssl_context() -> None:
    import openai
    from httpx2._config import create_ssl_context

    context = functools.cache(create_ssl_context)
    original = openai.AsyncOpenAI.__init__

    def init(self: openai.AsyncOpenAI, *args: Any, **kwargs: Any) -> None:
        # Every client the plugins build gets a transport that reuses the one TLS context.
        kwargs.setdefault("http_client", openai.DefaultAsyncHttpxClient(verify=context()))
        original(self, *args, **kwargs)

    openai.AsyncOpenAI.__init__ = init  # type: ignore[method-assign]


def apply_sqlite_write_lock() -> None:
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncSession

    from multinotes.db import Database

    original = Database.transaction
    locks: dict[int, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def transaction(self: Database) -> AsyncIterator[AsyncSession]:
        if not self.is_sqlite:
            async with original(self) as session:
                yield session
            return
        # One writer at a time, queued in the event loop rather than in SQLite's busy handler
        # (which sleeps up to 100 ms per retry while the lock may already be free).
        lock = locks.setdefault(id(self), asyncio.Lock())
        async with lock, original(self) as session:
            yield session

    Database.transaction = transaction  # type: ignore[method-assign]


def skip_search_index() -> None:
    """Not a fix: semantic search indexes every finished answer in a background task, which
    runs inside the web process in embedded mode. Skipping it measures the streaming pipeline
    alone (bench/README.md reports both)."""
    # index_owner (on GenerationFinished) queues it, no longer the pipeline.
    from multinotes.search import tasks as pipeline

    async def no_index(app: Any, user_id: str) -> None:
        return None

    async def no_sweep(app: Any) -> int:
        return 0

    pipeline.queue_embedding = no_index  # type: ignore[assignment]
    # Nor the every-minute sweep, which embeds the warm-up's answers in this process: it loaded
    # the embedding model (~35 MB) in the middle of a memory measurement (twelfth round).
    pipeline.search_sweep = no_sweep  # type: ignore[assignment]


FIXES = {
    "--shared-ssl-context": apply_shared_ssl_context,
    "--sqlite-write-lock": apply_sqlite_write_lock,
    "--no-search-index": skip_search_index,
}


def trace_memory(path: str) -> None:
    """Not a fix: on each SIGUSR1, write a ``tracemalloc`` snapshot (12 frames, after a garbage
    collection) to ``path.<n>``, for ``bench/trace_streams.py``. Tracing starts at the first
    signal (a server traced from its start takes minutes to start on a busy machine), so the
    snapshots hold what was allocated since then and is still alive."""
    import gc
    import signal
    import tracemalloc

    taken = 0

    def dump(*_: object) -> None:
        nonlocal taken
        if not tracemalloc.is_tracing():
            tracemalloc.start(12)
        gc.collect()
        tracemalloc.take_snapshot().dump(f"{path}.{taken}")
        taken += 1

    signal.signal(signal.SIGUSR1, dump)


def main() -> int:
    argv = sys.argv[1:]
    for arg in list(argv):
        if arg.startswith("--trace-memory="):
            argv.remove(arg)
            trace_memory(arg.partition("=")[2])
    for flag, apply in FIXES.items():
        if flag in argv:
            argv.remove(flag)
            apply()
    if argv and argv[0] == "--":
        argv = argv[1:]
    from multinotes.cli import main as multinotes

    return multinotes(argv or ["serve"])


if __name__ == "__main__":
    raise SystemExit(main())
