"""Search as one user sees it: their own conversations, messages (prompts and answers) and
notes, what others shared with them and what is kept in the spaces of the organisations they
belong to (``multinotes.sharing.access.visible_scope``); never anything in the trash, never
anyone else's.

Three modes: ``text`` (the full-text backend's ranking), ``semantic`` (cosine similarity of
embeddings) and ``hybrid`` (the default: both rankings fused by reciprocal rank fusion, so an
item both find comes first and an item only one finds still shows).
"""

from __future__ import annotations

import base64
import functools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, delete, exists, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.chat.models import Conversation, Message, MessageStatus, open_to_chat
from multinotes.chat.pipeline import MAX_MODELS
from multinotes.db import Database, retrying, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.notes.models import Document, Folder
from multinotes.search import semantic
from multinotes.search.fulltext import KIND_SPECS, backend_for
from multinotes.search.models import KINDS, RecentSearch, SearchEmbedding
from multinotes.search.query import ParsedQuery, parse
from multinotes.search.snippets import build_snippet
from multinotes.search.vectors import VectorCache
from multinotes.sharing.access import VisibleScope, visible_scope
from multinotes.sharing.service import object_path

Mode = Literal["hybrid", "text", "semantic"]
#: Results beyond this rank are not paged to: refine the query instead.
MAX_DEPTH = 200
#: Reciprocal rank fusion's constant (the usual 60: ranks far down count for little).
RRF_K = 60
RECENT_KEPT = 10
#: Searches typed within this long of each other, one extending the other, are one search.
TYPING_WINDOW = timedelta(seconds=60)


@dataclass(frozen=True)
class SearchRequest:
    q: str
    mode: Mode = "hybrid"
    kinds: tuple[str, ...] = KINDS
    folder_id: str | None = None
    model: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    limit: int = 20
    offset: int = 0


@dataclass
class SearchPage:
    results: list[dict[str, Any]]
    next_cursor: str | None


@dataclass
class _Found:
    kind: str
    id: str
    row: Any
    snippet: str | None = None
    text_rank: int | None = None
    semantic_rank: int | None = None
    scores: dict[str, float] = field(default_factory=dict)


# -- cursors -------------------------------------------------------------------------------------


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
    except (ValueError, TypeError, KeyError):
        raise Invalid(fields={"cursor": "not a cursor from this search"}) from None
    if not isinstance(offset, int) or not 0 <= offset < MAX_DEPTH:
        raise Invalid(fields={"cursor": "not a cursor from this search"})
    return offset


# -- what a user may see, as candidate queries ----------------------------------------------------


async def _folder_subtree(session: AsyncSession, scope: VisibleScope, folder_id: str) -> set[str]:
    """A folder the user can see, with every live folder below it."""
    owner = await session.scalar(
        select(Folder.user_id).where(Folder.id == folder_id, Folder.deleted_at.is_(None))
    )
    if owner is None or (owner != scope.user_id and folder_id not in scope.folder_ids):
        raise NotFound("No such folder.")
    rows = await session.execute(
        select(Folder.id, Folder.parent_id).where(
            Folder.user_id == owner, Folder.deleted_at.is_(None)
        )
    )
    children: dict[str | None, list[str]] = defaultdict(list)
    for fid, parent in rows.all():
        children[parent].append(fid)
    found, stack = set(), [folder_id]
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(children.get(current, []))
    return found


def _note_model() -> Any:
    return Document.provenance[("sources", 0, "model")].as_string()


def candidates(
    kind: str, scope: VisibleScope, request: SearchRequest, folders: set[str] | None
) -> Select[Any]:
    """The items of ``kind`` the user may see that pass the filters. The first column is the
    item's id; every kind has the same labelled columns."""
    me = scope.user_id
    if kind == "note":
        query = select(
            Document.id.label("id"),
            Document.title.label("title"),
            Document.updated_at.label("updated_at"),
            Document.folder_id.label("folder_id"),
            _note_model().label("model"),
            literal(None).label("conversation_id"),
            Document.user_id.label("owner_id"),
        ).where(
            Document.deleted_at.is_(None),
            or_(
                Document.user_id == me,
                Document.id.in_(scope.document_ids),
                Document.folder_id.in_(scope.folder_ids),
                Document.organisation_id.in_(scope.organisation_ids),
            ),
        )
        if folders is not None:
            query = query.where(Document.folder_id.in_(folders))
        if request.model:
            query = query.where(
                or_(
                    *[
                        Document.provenance[("sources", i, "model")].as_string() == request.model
                        for i in range(MAX_MODELS)
                    ]
                )
            )
        stamp: Any = Document.updated_at
    elif kind == "conversation":
        query = select(
            Conversation.id.label("id"),
            Conversation.title.label("title"),
            Conversation.updated_at.label("updated_at"),
            literal(None).label("folder_id"),
            literal(None).label("model"),
            Conversation.id.label("conversation_id"),
            Conversation.user_id.label("owner_id"),
        ).where(
            or_(
                Conversation.user_id == me,
                Conversation.id.in_(scope.conversation_ids),
                Conversation.organisation_id.in_(scope.organisation_ids),
            ),
            open_to_chat(),  # a blind comparison's is found only under /comparisons
        )
        if request.model:
            query = query.where(
                exists().where(
                    Message.conversation_id == Conversation.id, Message.model_id == request.model
                )
            )
        stamp = Conversation.updated_at
    else:
        query = (
            select(
                Message.id.label("id"),
                Conversation.title.label("title"),
                Message.created_at.label("updated_at"),
                literal(None).label("folder_id"),
                Message.model_id.label("model"),
                Message.conversation_id.label("conversation_id"),
                Message.user_id.label("owner_id"),
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.status.in_((MessageStatus.COMPLETE, MessageStatus.STOPPED)),
                or_(
                    Message.user_id == me,
                    Message.conversation_id.in_(scope.conversation_ids),
                    Conversation.organisation_id.in_(scope.organisation_ids),
                ),
                open_to_chat(),  # a result names its model: none from a blind comparison
            )
        )
        if request.model:
            query = query.where(Message.model_id == request.model)
        stamp = Message.created_at
    if request.date_from is not None:
        query = query.where(stamp >= request.date_from)
    if request.date_to is not None:
        query = query.where(stamp <= request.date_to)
    return query


