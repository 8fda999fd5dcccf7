"""Session overhead (issue #17): what ``Database`` sends besides the statements themselves.

On MariaDB a read session runs on its own autocommit pool, so it ends without a ROLLBACK; a
pooled connection is pinged only after sitting idle (``IDLE_PING_SECONDS``), not on every
checkout, and one that died while idle is replaced before anyone uses it. A read session
refuses writes in both modes (in autocommit they would be kept)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select, text, update

from multinotes import db as db_module
from multinotes.db import Database
from multinotes.keys import DB
from multinotes.models import User
from multinotes.testing import ApiClient


@contextmanager
def round_trips(db: Database) -> Iterator[Counter[str]]:
    """Pings, commits and rollbacks actually sent, on both pools."""
    counts: Counter[str] = Counter()
    dialects = {id(e.dialect): e.dialect for e in (db.engine, db.read_engine)}.values()

    def wrap(dialect: Any, name: str) -> None:
        method = getattr(dialect, name)

        def counted(dbapi_connection: Any, *args: Any, **kwargs: Any) -> Any:
            skipped = (
                name == "do_rollback"
                and dialect.skip_autocommit_rollback
                and dialect.detect_autocommit_setting(dbapi_connection)
            )
            if not skipped:
                counts[name] += 1
            return method(dbapi_connection, *args, **kwargs)

        setattr(dialect, name, counted)

    for dialect in dialects:
        for name in ("do_ping", "do_commit", "do_rollback"):
            wrap(dialect, name)
    try:
        yield counts
    finally:
        for dialect in dialects:
            for name in ("do_ping", "do_commit", "do_rollback"):
                vars(dialect).pop(name, None)


async def test_a_read_session_refuses_writes(api: ApiClient):
    user = await api.register_and_login("reads@example.com")
    db = api.app[DB]
    with pytest.raises(RuntimeError, match="for reads"):
        async with db.read() as session:
            await session.execute(update(User).where(User.id == user["id"]).values(name="X"))
    with pytest.raises(RuntimeError, match="for reads"):
        async with db.read() as session:
            row = await session.scalar(select(User).where(User.id == user["id"]))
            assert row is not None
            row.name = "Y"
            await session.flush()
    async with db.read() as session:
        assert await session.scalar(select(User.name).where(User.id == user["id"])) == "Test User"


async def test_a_read_session_holds_no_snapshot(api: ApiClient):
    """Reads run outside a transaction (nothing to roll back at the end, on SQLite no trip to
    its thread for it): each statement sees what is committed when it runs."""
    user = await api.register_and_login("snapshot@example.com")
    db = api.app[DB]
    query = select(User.name).where(User.id == user["id"])
    async with db.read() as session:
        assert await session.scalar(query) == "Test User"
        async with db.transaction() as writer:
            await writer.execute(update(User).where(User.id == user["id"]).values(name="New"))
        assert await session.scalar(query) == "New"


@pytest.mark.parametrize("mode", ["production"])
async def test_reads_send_no_rollback_and_no_ping(api: ApiClient):
    user = await api.register_and_login("trips@example.com")
    db = api.app[DB]
    async with db.read() as session:  # warm: a connection in each pool
        await session.execute(text("SELECT 1"))
    async with db.transaction() as session:
        await session.execute(update(User).where(User.id == user["id"]).values(name="Warm"))
    with round_trips(db) as counts:
        for _ in range(5):
            async with db.read() as session:
                assert (
                    await session.scalar(select(User.name).where(User.id == user["id"])) == "Warm"
                )
        async with db.transaction() as session:
            await session.execute(update(User).where(User.id == user["id"]).values(name="Z"))
    assert counts == Counter({"do_commit": 1})
    # Each SELECT of a read sees what is committed now (no snapshot kept on the connection).
    async with db.read() as session:
        assert await session.scalar(select(User.name).where(User.id == user["id"])) == "Z"


@pytest.mark.parametrize("mode", ["production"])
async def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    db = api.app[DB]
    async with db.read() as session:
        victim = await session.scalar(text("SELECT CONNECTION_ID()"))
    # The server drops the pooled connection while it sits idle (a restart, wait_timeout).
    async with db.transaction() as session:
        await session.execute(text(f"KILL {int(victim)}"))
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    with round_trips(db) as counts:
        async with db.read() as session:
            now = await session.scalar(text("SELECT CONNECTION_ID()"))
    assert now != victim
    assert counts["do_ping"] >= 1
