"""Embeddings are computed in the background: a user's new or changed notes, messages and
conversation titles right after the change (``queue_embedding``, called by ``index_owner`` for
the domain events that change text, published once the change is committed), and a periodic
sweep for anything that was missed (a lost task, a process that stopped, a change made by a path
that does not queue).

What needs embedding is found by comparing with what is stored, so a task can run any number of
times: a note or conversation whose ``updated_at`` is newer than its embedding's, a complete
message without one, or any item embedded by another model. Unchanged text (a note only moved)
is not embedded again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from multinotes.chat.models import Conversation, Message, MessageStatus
from multinotes.db import Database, new_id, utcnow
from multinotes.domain_events import (
    GENERATION_COMPLETED,
    GENERATION_FAILED,
    NOTE_CREATED,
    NOTE_UPDATED,
    DomainEvent,
    EventBus,
)
from multinotes.keys import DB, TASKS
from multinotes.notes.models import Document
from multinotes.plugin_host import TaskDef
from multinotes.search import semantic
from multinotes.search.models import SearchEmbedding

log = structlog.get_logger(__name__)

EMBED_TASK = "core.search_embed"
SWEEP_TASK = "core.search_sweep"
BATCH = 200
MAX_CONFLICTS = 5


@dataclass
class Pending:
    kind: str
    object_id: str
    owner_id: str
    text: str
    source_updated_at: datetime | None
    embedding_id: str | None
    text_hash: str | None


#: How far back a user's job looks: well beyond a job's wait in the queue and a generation's
#: longest run (its conversation is touched when it starts); older misses are the sweep's.
RECENT = timedelta(hours=1)

#: How long a user's embedding job waits for more changes before it is queued, so a burst of
#: answers or autosaves becomes one run (in embedded mode that run shares the web process).
COALESCE_SECONDS = 1.0


class EmbedQueue:
    """Users whose embedding job waits to be queued: one timer per user, however many changes
    arrive meanwhile. Timers still waiting when the app stops are dropped (the sweep catches
    up), never fired into a closing app."""

    def __init__(self, app: web.Application, delay: float = COALESCE_SECONDS) -> None:
        self._app = app
        self._delay = delay
        self._waiting: dict[str, asyncio.TimerHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def request(self, user_id: str) -> None:
        if user_id in self._waiting:
            return
        loop = asyncio.get_running_loop()
        self._waiting[user_id] = loop.call_later(self._delay, self._send, user_id)

    def _send(self, user_id: str) -> None:
        self._waiting.pop(user_id, None)
        task = asyncio.ensure_future(_enqueue(self._app, user_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def close(self) -> None:
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


EMBED_QUEUE = web.AppKey("search_embed_queue", EmbedQueue)


async def queue_embedding(app: web.Application, user_id: str) -> None:
    """Embed what ``user_id`` owns that changed (call after the change is committed), within
    ``COALESCE_SECONDS``. Never fails the caller: the sweep catches up if the queue is
    unreachable."""
    queue = app.get(EMBED_QUEUE)
    if queue is None:  # an app without the search setup (some tools): queue at once
        await _enqueue(app, user_id)
    else:
        queue.request(user_id)


#: What makes text findable (or no longer): a note written or changed, a prompt answered.
INDEXED_EVENTS = (NOTE_CREATED, NOTE_UPDATED, GENERATION_COMPLETED, GENERATION_FAILED)


def subscribe(bus: EventBus) -> None:
    for event_type in INDEXED_EVENTS:
        bus.subscribe(event_type, index_owner)


async def index_owner(app: web.Application, event: DomainEvent) -> None:
    """Embed what changed for the owner of the event's object."""
    if event.user_id is not None:
        await queue_embedding(app, event.user_id)


async def _enqueue(app: web.Application, user_id: str) -> None:
    try:
        await app[TASKS].enqueue(EMBED_TASK, user_id=user_id)
    except Exception:
        log.exception("search_embed_enqueue_failed", user_id=user_id)


async def _pending(
    db: Database, user_id: str | None, limit: int, since: datetime | None = None
) -> list[Pending]:
    E = SearchEmbedding
    stale_model = E.model != semantic.MODEL
    found: list[Pending] = []
    async with db.read() as session:
        notes = (
            select(
                Document.id,
                Document.user_id,
                Document.title,
                Document.content,
                Document.updated_at,
                E.id,
                E.text_hash,
            )
            .outerjoin(E, E.document_id == Document.id)
            .where(
                Document.deleted_at.is_(None),
                or_(E.id.is_(None), E.source_updated_at < Document.updated_at, stale_model),
            )
        )
        conversations = (
            select(
                Conversation.id,
                Conversation.user_id,
                Conversation.title,
                Conversation.updated_at,
                E.id,
                E.text_hash,
            )
            .outerjoin(E, E.conversation_id == Conversation.id)
            .where(or_(E.id.is_(None), E.source_updated_at < Conversation.updated_at, stale_model))
        )
        messages = (
            select(Message.id, Message.user_id, Message.content, E.id, E.text_hash)
            .outerjoin(E, E.message_id == Message.id)
            .where(
                Message.status.in_((MessageStatus.COMPLETE, MessageStatus.STOPPED)),
                Message.content != "",
                or_(E.id.is_(None), stale_model),
            )
        )
        if user_id is not None:
            notes = notes.where(Document.user_id == user_id)
            conversations = conversations.where(Conversation.user_id == user_id)
            messages = messages.where(Message.user_id == user_id)
        if since is not None:
            # Only what changed lately: indexed ranges instead of every item the user has.
            # A new answer's conversation was touched when the prompt was stored.
            notes = notes.where(Document.updated_at >= since)
            conversations = conversations.where(Conversation.updated_at >= since)
            touched = select(Conversation.id).where(Conversation.updated_at >= since)
            if user_id is not None:
                touched = touched.where(Conversation.user_id == user_id)
            messages = messages.where(Message.conversation_id.in_(touched))
        for did, owner, title, content, stamp, eid, digest in await session.execute(
            notes.limit(limit)
        ):
            found.append(Pending("note", did, owner, f"{title}\n\n{content}", stamp, eid, digest))
        for cid, owner, title, stamp, eid, digest in await session.execute(
            conversations.limit(limit)
        ):
            found.append(Pending("conversation", cid, owner, title, stamp, eid, digest))
        for mid, owner, content, eid, digest in await session.execute(messages.limit(limit)):
            found.append(Pending("message", mid, owner, content, None, eid, digest))
    return found


