"""The embedded database's driver: every statement is one trip to SQLite's connection thread.

aiosqlite hands every call to the connection's own thread and SQLAlchemy's adapter makes four
such calls per statement; each trip costs a thread hand-over and an event-loop wake-up (~80 us
here), and a chat request runs a dozen statements before its first token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from multinotes.db import Database, create_engine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"))
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield database
    await database.close()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to SQLite's connection threads, in order."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return sent


async def test_a_read_is_one_trip_for_the_statement(db, trips):
    async with db.transaction() as session:
        await session.execute(insert(things).values(name="kettle"))
    trips.clear()

    async with db.read() as session:
        names = list(await session.scalars(select(things.c.name)))

    assert names == ["kettle"]
    # Database.read runs no transaction on SQLite: no BEGIN, so no rollback to end it.
    assert len(trips) == 1


async def test_a_write_transaction_is_one_trip_per_statement_plus_the_commit(db, trips):
    async with db.transaction() as session:
        await session.execute(insert(things).values(name="kettle"))
        await session.execute(update(things).values(name="teapot"))

    assert len(trips) == 3


async def test_ending_a_transaction_that_ran_nothing_costs_no_trip(db, trips):
    async with db.transaction():
        pass
    async with db.read():
        pass
    assert trips == []


async def test_statements_inside_a_transaction_see_its_writes_and_a_rollback_undoes_them(db):
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(insert(things).values(name="kettle"))
            assert await session.scalar(select(things.c.name)) == "kettle"
            raise RuntimeError("abandon")

    async with db.read() as session:
        assert await session.scalar(select(things.c.name)) is None


async def test_rows_rowcount_lastrowid_returning_and_executemany(db):
    async with db.transaction() as session:
        result = await session.execute(insert(things).values(name="kettle"))
        assert result.inserted_primary_key == (1,)
        await session.execute(insert(things), [{"name": "cup"}, {"name": "saucer"}])
        returned = await session.execute(
            update(things)
            .where(things.c.name != "kettle")
            .values(name=things.c.name + "s")
            .returning(things.c.name)
        )
        assert sorted(returned.scalars()) == ["cups", "saucers"]
        changed = await session.execute(update(things).values(name=things.c.name + "!"))
        assert changed.rowcount == 3
        rows = (await session.execute(text("SELECT id, name FROM things ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [(1, "kettle!"), (2, "cups!"), (3, "saucers!")]


async def test_large_results_arrive_whole_and_in_batches(db):
    async with db.transaction() as session:
        await session.execute(insert(things), [{"name": f"n{i}"} for i in range(500)])
    async with db.read() as session:
        result = await session.stream(select(things.c.id).order_by(things.c.id))
        seen = [row[0] async for row in result]
    assert seen == list(range(1, 501))


async def test_database_errors_reach_the_caller_as_sqlalchemy_errors_and_nothing_is_kept(db):
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(insert(things).values(name="kettle"))
            await session.execute(insert(things).values(name="kettle"))

    async with db.read() as session:
        assert list(await session.scalars(select(things.c.name))) == []
    async with db.transaction() as session:  # the connection is still usable
        await session.execute(insert(things).values(name="kettle"))
