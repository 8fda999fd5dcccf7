"""Prebuilt statements sent straight to the database driver: the few every answer sends.

SQLAlchemy's execution path costs more CPU than the round trip it wraps (issue #17,
``bench/README.md``, fifteenth round): a greenlet hop for each cursor call, an execution context
and a result object per statement, and an ORM session or a Core transaction per unit of work.
For the statements every chat answer sends (its conversation read, the hold, its rows, the
settlement) that is most of the server's CPU per answer.

A ``DriverStatement`` is still a Core statement, compiled by SQLAlchemy, once per dialect and
set of parameter names: the SQL, the conversion of bound values (UTC datetimes, enums, JSON),
Python-side defaults and ``onupdate`` values, and the conversion of result values are all
SQLAlchemy's. Only the execution is done here: one driver cursor per statement, on a
connection from the engine's own pool (``Database.driver_transaction``, ``driver_read``) or on
the connection of an ORM session's transaction (``within``). Driver errors are raised as
SQLAlchemy's ``DBAPIError`` subclasses (``IntegrityError``, ...), as ``session.execute`` raises
them, so callers and ``db.retrying`` see the same exceptions on either path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import Pool
from sqlalchemy.sql import ClauseElement, Select

Params = Mapping[str, Any]
Processor = Callable[[Any], Any] | None
Listener = Callable[[str], None]

#: Who hears the SQL of each driver statement sent on a pool's connections (``listen``).
_LISTENERS: WeakKeyDictionary[Pool, list[Listener]] = WeakKeyDictionary()


def listen(pool: Pool, listener: Listener) -> None:
    """Call ``listener`` with the SQL of each driver statement sent on ``pool``'s connections:
    what SQLAlchemy's ``before_cursor_execute`` is to its own statements (tests and benches
    count both). Not that event itself: its listeners (Sentry's among them) expect a
    SQLAlchemy connection and an execution context, which a driver statement has not."""
    _LISTENERS.setdefault(pool, []).append(listener)


def remove(pool: Pool, listener: Listener) -> None:
    _LISTENERS.get(pool, []).remove(listener)


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where one positional parameter's value comes from."""

    #: The caller's parameter of this name.
    name: str
    #: The value when the caller gave none: a Python-side default or onupdate (called), or the
    #: value bound into the statement itself.
    fallback: Callable[[], Any] | None
    processor: Processor


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    slots: tuple[_Slot, ...]
    #: Per result column: the conversion of the driver's value (None: taken as it is).
    results: tuple[Processor, ...]

    def parameters(self, params: Params) -> tuple[Any, ...]:
        values = []
        for slot in self.slots:
            if slot.name in params:
                value = params[slot.name]
            elif slot.fallback is not None:
                value = slot.fallback()
            else:
                raise KeyError(f"no value for the parameter {slot.name!r}")
            values.append(value if slot.processor is None else slot.processor(value))
        return tuple(values)

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(raw, self.results, strict=True)
        )


def _fallback_of(default: Any) -> Callable[[], Any] | None:
    """A column's Python-side default or onupdate as a function of no arguments."""
    if default is None or default.is_sequence or default.is_clause_element:
        return None
    if default.is_callable:
        # SQLAlchemy wraps a default that takes no context as ``lambda context: fn()``; the
        # hot statements' tables use only such defaults (``new_id``, ``utcnow``, ``dict``).
        function = default.arg
        return lambda: function(None)
    value = default.arg
    return lambda: value


class DriverStatement:
    """A Core statement run at the driver (``DriverTransaction``). Built once, at import."""

    __slots__ = ("_compiled", "keys", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, frozenset[str]], Compiled] = {}
        #: The names of a SELECT's result columns, in order (``dict(zip(keys, row))``).
        self.keys: tuple[str, ...] = (
            tuple(str(column.key) for column in statement.selected_columns)
            if isinstance(statement, Select)
            else ()
        )

    def mapping(self, row: Sequence[Any]) -> dict[str, Any]:
        """A SELECT's row by column name (``Entity(**statement.mapping(row))``)."""
        return dict(zip(self.keys, row, strict=True))

    def compiled(self, dialect: Dialect, names: Iterable[str]) -> Compiled:
        names = frozenset(names)
        cache_key = (dialect.name, names)
        found = self._compiled.get(cache_key)
        if found is None:
            found = self._compiled[cache_key] = self._compile(dialect, names)
        return found

    def _compile(self, dialect: Dialect, names: frozenset[str]) -> Compiled:
        compiled: Any = self.statement.compile(dialect=dialect, column_keys=sorted(names))
        if not compiled.positional:
            raise TypeError(f"{dialect.name}: a positional paramstyle is expected")
        prefetched = {
            column.key: _fallback_of(column.default) for column in compiled.insert_prefetch
        } | {column.key: _fallback_of(column.onupdate) for column in compiled.update_prefetch}
        slots = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            fallback = prefetched.get(name)
            if fallback is None and name not in names and not bind.required:
                fixed = bind.effective_value

                def fallback(fixed: Any = fixed) -> Any:
                    return fixed

            slots.append(_Slot(name, fallback, processor))
        results: list[Processor] = []
        if isinstance(self.statement, Select):
            for column in self.statement.selected_columns:
                results.append(column.type.dialect_impl(dialect).result_processor(dialect, None))
        return Compiled(compiled.string, tuple(slots), tuple(results))


