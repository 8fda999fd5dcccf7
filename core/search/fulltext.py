"""Full-text search behind one interface, on SQLite FTS5 or InnoDB FULLTEXT.

The service hands a backend a *candidate query* per kind: a ``select`` over the kind's table
that already says what the user may see and what the filters allow, with its columns. The backend
adds the match, a relevance score (higher is better), the order and the limit, and makes the
snippets. Both backends return the same ``TextHit`` rows.

- SQLite: the FTS5 tables of the search migration (external content over ``documents``,
  ``conversations`` and ``messages``, joined on rowid), ranked by ``bm25()`` with title matches
  weighing more; snippets from FTS5's ``snippet()``, computed for the returned rows only.
- MySQL/MariaDB: ``MATCH ... AGAINST`` in boolean mode over the FULLTEXT indexes, a window of
  the best matches in the index's own order first, then title matches weighed in
  (``MysqlFulltext``); words shorter than ``innodb_ft_min_token_size`` (never indexed) are
  matched with ``REGEXP`` instead, and stopwords are left out; snippets are built in Python
  from the returned rows' text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, column, func, literal_column, or_, select, table, text
from sqlalchemy.dialects.mysql import match
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.chat.models import Conversation, Message
from multinotes.notes.models import Document
from multinotes.search.query import ParsedQuery, to_fts5, to_mysql, word_regexp
from multinotes.search.snippets import CLOSE, ELLIPSIS, OPEN, build_snippet, marked_to_html

#: How much more a match in a note's title counts than one in its content.
TITLE_WEIGHT = 4.0
#: MySQL/MariaDB: how many of the best matches (by relevance, ids only) a search reads before
#: weighing titles in. Reading them costs little (~10 µs a row); ranking every match costs.
WINDOW = 1000


@dataclass
class TextHit:
    """One matching item: ``row`` is the candidate query's row (its columns by name)."""

    kind: str
    id: str
    score: float
    snippet: str
    row: Any


@dataclass(frozen=True)
class KindSpec:
    kind: str
    source: Any  # the mapped class searched
    columns: tuple[Any, ...]  # the indexed columns, in index order
    fts: str  # the FTS5 table on SQLite


KIND_SPECS = {
    "note": KindSpec("note", Document, (Document.title, Document.content), "documents_fts"),
    "conversation": KindSpec(
        "conversation", Conversation, (Conversation.title,), "conversations_fts"
    ),
    "message": KindSpec("message", Message, (Message.content,), "messages_fts"),
}


class FullTextBackend(Protocol):
    async def search(
        self,
        session: AsyncSession,
        kind: str,
        candidates: Select[Any],
        query: ParsedQuery,
        limit: int,
    ) -> list[TextHit]:
        """The best ``limit`` matches of ``query`` among ``candidates`` (whose first column is
        the item id), best first."""
        ...


def backend_for(dialect: str) -> FullTextBackend:
    return SqliteFts() if dialect == "sqlite" else MysqlFulltext()


class SqliteFts:
    async def search(
        self,
        session: AsyncSession,
        kind: str,
        candidates: Select[Any],
        query: ParsedQuery,
        limit: int,
    ) -> list[TextHit]:
        if not query.searchable:
            return []
        spec = KIND_SPECS[kind]
        fts = table(spec.fts, column("rowid"))
        weights = ", ".join(["1.0"] * len(spec.columns))
        if kind == "note":
            weights = f"{TITLE_WEIGHT}, 1.0"
        match_expression = to_fts5(query)
        rows = await self._ranked(session, spec, candidates, match_expression, weights, limit)
        if not rows:
            return []
        # snippet() reads the item's text: only for the rows shown, not for every match.
        snippets = dict(
            (
                await session.execute(
                    select(
                        fts.c.rowid,
                        func.snippet(literal_column(spec.fts), -1, OPEN, CLOSE, ELLIPSIS, 24),
                    )
                    .select_from(fts)
                    .where(
                        text(f"{spec.fts} MATCH :fts_query"),
                        fts.c.rowid.in_([row.fts_rowid for row, _ in rows]),
                    ),
                    {"fts_query": match_expression},
                )
            ).all()
        )
        return [
            TextHit(
                kind, row[0], float(score), marked_to_html(snippets.get(row.fts_rowid, "")), row
            )
            for row, score in rows
        ]

    async def _ranked(
        self,
        session: AsyncSession,
        spec: KindSpec,
        candidates: Select[Any],
        match_expression: str,
        weights: str,
        limit: int,
    ) -> list[tuple[Any, float]]:
        """The ``limit`` best candidates that match, with their scores.

        Ranking in FTS5 alone is fast; joined with the candidates first, SQLite would walk
        every candidate row instead. So: the best
        matches of the whole index first (a window a few times ``limit``), then the candidates
        among them; only when filters or other users' items leave too few of a full window,
        every match, ranked in FTS5 before the join as well."""
        fts = table(spec.fts, column("rowid"))
        source_rowid: Any = literal_column(f"{spec.source.__tablename__}.rowid")
        # bm25() is lower for better matches; negated, every backend's score grows with relevance.
        score: Any = (-literal_column(f"bm25({spec.fts}, {weights})")).label("score")
        best = (
            select(fts.c.rowid.label("fts_rowid"), score)
            .select_from(fts)
            .where(text(f"{spec.fts} MATCH :fts_query"))
            .order_by(literal_column("score").desc())
        )
        params = {"fts_query": match_expression}
        window = limit * 4 + 50
        top = (await session.execute(best.limit(window), params)).all()
        if not top:
            return []
        scores = {row.fts_rowid: row.score for row in top}
        found = (
            await session.execute(
                candidates.add_columns(source_rowid.label("fts_rowid")).where(
                    source_rowid.in_(list(scores))
                )
            )
        ).all()
        if len(found) >= limit or len(top) < window:
            ranked = sorted(found, key=lambda row: -scores[row.fts_rowid])[:limit]
            return [(row, scores[row.fts_rowid]) for row in ranked]
        # MATERIALIZED keeps SQLite from folding the ranking into the join.
        hits = best.cte("hits").prefix_with("MATERIALIZED")
        statement = (
            candidates.join(hits, hits.c.fts_rowid == source_rowid)
            .add_columns(hits.c.fts_rowid, hits.c.score)
            .order_by(hits.c.score.desc())
            .limit(limit)
        )
        return [(row, row.score) for row in (await session.execute(statement, params)).all()]


