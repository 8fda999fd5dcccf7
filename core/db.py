"""Database plumbing: declarative base, column types, engine and session factory.

One engine per app (never a module global), ``expire_on_commit=False`` so loaded rows stay usable
after the short transaction that loaded them.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar, cast

import structlog
from sqlalchemy import DateTime, MetaData, Row, Select, String, TypeDecorator, event
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import CursorResult, Dialect, Result
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from multinotes.driver_sql import DriverTransaction
from multinotes.sqlite_driver import connection_factory

#: ``session.info`` key of the domain events a transaction staged (``multinotes.domain_events``).
STAGED_EVENTS = "staged_domain_events"

log = structlog.get_logger(__name__)
T = TypeVar("T")
S = TypeVar("S", bound=StrEnum)

# Stable constraint names on SQLite and MySQL alike, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_id() -> str:
    """A 32-hex-character id that sorts by creation time (good for cursors and indexes)."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed. ``AsyncSession.execute`` is typed to return a
    plain ``Result``; for those statements it is a ``CursorResult``, which counts them."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (MySQL DATETIME has no zone) and always hands back aware UTC."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        # MySQL's DATETIME drops fractions by default; keep microseconds so rows created in the
        # same second still sort in creation order.
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_text(column: Any, name: str | None = None) -> Any:
    """A ``UTCDateTime`` column selected as the database's text (``YYYY-MM-DD HH:MM:SS.ffffff``),
    for ``iso_utc``: a list that only prints its timestamps skips the driver's datetime parsing
    and the aware datetime built per value (a tenth of a list request's CPU on MariaDB)."""
    return sql_cast(column, String).label(name or column.key)


def iso_utc(text: str) -> str:
    """``datetime.isoformat()`` of the aware UTC datetime a ``utc_text`` column holds."""
    if len(text) == 26 and text[10] == " " and text[19] == ".":  # what both backends store
        if text.endswith(".000000"):
            return f"{text[:10]}T{text[11:19]}+00:00"
        return f"{text[:10]}T{text[11:]}+00:00"
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


