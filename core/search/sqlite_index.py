"""Upkeep of the SQLite full-text index (embedded mode).

The FTS5 tables are external-content tables over ``documents``, ``conversations`` and
``messages``, kept in sync by triggers on those tables (created by the search migration). A
later migration that rebuilds one of those tables in SQLite batch mode (copy, drop, rename)
loses its triggers with the dropped table, and the index would silently go stale. So at every
start the app checks that each FTS table and trigger is there; whatever is missing is created
again and the index rebuilt from the tables (``'rebuild'``), which also repairs an index whose
rowids no longer match its table.
"""

from __future__ import annotations

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

#: FTS table → (source table, indexed columns). The same as the search migration's.
FTS = {
    "documents_fts": ("documents", ("title", "content")),
    "conversations_fts": ("conversations", ("title",)),
    "messages_fts": ("messages", ("content",)),
}
TOKENIZE = "unicode61 remove_diacritics 2"


def schema(fts: str) -> dict[str, str]:
    """The FTS table's and its triggers' names → the statements that create them."""
    source, columns = FTS[fts]
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    # Every name here is one of FTS's constants: nothing comes from outside.
    remove = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.rowid, {old});"  # noqa: S608
    add = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.rowid, {new});"  # noqa: S608
    return {
        fts: (
            f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{source}', "
            f"content_rowid='rowid', tokenize='{TOKENIZE}')"
        ),
        f"{fts}_ai": f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {source} BEGIN {add} END",
        f"{fts}_ad": f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {source} BEGIN {remove} END",
        f"{fts}_au": (
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {cols} ON {source} BEGIN {remove} {add} END"
        ),
    }


async def ensure_index(engine: AsyncEngine) -> list[str]:
    """Create what is missing of the FTS tables and triggers, and rebuild an index that had
    anything missing; returns the names that were missing."""
    async with engine.begin() as connection:
        present = set(
            (
                await connection.execute(
                    text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
                )
            ).scalars()
        )
        repaired: list[str] = []
        for fts in FTS:
            wanted = schema(fts)
            missing = [name for name in wanted if name not in present]
            if not missing:
                continue
            for name in missing:
                await connection.execute(text(wanted[name]))
            rebuild = f"INSERT INTO {fts}({fts}) VALUES ('rebuild')"  # noqa: S608 - a constant
            await connection.execute(text(rebuild))
            repaired += missing
    if repaired:
        log.warning("search_index_repaired", missing=repaired)
    return repaired