def _by_id(spec: KindSpec, candidates: Select[Any], ids: list[str]) -> Select[Any]:
    """The candidates' rows of a few ids with their texts (``_with_texts``), read by primary
    key. Left to itself, MariaDB may walk the user's index instead (seen: 35 ms for 20 rows of
    a table whose statistics lagged)."""
    return (
        _with_texts(spec, candidates)
        .where(spec.source.id.in_(ids))
        .with_hint(spec.source, "FORCE INDEX (PRIMARY)", "*")
    )


def _with_texts(spec: KindSpec, rows: Select[Any]) -> Select[Any]:
    """``rows`` with the indexed texts the snippets are cut from (``_texts_of``), so the page's
    rows and their texts come in one read instead of two (issue #17)."""
    return rows.add_columns(
        *(column.label(f"snippet_text_{index}") for index, column in enumerate(spec.columns))
    )


def _texts_of(spec: KindSpec, row: Any) -> tuple[str, ...]:
    return tuple(getattr(row, f"snippet_text_{i}") or "" for i in range(len(spec.columns)))


def _best_first(rows: Sequence[Any], column: str) -> bool:
    """Whether ``rows`` come in non-increasing ``column`` order."""
    return all(getattr(a, column) >= getattr(b, column) for a, b in pairwise(rows))


