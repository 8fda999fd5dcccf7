"""A per-process cache of each user's own embeddings, so a semantic (or hybrid) search does not
read every vector from the database each time: at 100,000 notes that read alone takes over half
a second, while the dot products take milliseconds.

An entry holds one owner's vectors of one kind as a float32 matrix. Every search checks it
against the database with one query on an index (how many rows, the newest ``updated_at``):
newer rows are read and merged, a changed count (something was deleted) reloads the entry. So a
change made through any process is seen by the next search in every process, and nothing here
needs to be told about changes. The cache is bounded (least recently used entries go first);
an owner with more vectors than the whole budget is not cached and is searched from the
database, as without a cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.search.models import SearchEmbedding
from multinotes.search.semantic import DIMENSIONS, MODEL

if TYPE_CHECKING:  # numpy loads with the first semantic search or embedding, not with every process
    import numpy as np

#: Bytes of vectors kept per process (float32: 1 KiB per item, about 130,000 items).
DEFAULT_BUDGET = 128 * 1024 * 1024


@dataclass
class _Entry:
    ids: list[str]
    position: dict[str, int]
    matrix: np.ndarray
    count: int
    newest: datetime | None
    used: float = field(default_factory=time.monotonic)

    @property
    def size(self) -> int:
        return int(self.matrix.nbytes)


def _unpack(vectors: list[bytes]) -> np.ndarray:
    import numpy as np

    if not vectors:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    packed = np.frombuffer(b"".join(vectors), dtype=np.float16)
    return packed.reshape(len(vectors), DIMENSIONS).astype(np.float32)


class VectorCache:
    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    async def vectors(
        self, session: AsyncSession, user_id: str, kind: str, item_of: Any
    ) -> tuple[list[str], np.ndarray] | None:
        """Item ids and their vectors (one row each) for ``user_id``'s items of ``kind``;
        ``item_of`` is the column of ``search_embeddings`` naming the item. None when they do
        not fit in the budget."""
        E = SearchEmbedding
        mine = (E.user_id == user_id, E.kind == kind)
        count, newest = (
            await session.execute(select(func.count(), func.max(E.updated_at)).where(*mine))
        ).one()
        if count * DIMENSIONS * 4 > self.budget:
            self._entries.pop((user_id, kind), None)
            return None
        key = (user_id, kind)
        entry = self._entries.get(key)
        if entry is not None and (entry.count, entry.newest) != (count, newest):
            entry = await self._refresh(session, entry, mine, item_of, count, newest)
        if entry is None:
            rows = (await session.execute(select(item_of, E.vector, E.model).where(*mine))).all()
            current = [(i, v) for i, v, model in rows if model == MODEL]
            ids = [i for i, _ in current]
            entry = _Entry(
                ids, {i: n for n, i in enumerate(ids)}, _unpack([v for _, v in current]),
                count, newest,
            )  # fmt: skip
        entry.used = time.monotonic()
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict()
        return entry.ids, entry.matrix

    async def _refresh(
        self,
        session: AsyncSession,
        entry: _Entry,
        mine: tuple[Any, ...],
        item_of: Any,
        count: int,
        newest: datetime | None,
    ) -> _Entry | None:
        """Merge what changed since ``entry`` was read; None if it must be read again."""
        import numpy as np

        E = SearchEmbedding
        if entry.newest is None or newest is None or newest < entry.newest:
            return None
        # ">=": a row written in the same instant as the newest one read may be new too.
        rows = (
            await session.execute(
                select(item_of, E.vector, E.model).where(*mine, E.updated_at >= entry.newest)
            )
        ).all()
        added_ids: list[str] = []
        added: list[bytes] = []
        matrix = entry.matrix
        for item_id, vector, model in rows:
            if model != MODEL:
                continue
            at = entry.position.get(item_id)
            if at is None:
                added_ids.append(item_id)
                added.append(vector)
            else:
                if matrix is entry.matrix:
                    matrix = matrix.copy()  # searches in flight keep the matrix they got
                matrix[at] = _unpack([vector])[0]
        ids = entry.ids + added_ids
        if len(ids) != count:
            return None  # something was deleted (or is of another model): read it all again
        matrix = np.concatenate([matrix, _unpack(added)]) if added else matrix
        position = dict(entry.position)
        position.update({i: len(entry.ids) + n for n, i in enumerate(added_ids)})
        return _Entry(ids, position, matrix, count, newest)

    def _evict(self) -> None:
        total = sum(e.size for e in self._entries.values())
        while total > self.budget and len(self._entries) > 1:
            _, oldest = self._entries.popitem(last=False)
            total -= oldest.size


#: The app's cache (``multinotes.search.setup_search``).
VECTORS: web.AppKey[VectorCache] = web.AppKey("search_vectors", VectorCache)
