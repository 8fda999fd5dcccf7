"""The SQL statements an app sends while a block runs, as its engines see them: a test says
which reads or writes a feature costs (a cache that answers from memory, no write per chunk)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from multinotes import driver_sql
from multinotes.keys import DB


class Statements:
    """``with Statements(app, where) as seen:`` collects each statement ``where`` keeps, on the
    app's engine and on its read engine when that has a pool of its own (on SQLite the read
    engine is a view of the main one, whose listeners hear its statements already): those sent
    through SQLAlchemy and those sent at the driver (``multinotes.driver_sql``)."""

    def __init__(self, app: Any, where: Callable[[str], bool] = lambda statement: True) -> None:
        db = app[DB]
        engines: dict[int, Any] = {}
        for engine in (db.engine, db.read_engine):
            engines.setdefault(id(engine.sync_engine.pool), engine.sync_engine)
        self.engines = list(engines.values())
        self.where = where
        self.seen: list[str] = []

    def __enter__(self) -> list[str]:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._heard)
            driver_sql.listen(engine.pool, self._heard_at_driver)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._heard)
            driver_sql.remove(engine.pool, self._heard_at_driver)

    def _heard(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._heard_at_driver(statement)

    def _heard_at_driver(self, statement: str) -> None:
        if self.where(statement):
            self.seen.append(statement)


def selects_from(table: str) -> Callable[[str], bool]:
    """Keeps SELECTs that read ``table`` (named anywhere in them, quoted or not)."""
    reads = re.compile(rf"\b{re.escape(table)}\b")
    return lambda statement: (
        statement.lstrip().upper().startswith("SELECT") and bool(reads.search(statement))
    )


def mentions(*tables: str) -> Callable[[str], bool]:
    """Keeps statements naming any of ``tables``."""
    return lambda statement: any(table in statement for table in tables)