def _kinds(request: SearchRequest) -> tuple[str, ...]:
    # Only notes live in folders.
    return ("note",) if request.folder_id else request.kinds


EMBEDDING_OF = {
    "note": SearchEmbedding.document_id,
    "conversation": SearchEmbedding.conversation_id,
    "message": SearchEmbedding.message_id,
}


# -- search ----------------------------------------------------------------------------------------


async def _similar(
    session: AsyncSession,
    cache: VectorCache | None,
    scope: VisibleScope,
    kind: str,
    base: Select[Any],
    query_vector: Any,
    depth: int,
) -> list[semantic.SemanticHit]:
    """The candidates of ``kind`` closest in meaning: the user's own from the vector cache (when
    there is one and they fit), what others shared with them from the database."""
    source, item_of = KIND_SPECS[kind].source, EMBEDDING_OF[kind]
    cached = await cache.vectors(session, scope.user_id, kind, item_of) if cache else None
    own = None
    if cached is not None:
        ids, matrix = cached
        mine = base.where(source.user_id == scope.user_id)
        own = await semantic.search_among(
            session, kind, mine, source.id, ids, matrix, query_vector, depth
        )
    if own is None:
        return await semantic.search(session, kind, base, source.id, item_of, query_vector, depth)
    shared = scope.conversation_ids if kind != "note" else scope.document_ids | scope.folder_ids
    if shared or scope.organisation_ids:
        theirs = base.where(source.user_id != scope.user_id)
        own += await semantic.search(session, kind, theirs, source.id, item_of, query_vector, depth)
    return own


async def search(
    db: Database, user_id: str, request: SearchRequest, cache: VectorCache | None = None
) -> SearchPage:
    """One page of results. ``cache`` keeps the user's vectors between searches (the app's
    ``VECTORS``); without it every semantic search reads them from the database."""
    query = parse(request.q)
    if not query.terms:
        return SearchPage([], None)
    depth = min(MAX_DEPTH, request.offset + request.limit + 1)
    found: dict[tuple[str, str], _Found] = {}
    query_vector = None
    if request.mode != "text" and query.searchable:
        # The words sought, without the syntax (quotes, "-excluded", "*").
        meaning = " ".join(" ".join(t.words) for t in query.positive)
        query_vector = (await semantic.embed([meaning]))[0]
    async with db.read() as session:
        scope = await visible_scope(session, user_id)
        folders = (
            await _folder_subtree(session, scope, request.folder_id) if request.folder_id else None
        )
        kinds = _kinds(request)
        if request.mode != "semantic":
            backend = backend_for(session.get_bind().dialect.name)
            hits = []
            for kind in kinds:
                base = candidates(kind, scope, request, folders)
                hits += await backend.search(session, kind, base, query, depth)
            hits.sort(key=lambda h: -h.score)
            for rank, hit in enumerate(hits[:depth]):
                item = found.setdefault((hit.kind, hit.id), _Found(hit.kind, hit.id, hit.row))
                item.snippet, item.text_rank = hit.snippet, rank
                item.scores["text"] = hit.score
        if query_vector is not None:
            close = []
            for kind in kinds:
                base = candidates(kind, scope, request, folders)
                close += await _similar(session, cache, scope, kind, base, query_vector, depth)
            close.sort(key=lambda h: -h.score)
            for rank, near in enumerate(semantic.close_enough(close)[:depth]):
                item = found.setdefault((near.kind, near.id), _Found(near.kind, near.id, near.row))
                item.semantic_rank = rank
                item.scores["semantic"] = near.score
        ranked = _rank(list(found.values()), request.mode)
        page = ranked[request.offset : request.offset + request.limit]
        await _fill_snippets(session, page, query)
    more = len(ranked) > request.offset + request.limit
    next_offset = request.offset + request.limit
    cursor = encode_cursor(next_offset) if more and next_offset < MAX_DEPTH else None
    return SearchPage([result_out(item, user_id) for item in page], cursor)


