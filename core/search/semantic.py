"""Semantic search: embeddings from WordLlama, compared by cosine similarity in numpy.

WordLlama (``wordllama`` on PyPI) ships its weights and tokenizer inside the wheel and needs
only numpy on the CPU: it is loaded from the installed package with downloads disabled, so
nothing is fetched at run time. Vectors are stored unit-length as float16 (512 bytes each), so
a dot product is the cosine similarity.

Items are embedded in background tasks (``multinotes.search.tasks``); a query is embedded in
the request (a fraction of a millisecond).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.search.models import SearchEmbedding

if TYPE_CHECKING:  # numpy loads with the first semantic search or embedding, not with every process
    import numpy as np

MODEL = "wordllama/l2_supercat-256"
DIMENSIONS = 256
#: Below this cosine similarity an item is not shown as a semantic match, nor below this share
#: of the best match's (WordLlama's similarities are low and bunched: an unrelated text often
#: scores 0.1 to 0.2, a paraphrase 0.25 to 0.5).
MIN_SIMILARITY = 0.2
RELATIVE_CUT = 0.5
#: How much of a long text is embedded (WordLlama averages its tokens: more adds little).
MAX_CHARS = 8000


@functools.cache
def _model() -> Any:
    # Cached per process: the weights are read-only data of the installed package, the same
    # for every app, and loading them takes a noticeable fraction of a second.
    import wordllama

    return wordllama.WordLlama.load(
        config="l2_supercat",
        dim=DIMENSIONS,
        cache_dir=Path(wordllama.__file__).parent,
        disable_download=True,
    )


def embed_now(texts: list[str]) -> np.ndarray:
    """Unit-length float32 vectors, one row per text (CPU work: call from a thread)."""
    import numpy as np

    vectors = np.asarray(_model().embed([t[:MAX_CHARS] for t in texts]), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


async def embed(texts: list[str]) -> np.ndarray:
    return await asyncio.to_thread(embed_now, texts)


def to_bytes(vector: np.ndarray) -> bytes:
    import numpy as np

    return vector.astype(np.float16).tobytes()


def text_hash(text: str) -> str:
    return hashlib.sha256(f"{MODEL}\n{text}".encode()).hexdigest()


@dataclass
class SemanticHit:
    kind: str
    id: str
    score: float
    row: Any


async def search(
    session: AsyncSession,
    kind: str,
    candidates: Select[Any],
    item_id: Any,
    embedding_of: Any,
    query_vector: np.ndarray,
    limit: int,
) -> list[SemanticHit]:
    """The ``limit`` candidates most similar to ``query_vector`` (above ``MIN_SIMILARITY``).

    ``item_id`` is the candidates' id column and ``embedding_of`` the column of
    ``search_embeddings`` that names an item of this kind. Every candidate's vector is read
    (ids and vectors only), the best ones get their full rows."""
    import numpy as np

    vectors = (
        candidates.with_only_columns(item_id, SearchEmbedding.vector, maintain_column_froms=True)
        .join(SearchEmbedding, embedding_of == item_id)
        .where(SearchEmbedding.model == MODEL)
    )
    pairs = (await session.execute(vectors)).all()
    if not pairs:
        return []
    matrix = np.frombuffer(b"".join(vector for _, vector in pairs), dtype=np.float16)
    scores = matrix.reshape(len(pairs), DIMENSIONS).astype(np.float32) @ query_vector
    order = [i for i in np.argsort(-scores, kind="stable")[:limit] if scores[i] >= MIN_SIMILARITY]
    if not order:
        return []
    best = {pairs[i][0]: float(scores[i]) for i in order}
    rows = await _candidates_among(session, candidates, item_id, list(best))
    return [SemanticHit(kind, i, score, rows[i]) for i, score in best.items() if i in rows]


#: Past this many ids, checking the best cached matches against the candidates one window at a
#: time is no longer worth it: the candidates are read from the database instead.
MAX_WINDOW = 5000


async def search_among(
    session: AsyncSession,
    kind: str,
    candidates: Select[Any],
    item_id: Any,
    ids: list[str],
    matrix: np.ndarray,
    query_vector: np.ndarray,
    limit: int,
) -> list[SemanticHit] | None:
    """As ``search``, over vectors already in memory (``ids[i]`` has ``matrix[i]``): the most
    similar first, kept if they are candidates (the filters, the trash). None when the filters
    leave so few that the database should be asked instead."""
    import numpy as np

    if not ids:
        return []
    scores = matrix @ query_vector
    above = np.flatnonzero(scores >= MIN_SIMILARITY)
    order = above[np.argsort(-scores[above], kind="stable")]
    window = limit * 4 + 50
    while True:
        chosen = [ids[i] for i in order[:window]]
        if not chosen:
            return []
        rows = await _candidates_among(session, candidates, item_id, chosen)
        hits = [
            SemanticHit(kind, ids[i], float(scores[i]), rows[ids[i]])
            for i in order[:window]
            if ids[i] in rows
        ]
        if len(hits) >= limit or window >= len(order):
            return hits[:limit]
        window *= 4
        if window > MAX_WINDOW:
            return None


async def _candidates_among(
    session: AsyncSession, candidates: Select[Any], item_id: Any, ids: list[str]
) -> dict[str, Any]:
    """The candidates' rows of ``ids``, by id. On SQLite the ids become rowids first: without
    table statistics its planner would rather walk the owner's index (a user's every row) than
    look ``id IN (...)`` up, while a rowid is part of every index key."""
    condition: Any = item_id.in_(ids)
    if session.get_bind().dialect.name == "sqlite":
        rowid: Any = literal_column(f"{item_id.table.name}.rowid")
        found = await session.execute(select(rowid).where(item_id.in_(ids)))
        condition = rowid.in_([r for (r,) in found.all()])
    result = await session.execute(candidates.where(condition))
    return {row[0]: row for row in result.all()}


def close_enough(hits: list[SemanticHit]) -> list[SemanticHit]:
    """``hits`` (best first, of every kind) without those far below the best one."""
    if not hits:
        return hits
    floor = hits[0].score * RELATIVE_CUT
    return [h for h in hits if h.score >= floor]