class DriverTransaction:
    """Statements on one driver connection, in one transaction that the owner ends.

    ``info`` is what ``session.info`` is to a ``Database.transaction``: domain events staged
    (``domain_events.stage``) and what listeners noted, handed on once it committed."""

    __slots__ = ("_driver", "_pool", "_run", "dialect", "info")

    def __init__(self, driver: Any, dialect: Dialect, pool: Pool, info: dict[str, Any]) -> None:
        self._driver = driver
        self._pool = pool
        self.dialect = dialect
        self.info = info
        self._run = _run_sqlite if dialect.name == "sqlite" else _run_mysql

    async def execute(self, statement: DriverStatement, params: Params) -> int:
        """Run one statement; the number of rows it changed (or matched, on MariaDB)."""
        compiled = statement.compiled(self.dialect, params)
        rowcount, _rows = await self._call(compiled, compiled.parameters(params), many=False)
        return rowcount

    async def execute_many(self, statement: DriverStatement, rows: Sequence[Params]) -> None:
        """Run one statement for each of ``rows`` (all with the same names): one multi-row
        INSERT on MariaDB, one trip to the connection's thread on SQLite."""
        if not rows:
            return
        compiled = statement.compiled(self.dialect, rows[0])
        values = [compiled.parameters(row) for row in rows]
        if len(values) == 1:
            await self._call(compiled, values[0], many=False)
        else:
            await self._call(compiled, values, many=True)

    async def rows(self, statement: DriverStatement, params: Params) -> list[tuple[Any, ...]]:
        compiled = statement.compiled(self.dialect, params)
        _count, raw = await self._call(compiled, compiled.parameters(params), many=False)
        return [compiled.row(row) for row in raw]

    async def first(self, statement: DriverStatement, params: Params) -> tuple[Any, ...] | None:
        found = await self.rows(statement, params)
        return found[0] if found else None

    async def scalar(self, statement: DriverStatement, params: Params) -> Any:
        found = await self.first(statement, params)
        return None if found is None else found[0]

    async def _call(self, compiled: Compiled, values: Any, *, many: bool) -> tuple[int, list[Any]]:
        listeners = _LISTENERS.get(self._pool)
        if listeners:
            for listener in listeners:
                listener(compiled.sql)
        try:
            return await self._run(self._driver, self.dialect, compiled.sql, values, many)
        except self.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                compiled.sql, values, exc, self.dialect.loaded_dbapi.Error, dialect=self.dialect
            ) from exc


async def _run_mysql(
    driver: Any, dialect: Dialect, sql: str, values: Any, many: bool
) -> tuple[int, list[Any]]:
    # The cursor class SQLAlchemy's adapter uses: aiomysql's, without its SHOW WARNINGS.
    cursor = await driver.cursor(dialect.loaded_dbapi.Cursor)
    try:
        if many:
            await cursor.executemany(sql, values)
            return cursor.rowcount, []
        await cursor.execute(sql, values)
        rows = await cursor.fetchall() if cursor.description else ()
        return cursor.rowcount, list(rows)
    finally:
        await cursor.close()


async def _run_sqlite(
    driver: Any, _dialect: Dialect, sql: str, values: Any, many: bool
) -> tuple[int, list[Any]]:
    return await driver.run(sql, values, many=many)  # one trip (``sqlite_driver``)


async def within(session: AsyncSession) -> DriverTransaction:
    """The driver connection of ``session``'s transaction (``Database.transaction``), to run
    driver statements in it: they commit or roll back with the session's own."""
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    return DriverTransaction(
        pooled.driver_connection, connection.dialect, connection.sync_engine.pool, session.info
    )