class MysqlFulltext:
    """InnoDB FULLTEXT, reading only the rows a page needs.

    InnoDB ranks every match of the words whenever ``MATCH`` is evaluated (~35 ms for a word in
    46,000 of 100,000 notes); what made a frequent word slow was reading every matching row
    to sort them (~4 µs each: ~200 ms more). With ``MATCH`` as the table's access and no
    ``ORDER BY``, InnoDB hands the matches over best first, so ``LIMIT`` stops after a window of
    them. That order is checked, not assumed: rows that do not come best first are ranked again
    by the server, every match read (the old, slow way).
    """

    def __init__(self) -> None:
        self._token_size: int | None = None

    async def search(
        self,
        session: AsyncSession,
        kind: str,
        candidates: Select[Any],
        query: ParsedQuery,
        limit: int,
    ) -> list[TextHit]:
        if not query.searchable:
            return []
        spec = KIND_SPECS[kind]
        mysql_query = to_mysql(query, await self._min_token(session))
        if not mysql_query.against and not mysql_query.short_words:
            return []  # only stopwords: nothing the index can find
        # Without an indexed word, REGEXP would read every text of the user's: titles only then
        # (a message has none), newest first. With one, it checks what the index found.
        columns = spec.columns if mysql_query.against else spec.columns[:1]
        if not mysql_query.against and kind == "message":
            return []
        conditions = []
        for index, word in enumerate(mysql_query.short_words):
            pattern: Any = bindparam(f"short_{index}", word_regexp(word))
            conditions.append(or_(*[c.regexp_match(pattern) for c in columns]))
        if mysql_query.against:
            scored = await self._ranked(
                session, spec, candidates, mysql_query.against, conditions, limit
            )
        else:
            scored = await self._newest(session, spec, candidates, conditions, limit)
        if not scored:
            return []
        hits = []
        for row, score in scored:
            parts = _texts_of(spec, row)
            snippet = ""
            # The content's best window; the title when only the title matched.
            for part in reversed(parts):
                snippet = build_snippet(part, query)
                if "<mark>" in snippet:
                    break
            hits.append(TextHit(kind, row[0], score, snippet, row))
        return hits

    async def _ranked(
        self,
        session: AsyncSession,
        spec: KindSpec,
        candidates: Select[Any],
        against_text: str,
        conditions: list[Any],
        limit: int,
    ) -> list[tuple[Any, float]]:
        """The ``limit`` best candidates by relevance (plus ``TITLE_WEIGHT`` times the title's
        own relevance, for notes), with their scores.

        1. The ids of the candidates in the index's own order (best relevance first), a window
           of them, with each one's title relevance. When it holds every match, the ranking is
           exact.
        2. Otherwise a note outside the window may still move up on its title: the best title
           matches among the candidates (the title index: small and quick). Those outside the
           window get the window's last relevance, an upper bound of theirs (the exact value
           would mean ranking every match of the words once more), plus their title weight.
        3. The candidates' rows of the best ``limit``.
        """
        source_id = spec.source.id
        against: Any = bindparam("against", against_text)
        relevance: Any = match(*spec.columns, against=against).in_boolean_mode()
        title: Any = None
        columns = [source_id, relevance.label("relevance")]
        if spec.kind == "note":
            title = match(Document.title.expression, against=against).in_boolean_mode()
            columns.append(title.label("title_relevance"))
        matching = candidates.where(relevance > 0, *conditions)

        def weighted(row: Any, base: float | None = None) -> float:
            own = float(row.relevance) if base is None else base
            return own if title is None else own + TITLE_WEIGHT * float(row.title_relevance)

        window = max(WINDOW, limit * 4 + 50)
        ids = matching.with_only_columns(*columns).limit(window)
        top = (await session.execute(ids)).all()
        if not _best_first(top, "relevance"):
            return await self._all_ranked(session, spec, matching, relevance, title, limit)
        scores = {row[0]: weighted(row) for row in top}
        if len(top) == window and title is not None:
            floor = float(top[-1].relevance)
            # MATCH(title) alone: any mention of the combined MATCH would rank every match of
            # the words once more. A title match is a match of the combined index too, unless
            # the query excludes a word that the content holds: checked for those kept.
            titled = (
                candidates.where(title > 0, *conditions)
                .with_only_columns(source_id, literal_column("0").label("relevance"), columns[-1])
                .limit(window)
            )
            extra = [row for row in (await session.execute(titled)).all() if row[0] not in scores]
            if not _best_first(extra, "title_relevance"):
                return await self._all_ranked(session, spec, matching, relevance, title, limit)
            if extra and any(part.startswith("-") for part in against_text.split()):
                kept = set(
                    (
                        await session.scalars(
                            select(source_id).where(
                                source_id.in_([row[0] for row in extra]), relevance > 0
                            )
                        )
                    ).all()
                )
                extra = [row for row in extra if row[0] in kept]
            for row in extra:
                scores[row[0]] = weighted(row, floor)
        # Equal scores: the newest first (ids grow with time).
        best = sorted(scores, key=lambda item: (scores[item], item), reverse=True)[:limit]
        if not best:
            return []
        rows = (await session.execute(_by_id(spec, candidates, best))).all()
        rows.sort(key=lambda row: (scores[row[0]], row[0]), reverse=True)
        return [(row, scores[row[0]]) for row in rows]

    async def _all_ranked(
        self,
        session: AsyncSession,
        spec: KindSpec,
        matching: Select[Any],
        relevance: Any,
        title: Any,
        limit: int,
    ) -> list[tuple[Any, float]]:
        """Every match ranked by the server (reads every matching row)."""
        score: Any = relevance if title is None else relevance + TITLE_WEIGHT * title
        ordered = (
            _with_texts(spec, matching)
            .add_columns(score.label("score"))
            .order_by(literal_column("score").desc())
        )
        rows = (await session.execute(ordered.limit(limit))).all()
        return [(row, float(row.score)) for row in rows]

    async def _newest(
        self,
        session: AsyncSession,
        spec: KindSpec,
        candidates: Select[Any],
        conditions: list[Any],
        limit: int,
    ) -> list[tuple[Any, float]]:
        """Short words only: no relevance to rank by, so the newest first (ids grow with time).
        The matching ids first, with no order for the server to keep (``ORDER BY id`` made it
        walk the user's index and look up every row: ~4x slower than reading the table
        straight through), then the rows of the newest ``limit``."""
        ids_only = candidates.with_only_columns(spec.source.id).where(*conditions)
        ids = sorted((await session.scalars(ids_only)).all(), reverse=True)[:limit]
        if not ids:
            return []
        rows = (await session.execute(_by_id(spec, candidates, ids))).all()
        rows.sort(key=lambda row: row[0], reverse=True)
        return [(row, 1.0) for row in rows]

    async def _min_token(self, session: AsyncSession) -> int:
        if self._token_size is None:
            value = await session.scalar(text("SELECT @@innodb_ft_min_token_size"))
            self._token_size = int(value or 3)
        return self._token_size
