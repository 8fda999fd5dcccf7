"""CPU per unit of work on MariaDB, in one process (issue #17, fifteenth round): the same
one-statement write transaction and one-row read through an ORM session, a Core connection,
``multinotes.driver_sql`` and aiomysql alone.

MariaDB at ``--url`` (root on 127.0.0.1 by default): a throwaway database ``drvbench``, its
tables created from the models, dropped at the end.

Run: ``python bench/bench_driver.py [--calls 2000] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from cpu_timing import cpu_ms_per_call
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

import multinotes.models  # the users table the wallets refer to
import multinotes.models_registry  # noqa: F401  (every other table on Base.metadata)
from multinotes.db import Base, Database, create_engine
from multinotes.driver_sql import DriverStatement
from multinotes.wallet.models import Wallet

HOLD = (
    update(Wallet)
    .where(Wallet.user_id == bindparam("p_owner"))
    .values(reserved=Wallet.reserved + bindparam("p_total"))
)
BALANCE = select(Wallet.balance, Wallet.reserved).where(Wallet.user_id == bindparam("p_owner"))
DRIVER_HOLD = DriverStatement(HOLD)
DRIVER_BALANCE = DriverStatement(BALANCE)
PARAMS = {"p_owner": "u1", "p_total": 0}


async def main(server: str, calls: int, rounds: int) -> None:
    admin = create_async_engine(server)
    async with admin.begin() as connection:
        await connection.execute(text("DROP DATABASE IF EXISTS drvbench"))
        await connection.execute(text("CREATE DATABASE drvbench"))
    engine = create_engine(f"{server.rstrip('/')}/drvbench")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        await connection.execute(
            text(
                "INSERT INTO wallets (user_id, balance, reserved, updated_at) VALUES "
                "('u1', 100, 0, NOW())"
            )
        )
    db = Database(engine)

    async def session_transaction() -> None:
        async with db.transaction() as session:
            await (await session.connection()).execute(HOLD, PARAMS)

    async def driver_transaction() -> None:
        async with db.driver_transaction() as tx:
            await tx.execute(DRIVER_HOLD, PARAMS)

    async def aiomysql_alone() -> None:
        pooled = await engine.raw_connection()
        driver = pooled.driver_connection
        assert driver is not None
        cursor = await driver.cursor()
        await cursor.execute(
            "UPDATE wallets SET reserved=(wallets.reserved + %s), updated_at=%s "
            "WHERE wallets.user_id = %s",
            (0, "2026-01-01 00:00:00", "u1"),
        )
        await cursor.close()
        await driver.commit()
        pooled.close()

    async def core_read() -> None:
        async with db.read_connection() as connection:
            (await connection.execute(BALANCE, PARAMS)).one_or_none()

    async def driver_read() -> None:
        async with db.driver_read() as reader:
            await reader.first(DRIVER_BALANCE, PARAMS)

    ways: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("write: ORM session, prebuilt UPDATE", session_transaction),
        ("write: driver_transaction", driver_transaction),
        ("write: aiomysql alone", aiomysql_alone),
        ("read: Core connection, prebuilt SELECT", core_read),
        ("read: driver_read", driver_read),
    ]
    try:
        for round_ in range(rounds):
            for name, way in ways:
                spent = await cpu_ms_per_call(way, calls, warmup=100)
                print(f"round {round_ + 1}: {name}: {spent:.3f} ms CPU", flush=True)
    finally:
        await db.close()
        async with admin.begin() as connection:
            await connection.execute(text("DROP DATABASE IF EXISTS drvbench"))
        await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="mysql+aiomysql://root@127.0.0.1:3306/")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.calls, args.rounds))
