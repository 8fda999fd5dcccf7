"""Search over conversations, messages and notes: full text (SQLite FTS5 or InnoDB FULLTEXT),
semantic (offline embeddings) and hybrid; recent searches; the command palette.

``service.search`` is the entry point. Indexing reacts to domain events (``tasks.index_owner``
for ``note.created``, ``note.updated`` and finished generations) rather than being called by the
features that change text; a periodic sweep catches anything that was not queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from multinotes.domain_events import EVENTS
from multinotes.keys import DB, SETTINGS
from multinotes.search.sqlite_index import ensure_index
from multinotes.search.tasks import EMBED_QUEUE, EMBEDDING, EmbedQueue, subscribe
from multinotes.search.vectors import VECTORS, VectorCache


def setup_search(app: web.Application) -> None:
    """The vector cache, the queue that coalesces embedding jobs, the turn embedding runs take
    in this process, and (embedded mode) a check of the full-text index at start."""
    app[VECTORS] = VectorCache()
    app[EMBEDDING] = asyncio.Lock()

    async def embed_queue(app: web.Application) -> AsyncIterator[None]:
        # Registered after the task queue's context, so it closes before the broker does.
        app[EMBED_QUEUE] = queue = EmbedQueue(app)
        yield
        await queue.close()

    app.cleanup_ctx.append(embed_queue)
    # Notes and answers are indexed when their events are published (after setup_events).
    subscribe(app[EVENTS])

    async def check_index(app: web.Application) -> None:
        # Runs after the database's cleanup context has opened (and migrated) it.
        if app[SETTINGS].is_sqlite:
            await ensure_index(app[DB].engine)

    app.on_startup.append(check_index)