class StrEnumType(TypeDecorator[S]):
    """A status column: stored as the enum's plain string value (a VARCHAR, the same column and
    values as before it was an enum, so no migration), handed back as the enum member. Storing
    a value the enum does not have raises ``ValueError`` instead of writing it."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[S], length: int = 16) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> S | None:
        return None if value is None else self.enum(value)


#: Execution option of ``Database.read``'s engine on SQLite: no BEGIN for its sessions.
SQLITE_NO_BEGIN = "sqlite_no_begin"

#: A pooled MariaDB connection that went back to the pool less than this long ago is handed
#: out as it is; one idle for longer is pinged first (a dead one replaced). ``pool_pre_ping``
#: pinged on every checkout: a round trip per session, ~5 per chat request.
IDLE_PING_SECONDS = 10.0


def create_engine(url: str, *, echo: bool = False, read_only: bool = False) -> AsyncEngine:
    """The engine for ``url``. ``read_only`` (MariaDB only): a pool in autocommit mode for
    ``Database.read``, where a session that only read ends without a ROLLBACK round trip."""
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        # No second ROLLBACK when a connection goes back to the pool: every transaction has
        # already been committed or rolled back by then, and on SQLite each call is a trip to
        # the connection's thread.
        kwargs.update(async_creator=connection_factory(url), pool_reset_on_return=None)
    else:
        # Two pools (writes, reads) of at most 15 connections each: the 30 one pool had.
        # No reset (a ROLLBACK) when a connection goes back: the session has committed or
        # rolled back already (a Connection closed mid-transaction rolls it back itself).
        kwargs.update(pool_recycle=1800, pool_size=5, max_overflow=10, pool_reset_on_return=None)
        if read_only:
            # Each SELECT sees what is committed when it runs (no snapshot held between the
            # statements of one read session), and nothing is left to roll back.
            kwargs.update(isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _tune_sqlite(engine)
    else:
        _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("checked_in")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and checks out another (a fresh one if need be).
            raise DisconnectionError(f"idle connection is gone: {exc}") from exc


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run beside the single writer; foreign keys are off by default in SQLite.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # pysqlite's own transaction handling defers BEGIN; take it over so that
    # `session.begin()` starts a real (immediate) transaction and writers serialise cleanly.
    @event.listens_for(engine.sync_engine, "connect")
    def _no_pysqlite_tx(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(SQLITE_NO_BEGIN):
            return  # Database.read: each statement on its own, nothing to end (no trip)
        # Write transactions take the write lock up front (no deadlocking lock upgrades later).
        immediate = options.get("sqlite_immediate", False)
        # Sent with the transaction's first statement (see multinotes.sqlite_driver): every trip
        # to the connection's thread counts, and a request makes dozens.
        conn.connection.driver_connection.begin("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The engine and its session factory.

    ``async with db.transaction() as s`` is one unit of work."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        # Reads run without a transaction, so a session that only read has nothing to roll
        # back: on MariaDB through their own autocommit pool (``create_engine(read_only=)``),
        # on SQLite on the same pool without the BEGIN (each statement its own transaction).
        if read_engine is None:
            if engine.dialect.name == "sqlite":
                read_engine = engine.execution_options(**{SQLITE_NO_BEGIN: True})
            else:
                read_engine = create_engine(
                    engine.url.render_as_string(hide_password=False),
                    echo=bool(engine.echo),
                    read_only=True,
                )
        self.read_engine = read_engine
        #: This database's own session class: session event listeners go on it (not on
        #: ``Session``, which every app in the process shares).
        self.session_class: type[Session] = type("DatabaseSession", (Session,), {})
        self.sessions = async_sessionmaker(
            engine, expire_on_commit=False, sync_session_class=self.session_class
        )
        self.read_session_class: type[Session] = type("ReadSession", (Session,), {})
        _refuse_writes(self.read_session_class)
        self.read_sessions = async_sessionmaker(
            self.read_engine,
            expire_on_commit=False,
            autoflush=False,
            sync_session_class=self.read_session_class,
        )
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer at a time. Queueing writers here, in the event loop, beats
        # queueing them in SQLite's busy handler, which sleeps up to 100 ms per retry.
        self._write_lock: asyncio.Lock | None = None
        #: Receives the domain events a transaction staged, after its commit (the event bus).
        self.after_commit: Callable[[list[Any]], Awaitable[None]] | None = None
        #: Called with a committed transaction's ``session.info``, in order, after its commit
        #: (before ``after_commit``): what listeners noted during the transaction.
        self.on_commit: list[Callable[[dict[str, Any]], Awaitable[None]]] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work. Domain events staged in it (``domain_events.stage``) go to
        ``after_commit`` once it committed, outside any lock; a rollback drops them."""
        staged: list[Any] = []
        async with self._unit_of_work() as session:
            session.info[STAGED_EVENTS] = staged
            yield session
            info = session.info
        await self._committed(info, staged)

    async def _committed(self, info: dict[str, Any], staged: list[Any]) -> None:
        for hook in self.on_commit:
            await hook(info)
        if staged and self.after_commit is not None:
            await self.after_commit(staged)

    @asynccontextmanager
    async def driver_transaction(self) -> AsyncIterator[DriverTransaction]:
        """``transaction()`` for prebuilt statements only (``multinotes.driver_sql``): no ORM
        session and no SQLAlchemy connection around them, for the few units of work every chat
        answer runs. Staged domain events and ``on_commit`` hooks work as in ``transaction()``;
        so do SQLite's one writer at a time and its immediate write lock."""
        staged: list[Any] = []
        info: dict[str, Any] = {STAGED_EVENTS: staged}
        async with self._writer(), self._driver_connection(self.engine, transaction=True) as driver:
            yield DriverTransaction(driver, self.engine.dialect, self.engine.pool, info)
        await self._committed(info, staged)

    def _writer(self) -> AbstractAsyncContextManager[Any]:
        """SQLite's one writer at a time, queued here in the event loop (its busy handler
        sleeps up to 100 ms per retry); nothing to queue on MariaDB."""
        if not self.is_sqlite:
            return nullcontext()
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    @asynccontextmanager
    async def driver_read(self) -> AsyncIterator[DriverTransaction]:
        """A read-pool connection for prebuilt SELECTs (``multinotes.driver_sql``): like
        ``read_connection()``, nothing is committed."""
        async with self._driver_connection(self.read_engine, transaction=False) as driver:
            yield DriverTransaction(driver, self.engine.dialect, self.read_engine.pool, {})

    @asynccontextmanager
    async def _driver_connection(self, engine: AsyncEngine, *, transaction: bool) -> Any:
        """A pooled connection's driver connection; with ``transaction``, one that commits at
        the end or rolls back on an error (SQLite's immediate BEGIN goes with the first
        statement; MariaDB begins implicitly)."""
        pooled: PoolProxiedConnection = await engine.raw_connection()
        driver: Any = pooled.driver_connection
        reusable = False
        try:
            if transaction and self.is_sqlite:
                driver.begin("BEGIN IMMEDIATE")
            yield driver
            if transaction:
                await driver.commit()
            reusable = True
        except Exception as exc:
            if isinstance(exc, DBAPIError) and engine.dialect.is_disconnect(
                cast(Any, exc.orig), pooled.dbapi_connection, None
            ):
                raise
            try:
                if transaction:
                    await driver.rollback()
                reusable = True
            except Exception:
                log.warning("driver_rollback_failed", exc_info=True)
            raise
        finally:
            # Not reusable: cancelled (the driver may be mid-statement, its protocol state
            # unknown), disconnected, or not rolled back. Closed, not pooled; the server rolls
            # back what it had begun.
            if not reusable:
                await greenlet_spawn(pooled.invalidate)
            await greenlet_spawn(pooled.close)

    @asynccontextmanager
    async def _unit_of_work(self) -> AsyncIterator[AsyncSession]:
        async with self._writer(), self.sessions() as session, session.begin():
            if self.is_sqlite:
                await session.connection(execution_options={"sqlite_immediate": True})
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; nothing is committed (a write is refused)."""
        async with self.read_sessions() as session:
            yield session

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection of the read pool: no ORM session (identity map, events, result
        wrapping) around reads that build no entities. Nothing is committed; like ``read()``
        it is for reads only (on MariaDB the pool is in autocommit mode)."""
        async with self.read_engine.connect() as connection:
            yield connection

    async def read_rows(self, statement: Select[Any]) -> list[Row[Any]]:
        """The rows of one SELECT through ``read_connection``. For the hot lists; a read that
        needs entities uses ``read()``."""
        async with self.read_connection() as connection:
            return list((await connection.execute(statement)).all())

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine.sync_engine.pool is not self.engine.sync_engine.pool:
            await self.read_engine.dispose()