COLUMN = {"note": "document_id", "conversation": "conversation_id", "message": "message_id"}


async def _store(db: Database, items: list[Pending]) -> None:
    """Store the items' embeddings (computing only those whose text changed): a few
    statements of many rows each, not one per item (a burst of answers is dozens of items)."""
    hashes = [semantic.text_hash(item.text) for item in items]
    changed = [
        i
        for i, item in enumerate(items)
        if item.text_hash != hashes[i] or item.embedding_id is None
    ]
    vectors = await semantic.embed([items[i].text for i in changed]) if changed else None
    vector_of = {i: vectors[n] for n, i in enumerate(changed)} if vectors is not None else {}
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    re_embedded: list[dict[str, Any]] = []  # text changed: a new vector
    restamped: list[dict[str, Any]] = []  # same text: only the source's time moves on
    for i, item in enumerate(items):
        values: dict[str, Any] = {"source_updated_at": item.source_updated_at, "updated_at": now}
        if i in vector_of:
            values.update(
                model=semantic.MODEL, vector=semantic.to_bytes(vector_of[i]), text_hash=hashes[i]
            )
        if item.embedding_id is None:
            inserts.append(
                {
                    "id": new_id(),
                    "user_id": item.owner_id,
                    "kind": item.kind,
                    **{column: None for column in COLUMN.values()},
                    COLUMN[item.kind]: item.object_id,
                    **values,
                }
            )
        else:
            # Bound under other names: SQLAlchemy keeps the columns' own names for itself.
            (re_embedded if i in vector_of else restamped).append(
                {"b_id": item.embedding_id, **{f"b_{name}": v for name, v in values.items()}}
            )
    async with db.transaction() as session:
        connection = await session.connection()
        if inserts:
            await connection.execute(insert(SearchEmbedding), inserts)
        for rows in (re_embedded, restamped):
            if rows:
                columns = [key.removeprefix("b_") for key in rows[0] if key != "b_id"]
                await connection.execute(
                    update(SearchEmbedding)
                    .where(SearchEmbedding.id == bindparam("b_id"))
                    .values({name: bindparam(f"b_{name}") for name in columns}),
                    rows,
                )


#: One embedding run at a time in a process: the minute's sweep and a user's queued job often
#: start together (in embedded mode, both in the web process), and two runs that look for work
#: at once both find the same changed text and pay to embed it twice. Runs in other processes
#: can still overlap; what they store twice is caught below as a conflict.
EMBEDDING = web.AppKey("search_embedding", asyncio.Lock)


async def embed_pending(
    app: web.Application,
    user_id: str | None = None,
    limit: int = 5000,
    since: datetime | None = None,
) -> int:
    """Embed up to ``limit`` items that need it (``user_id``'s only, if given; only those
    changed ``since``, if given); returns how many were brought up to date."""
    db = app[DB]
    done = conflicts = 0
    async with app[EMBEDDING]:
        while done < limit:
            items = await _pending(db, user_id, BATCH, since)
            if not items:
                break
            try:
                await _store(db, items)
            except (IntegrityError, OperationalError):
                # Another run stored some of them meanwhile, or an item was deleted under us
                # (or, on MySQL, two runs deadlocked over the same rows): look again, what was
                # stored is no longer pending. Give up after a few, the next run goes on.
                conflicts += 1
                log.info("search_embed_conflict", user_id=user_id, conflicts=conflicts)
                if conflicts >= MAX_CONFLICTS:
                    break
                continue
            done += len(items)
    return done


async def search_embed(app: web.Application, user_id: str) -> int:
    """Embed one user's new and changed items (queued after their changes): those changed in
    the last ``RECENT`` only, so a run costs what changed rather than all the user has; the
    sweep looks at everything."""
    return await embed_pending(app, user_id, since=utcnow() - RECENT)


async def search_sweep(app: web.Application) -> int:
    """Embed anything still missing or stale, for every user."""
    return await embed_pending(app)


def search_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", EMBED_TASK, search_embed, None),
        TaskDef("core", SWEEP_TASK, search_sweep, "* * * * *"),
    ]
