"""Prebuilt statements run at the driver (``multinotes.driver_sql``, issue #17).

They must behave exactly as the same statements through SQLAlchemy: the same defaults, the same
conversions both ways, the same exceptions, the same transaction and domain-event rules; and a
statement cancelled mid-flight must never leave its connection in the pool half-read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from multinotes.chat.models import Conversation, Generation, Message, MessageStatus
from multinotes.db import STAGED_EVENTS, new_id
from multinotes.driver_sql import DriverStatement, within
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet.models import Reservation, Wallet
from multinotes.wallet.service import ensure_wallet

INSERT_CONVERSATION = DriverStatement(insert(Conversation))
INSERT_MESSAGE = DriverStatement(insert(Message))
INSERT_GENERATION = DriverStatement(insert(Generation))
INSERT_RESERVATION = DriverStatement(insert(Reservation))
CONVERSATION = DriverStatement(
    select(Conversation.__table__).where(Conversation.id == bindparam("p_id"))
)
MESSAGE_STATUS = DriverStatement(select(Message.status).where(Message.id == bindparam("p_id")))
GENERATION_OPTIONS = DriverStatement(
    select(Generation.options, Generation.status).where(Generation.id == bindparam("p_id"))
)
TOUCH_WALLET = DriverStatement(
    update(Wallet).where(Wallet.user_id == bindparam("p_user")).values(balance=Wallet.balance)
)
WALLET_UPDATED = DriverStatement(
    select(Wallet.updated_at).where(Wallet.user_id == bindparam("p_user"))
)
RESERVATIONS = DriverStatement(
    select(func.count()).select_from(Reservation).where(Reservation.user_id == bindparam("p_user"))
)


async def _user(api: ApiClient, email: str = "driver@example.com") -> str:
    return str((await api.register_and_login(email))["id"])


def _reservation(user_id: str, reference: str) -> dict[str, Any]:
    return {"user_id": user_id, "amount": 5, "reference": reference, "model_id": None}


async def test_an_insert_fills_the_python_defaults_and_converts_its_values(api: ApiClient):
    user_id = await _user(api)
    db = api.app[DB]
    conversation_id, message_id, generation_id = new_id(), new_id(), new_id()
    before = datetime.now(UTC)
    async with db.driver_transaction() as tx:
        await tx.execute(INSERT_CONVERSATION, {"id": conversation_id, "user_id": user_id})
        await tx.execute(
            INSERT_MESSAGE,
            {
                "id": message_id,
                "conversation_id": conversation_id,
                "user_id": user_id,
                "role": "assistant",
                "status": MessageStatus.PENDING,
            },
        )
        await tx.execute(
            INSERT_GENERATION,
            {
                "id": generation_id,
                "user_id": user_id,
                "conversation_id": conversation_id,
                "message_id": message_id,
                "model_id": "demo/echo",
                "provider_id": "demo",
                "options": {"temperature": 0.5, "stop": ["\n"]},
            },
        )
    async with db.read() as session:
        conversation = await session.get(Conversation, conversation_id)
        message = await session.get(Message, message_id)
        generation = await session.get(Generation, generation_id)
    assert conversation is not None and message is not None and generation is not None
    assert conversation.title == "New chat"  # the column's default
    assert before - timedelta(seconds=1) <= conversation.created_at <= datetime.now(UTC)
    assert message.status is MessageStatus.PENDING and message.content == ""
    assert generation.options == {"temperature": 0.5, "stop": ["\n"]}
    assert generation.pricing == {} and generation.status == "pending"


async def test_a_select_hands_back_what_the_orm_would(api: ApiClient):
    user_id = await _user(api)
    db = api.app[DB]
    conversation_id = new_id()
    async with db.driver_transaction() as tx:
        await tx.execute(
            INSERT_CONVERSATION, {"id": conversation_id, "user_id": user_id, "title": "Plans"}
        )
    async with db.driver_read() as reader:
        row = await reader.first(CONVERSATION, {"p_id": conversation_id})
        missing = await reader.first(CONVERSATION, {"p_id": "nope"})
    async with db.read() as session:
        stored = await session.get(Conversation, conversation_id)
    assert row is not None and stored is not None and missing is None
    as_dict = dict(zip(CONVERSATION.keys, row, strict=True))
    assert as_dict["title"] == "Plans"
    assert as_dict["created_at"] == stored.created_at
    assert as_dict["created_at"].tzinfo is UTC
    assert Conversation(**as_dict).updated_at == stored.updated_at


async def test_an_update_counts_the_rows_it_matched_and_sets_onupdate_columns(api: ApiClient):
    user_id = await _user(api)
    db = api.app[DB]
    await ensure_wallet(db, user_id)
    async with db.driver_read() as reader:
        first = await reader.scalar(WALLET_UPDATED, {"p_user": user_id})
    await asyncio.sleep(0.01)
    async with db.driver_transaction() as tx:
        # The balance does not change: the row still counts (matched, as SQLAlchemy counts it).
        assert await tx.execute(TOUCH_WALLET, {"p_user": user_id}) == 1
        assert await tx.execute(TOUCH_WALLET, {"p_user": "nobody"}) == 0
    async with db.driver_read() as reader:
        assert await reader.scalar(WALLET_UPDATED, {"p_user": user_id}) > first


async def test_a_transaction_commits_at_its_end_and_keeps_nothing_when_it_fails(api: ApiClient):
    user_id = await _user(api)
    db = api.app[DB]
    committed: list[dict[str, Any]] = []

    async def note(info: dict[str, Any]) -> None:
        committed.append(dict(info))

    db.on_commit.append(note)
    try:
        with pytest.raises(RuntimeError, match="changed my mind"):
            async with db.driver_transaction() as tx:
                await tx.execute(INSERT_RESERVATION, _reservation(user_id, "drv:1"))
                tx.info[STAGED_EVENTS].append("an event")
                tx.info["noted"] = "rolled back"
                raise RuntimeError("changed my mind")
        async with db.driver_transaction() as tx:
            await tx.execute_many(
                INSERT_RESERVATION,
                [_reservation(user_id, "drv:2"), _reservation(user_id, "drv:3")],
            )
            tx.info["noted"] = "committed"
    finally:
        db.on_commit.remove(note)
    # (Other units of work of the app commit meanwhile too: only these two are looked at.)
    assert [info["noted"] for info in committed if "noted" in info] == ["committed"]
    async with db.driver_read() as reader:
        assert await reader.scalar(RESERVATIONS, {"p_user": user_id}) == 2


async def test_a_constraint_violation_is_sqlalchemys_integrity_error(api: ApiClient):
    user_id = await _user(api)
    db = api.app[DB]
    async with db.driver_transaction() as tx:
        await tx.execute(INSERT_RESERVATION, _reservation(user_id, "drv:once"))
    with pytest.raises(IntegrityError):
        async with db.driver_transaction() as tx:
            await tx.execute(INSERT_RESERVATION, _reservation(user_id, "drv:other"))
            await tx.execute(INSERT_RESERVATION, _reservation(user_id, "drv:once"))
    # Rolled back as a whole, and the connection is fine for the next one.
    async with db.driver_transaction() as tx:
        await tx.execute(INSERT_RESERVATION, _reservation(user_id, "drv:after"))
    async with db.driver_read() as reader:
        assert await reader.scalar(RESERVATIONS, {"p_user": user_id}) == 2


async def test_statements_within_a_session_commit_and_roll_back_with_it(api: ApiClient):
    user_id = await _user(api)
    db = api.app[DB]
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            tx = await within(session)
            await tx.execute(INSERT_RESERVATION, _reservation(user_id, "drv:rolled"))
            raise RuntimeError
    async with db.transaction() as session:
        tx = await within(session)
        await tx.execute(INSERT_RESERVATION, _reservation(user_id, "drv:kept"))
        assert tx.info is session.info
    async with db.read() as session:
        references = (await session.scalars(select(Reservation.reference))).all()
    assert "drv:kept" in references and "drv:rolled" not in references


async def test_a_statement_cancelled_midway_never_hands_its_connection_on(api: ApiClient):
    """aiomysql reads a cancelled statement's result with the next statement it is given on
    that connection: a connection cancelled mid-statement must be closed, not pooled."""
    db = api.app[DB]
    numbers = select(literal_column("1").label("n")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.n + 1).where(numbers.c.n < 5_000_000))
    slow = DriverStatement(
        select(func.count()).select_from(numbers)
        if db.is_sqlite
        else select(literal_column("1")).where(func.sleep(0.5) == 0)
    )
    answer = DriverStatement(select(bindparam("p_value")))

    async def cancelled(transaction: bool) -> None:
        async def run() -> None:
            if transaction:
                async with db.driver_transaction() as tx:
                    await tx.rows(slow, {})
            else:
                async with db.driver_read() as reader:
                    await reader.rows(slow, {})

        task = asyncio.create_task(run())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    for transaction in (False, True):
        for _ in range(3):
            await cancelled(transaction)
    for value in range(20):
        async with db.driver_read() as reader:
            assert await reader.scalar(answer, {"p_value": value}) == value
        async with db.driver_transaction() as tx:
            assert await tx.scalar(answer, {"p_value": value}) == value