def _refuse_writes(session_class: type[Session]) -> None:
    """A read session may run in autocommit mode: a write in it would not wait for a commit
    that never comes, it would be kept. Refuse it instead, whatever the backend."""

    @event.listens_for(session_class, "do_orm_execute")
    def _no_write_statements(state: Any) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            raise RuntimeError("Database.read() is for reads; write in Database.transaction()")

    @event.listens_for(session_class, "before_flush")
    def _no_flush(session: Session, _flush: Any, _instances: Any) -> None:
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("Database.read() is for reads; write in Database.transaction()")


#: MySQL's "Deadlock found when trying to get lock" and "Lock wait timeout exceeded": the
#: transaction was rolled back and may simply be run again.
RETRYABLE_DB_ERRORS = (1213, 1205)
DB_ATTEMPTS = 8


async def retrying(work: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``work`` (one whole transaction) again when the database rolled it back for a
    deadlock or a lock wait timeout, a few times with a short random backoff."""
    for attempt in range(DB_ATTEMPTS):
        try:
            return await work()
        except DBAPIError as exc:
            args = getattr(exc.orig, "args", None) or (None,)
            if args[0] not in RETRYABLE_DB_ERRORS or attempt == DB_ATTEMPTS - 1:
                raise
            log.warning("transaction_retried", what=what, code=args[0], attempt=attempt + 1)
            await asyncio.sleep(random.uniform(0.01, 0.05) * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