def _rank(items: list[_Found], mode: Mode) -> list[_Found]:
    if mode == "text":
        key = "text"
    elif mode == "semantic":
        key = "semantic"
    else:
        key = "fused"
        for item in items:
            item.scores["fused"] = sum(
                1.0 / (RRF_K + rank + 1)
                for rank in (item.text_rank, item.semantic_rank)
                if rank is not None
            )
    return sorted(items, key=lambda i: -i.scores.get(key, 0.0))


async def _fill_snippets(session: AsyncSession, items: list[_Found], query: ParsedQuery) -> None:
    """Items only semantic search found have no snippet yet: the start of their text, with any
    query word marked."""
    wanted: dict[str, list[_Found]] = defaultdict(list)
    for item in items:
        if item.snippet is None:
            wanted[item.kind].append(item)
    for kind, group in wanted.items():
        spec = KIND_SPECS[kind]
        rows = await session.execute(
            select(spec.source.id, *spec.columns).where(spec.source.id.in_([i.id for i in group]))
        )
        texts = {row[0]: [v or "" for v in row[1:]] for row in rows.all()}
        for item in group:
            parts = texts.get(item.id, [""])
            item.snippet = build_snippet(parts[-1] or parts[0], query)


def _url(item: _Found, user_id: str) -> str:
    row = item.row
    if row.owner_id != user_id:
        # Someone else's: where the sharing pages show it to the people it is shared with.
        if item.kind == "note":
            return object_path("document", item.id)
        return object_path("conversation", row.conversation_id)
    if item.kind == "note":
        return f"/notes/{item.id}"
    if item.kind == "conversation":
        return f"/chat/{item.id}"
    return f"/chat/{row.conversation_id}?leaf={item.id}"


def _score(item: _Found) -> float:
    for key in ("fused", "text", "semantic"):
        if key in item.scores:
            return item.scores[key]
    return 0.0


def result_out(item: _Found, user_id: str) -> dict[str, Any]:
    row = item.row
    out: dict[str, Any] = {
        "kind": item.kind,
        "id": item.id,
        "title": row.title,
        "snippet": item.snippet or "",
        "url": _url(item, user_id),
        "score": round(_score(item), 6),
        "updated_at": row.updated_at.isoformat(),
        "shared": row.owner_id != user_id,
    }
    if item.kind == "note":
        out["folder_id"] = row.folder_id
    if row.model:
        out["model"] = row.model
    if item.kind == "message":
        out["conversation_id"] = row.conversation_id
    return out


# -- recent searches -------------------------------------------------------------------------------


def _key(q: str) -> str:
    return " ".join(q.split()).casefold()[:200]


async def remember_search(db: Database, user_id: str, q: str) -> None:
    """Keep ``q`` as the user's newest recent search (once, however often it is run)."""
    q = " ".join(q.split())[:200]
    key = _key(q)
    if not key:
        return
    now = utcnow()
    try:
        # Two people's writes can deadlock on the index's gap locks (MariaDB): run it again.
        await retrying(
            functools.partial(_record_search, db, user_id, q, key, now), "remember_search"
        )
    except IntegrityError:
        pass  # the same search, recorded by a concurrent request: one copy is kept


async def _record_search(db: Database, user_id: str, q: str, key: str, now: datetime) -> None:
    async with db.transaction() as session:
        latest = await session.scalar(
            select(RecentSearch)
            .where(RecentSearch.user_id == user_id)
            .order_by(RecentSearch.created_at.desc(), RecentSearch.id.desc())
            .limit(1)
        )
        if (
            latest is not None
            and latest.query_key != key
            and (key.startswith(latest.query_key) or latest.query_key.startswith(key))
            and now - latest.created_at < TYPING_WINDOW
        ):
            # Search-as-you-type: "sourd" then "sourdough" is one search, not two.
            await session.delete(latest)
        await session.execute(
            delete(RecentSearch).where(
                RecentSearch.user_id == user_id, RecentSearch.query_key == key
            )
        )
        await session.flush()
        session.add(RecentSearch(user_id=user_id, query=q, query_key=key, created_at=now))
        await session.flush()
        stale = list(
            await session.scalars(
                select(RecentSearch.id)
                .where(RecentSearch.user_id == user_id)
                .order_by(RecentSearch.created_at.desc(), RecentSearch.id.desc())
                .offset(RECENT_KEPT)
            )
        )
        if stale:
            await session.execute(delete(RecentSearch).where(RecentSearch.id.in_(stale)))


async def recent_searches(db: Database, user_id: str) -> list[dict[str, Any]]:
    async with db.read() as session:
        rows = await session.scalars(
            select(RecentSearch)
            .where(RecentSearch.user_id == user_id)
            .order_by(RecentSearch.created_at.desc(), RecentSearch.id.desc())
            .limit(RECENT_KEPT)
        )
        return [{"query": r.query, "searched_at": r.created_at.isoformat()} for r in rows]


async def forget_searches(db: Database, user_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(delete(RecentSearch).where(RecentSearch.user_id == user_id))
