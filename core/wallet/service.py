"""Moving credits: trial grants, reservations, settlement, admin adjustments.

Every change is one short transaction whose UPDATE re-checks the balance (``balance - reserved``)
in its WHERE clause, so concurrent requests serialise on the wallet row and none can overdraw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.app_settings import DEFAULTS, AppSetting, get_setting
from multinotes.db import Database, rows_affected, utcnow
from multinotes.domain_events import CREDITS_LOW, CreditsLow, stage
from multinotes.errors import Conflict, NotFound, PaymentRequired
from multinotes.wallet.models import LedgerEntry, Reservation, Wallet

#: ``session.info`` key: the users whose wallet the transaction changed. Whoever shows balances
#: live (``multinotes.live``) reads it once the transaction committed.
CHANGED = "wallet_changed"


def note_changed(session: AsyncSession, user_id: str) -> None:
    session.info.setdefault(CHANGED, set()).add(user_id)


@dataclass(frozen=True)
class Balance:
    balance: int
    reserved: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


async def ensure_wallet(db: Database, user_id: str) -> None:
    """Create the wallet on first use, with the trial credits in force at that moment."""
    async with db.read() as session:
        if await session.get(Wallet, user_id) is not None:
            return
    trial = int(await get_setting(db, "wallet.trial_credits") or 0)
    try:
        async with db.transaction() as session:
            session.add(Wallet(user_id=user_id, balance=trial, reserved=0))
            note_changed(session, user_id)
            await session.flush()
            if trial > 0:
                session.add(
                    LedgerEntry(
                        user_id=user_id,
                        amount=trial,
                        kind="trial",
                        reason="Free trial credits",
                        reference=f"trial:{user_id}",
                    )
                )
    except IntegrityError:
        pass  # another request created it first; the unique keys kept it single


async def balance(db: Database, user_id: str) -> Balance:
    await ensure_wallet(db, user_id)
    async with db.read() as session:
        wallet = await session.get(Wallet, user_id)
    assert wallet is not None
    return Balance(wallet.balance, wallet.reserved)


class WalletMissing(Exception):
    """The user has no wallet row yet (``ensure_wallet`` creates it)."""


INSUFFICIENT = (
    "Not enough credits for this request. Top up your wallet, choose fewer or cheaper models, "
    "or lower the maximum answer length."
)


async def summary(db: Database, user_id: str) -> dict[str, Any]:
    """The wallet as people see it: balance, what is held for answers in flight, what is left,
    and whether that is under the low-balance threshold an admin set."""
    current = await balance(db, user_id)
    threshold = int(await get_setting(db, "wallet.low_balance_credits") or 0)
    return {
        "balance": current.balance,
        "reserved": current.reserved,
        "available": current.available,
        "low_balance": current.available < threshold,
    }


LOW_BALANCE = "wallet.low_balance_credits"


async def stage_if_low(session: AsyncSession, user_id: str, taken: int) -> None:
    """Inside the transaction that took ``taken`` credits from the balance: stage ``credits.low``
    when that took it from at or above the low-balance threshold to below it (once per
    crossing, not on every charge while it stays low)."""
    if taken <= 0:
        return
    connection = await session.connection()
    after = await connection.scalar(select(Wallet.balance).where(Wallet.user_id == user_id))
    stored = await connection.scalar(select(AppSetting.value).where(AppSetting.key == LOW_BALANCE))
    threshold = int((DEFAULTS[LOW_BALANCE] if stored is None else stored) or 0)
    if after is not None and after < threshold <= after + taken:
        stage(session, CREDITS_LOW.of(user_id, CreditsLow(balance=after, threshold=threshold)))


async def hold_in(
    session: AsyncSession, user_id: str, holds: list[tuple[int, str, str | None]]
) -> None:
    """Inside the caller's transaction: hold credits for each ``(amount, reference, model id)``
    (all of them or none: ``PaymentRequired``, and the caller's rollback undoes everything it
    did). One conditional UPDATE for the total: holding the parts one after another would
    succeed exactly when the wallet covers their sum."""
    holds = [(max(0, int(amount)), reference, model_id) for amount, reference, model_id in holds]
    total = sum(amount for amount, _, _ in holds)
    connection = await session.connection()
    held = await connection.execute(
        update(Wallet)
        .where(Wallet.user_id == user_id, Wallet.balance - Wallet.reserved >= total)
        .values(reserved=Wallet.reserved + total)
    )
    if held.rowcount != 1:
        found = await connection.scalar(select(Wallet.user_id).where(Wallet.user_id == user_id))
        if found is None:
            raise WalletMissing(user_id)
        raise PaymentRequired(INSUFFICIENT, code="insufficient_credits")
    note_changed(session, user_id)
    await connection.execute(
        insert(Reservation),
        [
            {"user_id": user_id, "amount": amount, "reference": reference, "model_id": model_id}
            for amount, reference, model_id in holds
        ],
    )


async def reserve(
    db: Database, user_id: str, amount: int, reference: str, model_id: str | None = None
) -> None:
    """Hold ``amount`` credits, or raise ``PaymentRequired`` (nothing held)."""
    for _ in range(2):
        try:
            async with db.transaction() as session:
                await hold_in(session, user_id, [(amount, reference, model_id)])
                return
        except WalletMissing:
            await ensure_wallet(db, user_id)
    raise RuntimeError("wallet could not be created")  # pragma: no cover


async def settle_in(session: AsyncSession, reference: str, cost: int, *, reason: str = "") -> int:
    """Inside the caller's transaction: charge the reservation ``reference`` ``cost`` credits
    (never more than was held) and release the hold. Idempotent: if it was settled already,
    nothing changes and the first charge is returned. Core statements: this runs once per
    answer, on SQLite under the one write lock."""
    connection = await session.connection()
    reservation = (
        await connection.execute(
            select(
                Reservation.id,
                Reservation.user_id,
                Reservation.amount,
                Reservation.model_id,
                Reservation.settled_at,
                Reservation.cost,
            ).where(Reservation.reference == reference)
        )
    ).one_or_none()
    if reservation is None:
        raise NotFound(f"No reservation {reference!r}.")
    if reservation.settled_at is not None:
        return int(reservation.cost or 0)
    charged = min(max(0, int(cost)), reservation.amount)
    if connection.dialect.name != "sqlite":  # SQLite's write transaction already locks it all
        # Lock order is the wallet row, then its reservations, as in ``hold_in``: locking the
        # reservation first (by its unique reference) deadlocks against concurrent holds on
        # MySQL, whose insert waits for that index gap while holding the wallet.
        await connection.execute(
            select(Wallet.user_id).where(Wallet.user_id == reservation.user_id).with_for_update()
        )
    claimed = await connection.execute(
        update(Reservation)
        .where(Reservation.id == reservation.id, Reservation.settled_at.is_(None))
        .values(settled_at=utcnow(), cost=charged)
    )
    if claimed.rowcount != 1:  # settled concurrently
        first = await connection.scalar(
            select(Reservation.cost).where(Reservation.id == reservation.id)
        )
        return int(first or 0)
    await connection.execute(
        update(Wallet)
        .where(Wallet.user_id == reservation.user_id)
        .values(balance=Wallet.balance - charged, reserved=Wallet.reserved - reservation.amount)
    )
    note_changed(session, reservation.user_id)
    if charged:
        await connection.execute(
            insert(LedgerEntry).values(
                user_id=reservation.user_id,
                amount=-charged,
                kind="usage",
                reason=reason[:500],
                reference=reference,
                model_id=reservation.model_id,
            )
        )
        await stage_if_low(session, reservation.user_id, charged)
    return charged


async def settle(db: Database, reference: str, cost: int, *, reason: str = "") -> int:
    """Turn the reservation ``reference`` into a charge of ``cost`` (see ``settle_in``)."""
    async with db.transaction() as session:
        return await settle_in(session, reference, cost, reason=reason)


async def credit_in(
    session: AsyncSession, user_id: str, amount: int, *, kind: str, reason: str, reference: str
) -> bool:
    """Inside the caller's transaction (the wallet exists): add ``amount`` credits as one ledger
    entry. Idempotent on ``(kind, reference)``: a second call with the same pair adds nothing
    and returns False."""
    connection = await session.connection()
    seen = await connection.scalar(
        select(LedgerEntry.id).where(LedgerEntry.kind == kind, LedgerEntry.reference == reference)
    )
    if seen is not None or amount <= 0:
        return False
    await connection.execute(
        update(Wallet).where(Wallet.user_id == user_id).values(balance=Wallet.balance + amount)
    )
    note_changed(session, user_id)
    await connection.execute(
        insert(LedgerEntry).values(
            user_id=user_id, amount=amount, kind=kind, reason=reason[:500], reference=reference
        )
    )
    return True


async def take_back_in(
    session: AsyncSession, user_id: str, up_to: int, *, kind: str, reason: str, reference: str
) -> int:
    """Inside the caller's transaction: remove up to ``up_to`` credits, never more than are
    available (``balance - reserved``), as one ledger entry; returns what was taken. Idempotent
    on ``(kind, reference)`` (a repeat takes nothing)."""
    connection = await session.connection()
    seen = await connection.scalar(
        select(LedgerEntry.id).where(LedgerEntry.kind == kind, LedgerEntry.reference == reference)
    )
    if seen is not None or up_to <= 0:
        return 0
    if connection.dialect.name != "sqlite":
        await connection.execute(
            select(Wallet.user_id).where(Wallet.user_id == user_id).with_for_update()
        )
    row = (
        await connection.execute(
            select(Wallet.balance, Wallet.reserved).where(Wallet.user_id == user_id)
        )
    ).one_or_none()
    if row is None:
        return 0
    taken = max(0, min(int(up_to), row.balance - row.reserved))
    if taken == 0:
        return 0
    await connection.execute(
        update(Wallet).where(Wallet.user_id == user_id).values(balance=Wallet.balance - taken)
    )
    note_changed(session, user_id)
    await connection.execute(
        insert(LedgerEntry).values(
            user_id=user_id, amount=-taken, kind=kind, reason=reason[:500], reference=reference
        )
    )
    return taken


async def adjust(
    db: Database,
    user_id: str,
    amount: int,
    reason: str,
    *,
    by: str | None,
    kind: str | None = None,
    reference: str | None = None,
) -> LedgerEntry:
    """Grant (positive) or deduct (negative) credits with a reason. A deduction never takes the
    available balance below zero (``Conflict`` instead, nothing changed)."""
    await ensure_wallet(db, user_id)
    kind = kind or ("grant" if amount >= 0 else "deduct")
    entry = LedgerEntry(
        user_id=user_id,
        amount=int(amount),
        kind=kind,
        reason=reason[:500],
        reference=reference,
        created_by=by,
    )
    async with db.transaction() as session:
        changed = await session.execute(
            update(Wallet)
            .where(Wallet.user_id == user_id, Wallet.balance - Wallet.reserved + int(amount) >= 0)
            .values(balance=Wallet.balance + int(amount))
        )
        if rows_affected(changed) != 1:
            raise Conflict("That would take the balance below zero.", code="insufficient_balance")
        session.add(entry)
        note_changed(session, user_id)
        if amount < 0:
            await stage_if_low(session, user_id, -int(amount))
    return entry


async def ledger(
    db: Database,
    user_id: str,
    *,
    limit: int = 50,
    before: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.user_id == user_id)
    if before:
        query = query.where(LedgerEntry.id < before)
    if kind:
        query = query.where(LedgerEntry.kind == kind)
    if since:
        query = query.where(LedgerEntry.created_at >= since)
    if until:
        query = query.where(LedgerEntry.created_at < until)
    async with db.read() as session:
        rows = await session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit))
        return list(rows)


async def usage_by_day(db: Database, user_id: str, days: int = 30) -> dict[str, Any]:
    """Credits spent per day and per model over the last ``days`` days (for the usage chart)."""
    since = (utcnow() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    async with db.read() as session:
        rows = (
            await session.execute(
                select(LedgerEntry.created_at, LedgerEntry.model_id, LedgerEntry.amount).where(
                    LedgerEntry.user_id == user_id,
                    LedgerEntry.kind == "usage",
                    LedgerEntry.created_at >= since,
                )
            )
        ).all()
    dates = [(since + timedelta(days=i)).date().isoformat() for i in range(days)]
    per_day = {d: 0 for d in dates}
    per_model: dict[str, dict[str, int]] = {}
    for created_at, model_id, amount in rows:
        day = created_at.date().isoformat()
        if day not in per_day:
            continue
        per_day[day] += -amount
        model_days = per_model.setdefault(model_id or "other", {d: 0 for d in dates})
        model_days[day] += -amount
    return {
        "days": dates,
        "total": [per_day[d] for d in dates],
        "by_model": {m: [v[d] for d in dates] for m, v in sorted(per_model.items())},
    }


async def ledger_sum(db: Database, user_id: str) -> int:
    async with db.read() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.user_id == user_id
            )
        )
    return int(total or 0)
