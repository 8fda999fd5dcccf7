"""An aiosqlite connection whose statements each take one trip to the connection's thread.

aiosqlite runs every call on its connection's own thread, and SQLAlchemy's adapter makes four
calls per statement (open a cursor, execute, fetch all rows, close the cursor): four hand-overs
to the thread and four wake-ups of the event loop. Here the cursor does all of it in one trip and
keeps the rows, so a statement costs one hand-over. A transaction's ``BEGIN`` travels with its
first statement, and ending a transaction that never started costs no trip at all. Everything
else (the thread, commit, rollback, close, SQLAlchemy's use of the connection's queue) is
aiosqlite's own.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url

Description = tuple[tuple[Any, ...], ...] | None


def _execute(
    connection: sqlite3.Connection, sql: str, parameters: Any
) -> tuple[Description, int, int | None, list[Any]]:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _executemany(
    connection: sqlite3.Connection, sql: str, parameters: Iterable[Any]
) -> tuple[int, int | None]:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor:
    """The cursor SQLAlchemy's adapter drives: execute runs, reads and closes in one trip;
    fetching reads the kept rows without another."""

    __slots__ = ("_connection", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.arraysize = 1
        self.description: Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        result = await self._connection._execute(
            _execute, self._connection._conn, sql, () if parameters is None else parameters
        )
        self.description, self.rowcount, self.lastrowid, rows = result
        self._rows = deque(rows)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneTripCursor:
        self.rowcount, self.lastrowid = await self._connection._execute(
            _executemany, self._connection._conn, sql, list(parameters)
        )
        self.description = None
        self._rows = deque()
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def fetchall(self) -> Sequence[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


def _begin_then(
    connection: sqlite3.Connection, begin: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    connection.execute(begin)
    return fn(*args, **kwargs)


class OneTripConnection(aiosqlite.Connection):
    _pending_begin: str | None = None

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    def begin(self, statement: str = "BEGIN") -> None:
        """Start a transaction; the statement goes with the next call, in the same trip."""
        self._pending_begin = statement

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        begin, self._pending_begin = self._pending_begin, None
        if begin is None:
            return await super()._execute(fn, *args, **kwargs)
        return await super()._execute(_begin_then, self._conn, begin, fn, *args, **kwargs)

    async def run(self, sql: str, parameters: Any, *, many: bool = False) -> tuple[int, list[Any]]:
        """One statement in one trip, without a cursor object: the rows it changed and the
        rows it returned (``multinotes.driver_sql``)."""
        if many:
            rowcount, _ = await self._execute(_executemany, self._conn, sql, parameters)
            return rowcount, []
        _description, rowcount, _, rows = await self._execute(_execute, self._conn, sql, parameters)
        return rowcount, rows

    def _nothing_to_end(self) -> bool:
        if self._pending_begin is not None:  # begun, but no statement ran: nothing to end
            self._pending_begin = None
            return True
        return self._connection is not None and not self._connection.in_transaction

    async def commit(self) -> None:
        if not self._nothing_to_end():
            await super().commit()

    async def rollback(self) -> None:
        if not self._nothing_to_end():
            await super().rollback()


def connection_factory(url: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """``async_creator`` for SQLAlchemy: the same file and options its aiosqlite dialect would
    open, on a :class:`OneTripConnection`."""
    args, options = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    options["timeout"] = 30
    database: str = args[0]

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(database, **options)

    async def create() -> aiosqlite.Connection:
        connection = OneTripConnection(connect, iter_chunk_size=64)
        # Like SQLAlchemy's own connect: a daemon thread never holds up interpreter exit.
        connection._thread.daemon = True
        return await connection

    return create
