"""Moving credits: trial grants, reservations, settlement, admin adjustments.

Every change is one short transaction whose UPDATE re-checks the balance (``balance - reserved``)
in its WHERE clause, so concurrent requests serialise on the wallet row and none can overdraw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.app_settings import DEFAULTS, AppSetting, get_setting
from multinotes.db import Database, UTCDateTime, rows_affected, utcnow
from multinotes.domain_events import CREDITS_LOW, CreditsLow, Staging, stage
from multinotes.driver_sql import DriverStatement, DriverTransaction, within
from multinotes.errors import Conflict, NotFound, PaymentRequired
from multinotes.wallet.models import LedgerEntry, OrganisationWallet, Reservation, Wallet

#: ``session.info`` key: the users whose wallet the transaction changed. Whoever shows balances
#: live (``multinotes.live``) reads it once the transaction committed.
CHANGED = "wallet_changed"
#: ``session.info`` key: users whose wallet only a hold changed. Their live update may follow
#: the commit a moment later: the hold before an answer is on the way to the provider call.
HELD = "wallet_held"


def note_changed(session: Staging, user_id: str) -> None:
    session.info.setdefault(CHANGED, set()).add(user_id)


def note_held(session: Staging, user_id: str) -> None:
    session.info.setdefault(HELD, set()).add(user_id)


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


LOW_BALANCE = "wallet.low_balance_credits"


async def summary(db: Database, user_id: str) -> dict[str, Any]:
    """The wallet as people see it: balance, what is held for answers in flight, what is left,
    and whether that is under the low-balance threshold an admin set."""
    # One statement: this runs after every hold and settle for the live channel's
    # wallet.changed (issue #17), where a balance() and a get_setting() took three.
    async with db.driver_read() as reader:
        row = await reader.first(_SUMMARY, {"p_user": user_id})
    if row is None:
        current = await balance(db, user_id)  # creates the wallet on first use
        stored = await get_setting(db, LOW_BALANCE)
    else:
        current, stored = Balance(row[0], row[1]), row[2]
    threshold = int((DEFAULTS[LOW_BALANCE] if stored is None else stored) or 0)
    return {
        "balance": current.balance,
        "reserved": current.reserved,
        "available": current.available,
        "low_balance": current.available < threshold,
    }


def _threshold_setting() -> Any:
    """The admin's low-balance threshold as a scalar subquery (NULL when unset)."""
    return select(AppSetting.value).where(AppSetting.key == LOW_BALANCE).scalar_subquery()


# -- the statements every answer sends --------------------------------------------------------
#
# Built once and run at the driver (``multinotes.driver_sql``, issue #17): SQLAlchemy's
# execution path cost more CPU than the round trip, and every answer sends these. The
# parameters are named ``p_*`` because an UPDATE executed with a parameter named like one of
# its table's columns would also SET that column.

_SUMMARY = DriverStatement(
    select(Wallet.balance, Wallet.reserved, _threshold_setting()).where(
        Wallet.user_id == bindparam("p_user")
    )
)


def _conditional_hold(wallet: type[Wallet] | type[OrganisationWallet], owner: Any) -> Any:
    """Hold ``p_total`` on the wallet whose ``owner`` column is ``p_owner``, if it covers it."""
    return DriverStatement(
        update(wallet)
        .where(
            owner == bindparam("p_owner"), wallet.balance - wallet.reserved >= bindparam("p_total")
        )
        .values(reserved=wallet.reserved + bindparam("p_total"))
    )


_HOLD_USER = _conditional_hold(Wallet, Wallet.user_id)
_HOLD_ORGANISATION = _conditional_hold(OrganisationWallet, OrganisationWallet.organisation_id)
_WALLET_EXISTS = DriverStatement(
    select(Wallet.user_id).where(Wallet.user_id == bindparam("p_user"))
)
_INSERT_RESERVATIONS = DriverStatement(insert(Reservation))
_MEMBER_SPENT = DriverStatement(
    select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.organisation_id == bindparam("p_organisation"),
        LedgerEntry.user_id == bindparam("p_user"),
        LedgerEntry.kind == "usage",
        LedgerEntry.created_at >= bindparam("p_since", type_=UTCDateTime),
    )
)
_MEMBER_HELD = DriverStatement(
    select(func.coalesce(func.sum(Reservation.amount), 0)).where(
        Reservation.organisation_id == bindparam("p_organisation"),
        Reservation.user_id == bindparam("p_user"),
        Reservation.settled_at.is_(None),
    )
)
_RESERVATION_COLUMNS = (
    Reservation.id,
    Reservation.user_id,
    Reservation.amount,
    Reservation.model_id,
    Reservation.settled_at,
    Reservation.cost,
    Reservation.organisation_id,
    _threshold_setting(),
)
#: The reservation to settle, the low-balance threshold, and on SQLite the balance before the
#: charge (its write transaction already holds the database's lock; MariaDB reads it under
#: the wallet's ``FOR UPDATE``).
_SETTLING = DriverStatement(
    select(*_RESERVATION_COLUMNS).where(Reservation.reference == bindparam("p_reference"))
)
_SETTLING_SQLITE = DriverStatement(
    select(
        *_RESERVATION_COLUMNS,
        select(Wallet.balance).where(Wallet.user_id == Reservation.user_id).scalar_subquery(),
    ).where(Reservation.reference == bindparam("p_reference"))
)
_LOCK_ORGANISATION_WALLET = DriverStatement(
    select(OrganisationWallet.organisation_id)
    .where(OrganisationWallet.organisation_id == bindparam("p_organisation"))
    .with_for_update()
)
_LOCK_WALLET = DriverStatement(
    select(Wallet.balance).where(Wallet.user_id == bindparam("p_user")).with_for_update()
)
_CLAIM = DriverStatement(
    update(Reservation)
    .where(Reservation.id == bindparam("p_id"), Reservation.settled_at.is_(None))
    .values(settled_at=bindparam("p_now"), cost=bindparam("p_cost"))
)
_CLAIMED_COST = DriverStatement(select(Reservation.cost).where(Reservation.id == bindparam("p_id")))


def _charge(wallet: type[Wallet] | type[OrganisationWallet], owner: Any) -> Any:
    """Take ``p_charged`` from the balance and release the ``p_held`` hold of the wallet whose
    ``owner`` column is ``p_owner``."""
    return DriverStatement(
        update(wallet)
        .where(owner == bindparam("p_owner"))
        .values(
            balance=wallet.balance - bindparam("p_charged"),
            reserved=wallet.reserved - bindparam("p_held"),
        )
    )


_CHARGE_USER = _charge(Wallet, Wallet.user_id)
_CHARGE_ORGANISATION = _charge(OrganisationWallet, OrganisationWallet.organisation_id)
_INSERT_LEDGER_ENTRY = DriverStatement(insert(LedgerEntry))


async def stage_if_low(session: AsyncSession, user_id: str, taken: int) -> None:
    """Inside the transaction that took ``taken`` credits from the balance: stage ``credits.low``
    when that took it from at or above the low-balance threshold to below it (once per
    crossing, not on every charge while it stays low)."""
    if taken <= 0:
        return
    connection = await session.connection()
    found = (
        await connection.execute(
            select(Wallet.balance, _threshold_setting()).where(Wallet.user_id == user_id)
        )
    ).one_or_none()
    if found is not None:
        _stage_if_crossed(session, user_id, found[0], taken, found[1])


def _stage_if_crossed(session: Staging, user_id: str, after: int, taken: int, stored: Any) -> None:
    """``stage_if_low`` once the balance ``after`` the charge and the stored threshold are
    known."""
    threshold = int((DEFAULTS[LOW_BALANCE] if stored is None else stored) or 0)
    if after < threshold <= after + taken:
        stage(session, CREDITS_LOW.of(user_id, CreditsLow(balance=after, threshold=threshold)))


ORGANISATION_INSUFFICIENT = (
    "Not enough credits in the organisation's wallet for this request. Ask its owner to add "
    "credits, or choose fewer or cheaper models."
)
MEMBER_LIMIT = (
    "This request would take you past your monthly credit limit in this organisation. Ask its "
    "owner or an admin to raise it, or choose fewer or cheaper models."
)


@dataclass(frozen=True)
class OrganisationHold:
    """Hold on an organisation's wallet instead of the member's own (``hold_in``)."""

    organisation_id: str
    #: The member's monthly limit in force (None: none).
    monthly_limit: int | None = None


def month_start(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def member_spent_in(session: AsyncSession, organisation_id: str, user_id: str) -> int:
    """What ``user_id`` took from the organisation's wallet this calendar month (UTC), plus
    what is held for their requests in flight there."""
    return await _member_spent(await within(session), organisation_id, user_id)


async def _member_spent(tx: DriverTransaction, organisation_id: str, user_id: str) -> int:
    params = {"p_organisation": organisation_id, "p_user": user_id}
    spent = await tx.scalar(_MEMBER_SPENT, {**params, "p_since": month_start()})
    held = await tx.scalar(_MEMBER_HELD, params)
    return -int(spent or 0) + int(held or 0)


async def hold_in(
    session: AsyncSession,
    user_id: str,
    holds: list[tuple[int, str, str | None]],
    *,
    organisation: OrganisationHold | None = None,
) -> None:
    """``hold_on`` inside the caller's ``Database.transaction``."""
    await hold_on(await within(session), user_id, holds, organisation=organisation)


async def hold_on(
    tx: DriverTransaction,
    user_id: str,
    holds: list[tuple[int, str, str | None]],
    *,
    organisation: OrganisationHold | None = None,
) -> None:
    """Inside the caller's transaction: hold credits for each ``(amount, reference, model id)``
    (all of them or none: ``PaymentRequired``, and the caller's rollback undoes everything it
    did). One conditional UPDATE for the total: holding the parts one after another would
    succeed exactly when the wallet covers their sum.

    With ``organisation``, the organisation's wallet is held instead of the user's, by the same
    conditional UPDATE; the member's monthly limit is checked after it, while that UPDATE locks
    the organisation's wallet row, so concurrent requests of the member are counted in turn."""
    holds = [(max(0, int(amount)), reference, model_id) for amount, reference, model_id in holds]
    total = sum(amount for amount, _, _ in holds)
    if organisation is not None:
        org_id = organisation.organisation_id
        if await tx.execute(_HOLD_ORGANISATION, {"p_owner": org_id, "p_total": total}) != 1:
            raise PaymentRequired(ORGANISATION_INSUFFICIENT, code="insufficient_credits")
        if organisation.monthly_limit is not None:
            spent = await _member_spent(tx, org_id, user_id)
            if spent + total > organisation.monthly_limit:
                raise PaymentRequired(MEMBER_LIMIT, code="member_limit_reached")
    else:
        org_id = None
        if await tx.execute(_HOLD_USER, {"p_owner": user_id, "p_total": total}) != 1:
            if await tx.scalar(_WALLET_EXISTS, {"p_user": user_id}) is None:
                raise WalletMissing(user_id)
            raise PaymentRequired(INSUFFICIENT, code="insufficient_credits")
        note_held(tx, user_id)
    await tx.execute_many(
        _INSERT_RESERVATIONS,
        [
            {
                "user_id": user_id,
                "amount": amount,
                "reference": reference,
                "model_id": model_id,
                "organisation_id": org_id,
            }
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
    """``settle_on`` inside the caller's ``Database.transaction``."""
    return (await _settle_on(await within(session), reference, cost, reason))[0]


async def settle_on(tx: DriverTransaction, reference: str, cost: int, *, reason: str = "") -> int:
    """Inside the caller's transaction: charge the reservation ``reference`` ``cost`` credits
    (never more than was held) and release the hold. Idempotent: if it was settled already,
    nothing changes and the first charge is returned. Driver statements: this runs once per
    answer, on SQLite under the one write lock."""
    return (await _settle_on(tx, reference, cost, reason))[0]


async def release_in(session: AsyncSession, reference: str) -> bool:
    """``release_on`` inside the caller's ``Database.transaction``."""
    return await release_on(await within(session), reference)


async def release_on(tx: DriverTransaction, reference: str) -> bool:
    """Inside the caller's transaction: give the hold ``reference`` back without charging
    anything (settled at 0: no ledger entry, since the balance does not move). True when this
    call released it; False when it was settled already or no such hold exists."""
    try:
        return (await _settle_on(tx, reference, 0, ""))[1]
    except NotFound:
        return False


async def _settle_on(
    tx: DriverTransaction, reference: str, cost: int, reason: str
) -> tuple[int, bool]:
    """``settle_on``, and whether this call was the one that settled it.

    A charge to a user's wallet needs its balance before the charge and the low-balance
    threshold (``credits.low``): read with statements the settlement sends anyway instead of a
    SELECT of its own after the charge (issue #17: one statement fewer per answer). The
    threshold comes with the reservation; the balance under the wallet's lock: with the
    reservation too on SQLite, whose write transaction holds the database's lock from its
    start, and with the wallet's ``FOR UPDATE`` on MariaDB (which locks nothing else)."""
    sqlite = tx.dialect.name == "sqlite"
    reservation = await tx.first(
        _SETTLING_SQLITE if sqlite else _SETTLING, {"p_reference": reference}
    )
    if reservation is None:
        raise NotFound(f"No reservation {reference!r}.")
    reservation_id, owner, amount, model_id, settled_at, first_cost, org_id, threshold = (
        reservation[:8]
    )
    if settled_at is not None:
        return int(first_cost or 0), False
    charged = min(max(0, int(cost)), amount)
    # The user's balance before this charge (None: no such wallet).
    before: int | None = reservation[8] if sqlite else None
    if not sqlite:  # SQLite's write transaction already locks it all
        # Lock order is the wallet row, then its reservations, as in ``hold_on``: locking the
        # reservation first (by its unique reference) deadlocks against concurrent holds on
        # MySQL, whose insert waits for that index gap while holding the wallet.
        if org_id is not None:
            await tx.execute(_LOCK_ORGANISATION_WALLET, {"p_organisation": org_id})
        else:
            before = await tx.scalar(_LOCK_WALLET, {"p_user": owner})
    claim = {"p_id": reservation_id, "p_now": utcnow(), "p_cost": charged}
    if await tx.execute(_CLAIM, claim) != 1:  # settled concurrently
        first = await tx.scalar(_CLAIMED_COST, {"p_id": reservation_id})
        return int(first or 0), False
    if org_id is not None:
        await tx.execute(
            _CHARGE_ORGANISATION, {"p_owner": org_id, "p_charged": charged, "p_held": amount}
        )
    else:
        await tx.execute(_CHARGE_USER, {"p_owner": owner, "p_charged": charged, "p_held": amount})
        note_changed(tx, owner)
    if charged:
        await tx.execute(
            _INSERT_LEDGER_ENTRY,
            {
                "user_id": owner,
                "amount": -charged,
                "kind": "usage",
                "reason": reason[:500],
                "reference": reference,
                "model_id": model_id,
                "organisation_id": org_id,
            },
        )
        if org_id is None and before is not None:
            _stage_if_crossed(tx, owner, before - charged, charged, threshold)
    return charged, True


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
    taken = await _take_back_from(
        session,
        Wallet,
        Wallet.user_id == user_id,
        up_to,
        entry={"user_id": user_id, "kind": kind, "reason": reason[:500], "reference": reference},
    )
    if taken:
        note_changed(session, user_id)
    return taken


async def _take_back_from(
    session: AsyncSession,
    wallet: type[Wallet] | type[OrganisationWallet],
    row_of_owner: ColumnElement[bool],
    up_to: int,
    *,
    entry: dict[str, Any],
) -> int:
    """Take up to ``up_to`` available credits from the one ``wallet`` row that ``row_of_owner``
    picks (a person's or an organisation's), locked while it is read, and write ``entry`` (the
    ledger columns but the amount) for what was taken. Nothing when ``(kind, reference)`` is
    already in the ledger."""
    connection = await session.connection()
    seen = await connection.scalar(
        select(LedgerEntry.id).where(
            LedgerEntry.kind == entry["kind"], LedgerEntry.reference == entry["reference"]
        )
    )
    if seen is not None or up_to <= 0:
        return 0
    read = select(wallet.balance, wallet.reserved).where(row_of_owner)
    if connection.dialect.name != "sqlite":
        read = read.with_for_update()
    row = (await connection.execute(read)).one_or_none()
    if row is None:
        return 0
    taken = max(0, min(int(up_to), row.balance - row.reserved))
    if taken == 0:
        return 0
    await connection.execute(
        update(wallet).where(row_of_owner).values(balance=wallet.balance - taken)
    )
    await connection.execute(insert(LedgerEntry).values(amount=-taken, **entry))
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
    query = select(LedgerEntry).where(
        LedgerEntry.user_id == user_id, LedgerEntry.organisation_id.is_(None)
    )
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
                    LedgerEntry.organisation_id.is_(None),
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
                LedgerEntry.user_id == user_id, LedgerEntry.organisation_id.is_(None)
            )
        )
    return int(total or 0)


# -- organisations' wallets ----------------------------------------------------------------------


async def ensure_organisation_wallet_in(session: AsyncSession, organisation_id: str) -> None:
    """Inside the transaction that creates the organisation: its empty wallet."""
    session.add(OrganisationWallet(organisation_id=organisation_id, balance=0, reserved=0))


async def organisation_balance(db: Database, organisation_id: str) -> Balance:
    async with db.read() as session:
        wallet = await session.get(OrganisationWallet, organisation_id)
    if wallet is None:
        raise NotFound("No such organisation.")
    return Balance(wallet.balance, wallet.reserved)


async def organisation_summary(db: Database, organisation_id: str) -> dict[str, Any]:
    current = await organisation_balance(db, organisation_id)
    return {
        "balance": current.balance,
        "reserved": current.reserved,
        "available": current.available,
    }


async def adjust_organisation(
    db: Database, organisation_id: str, amount: int, reason: str, *, by: str
) -> LedgerEntry:
    """An instance administrator grants (positive) or deducts (negative) an organisation's
    credits, as ``adjust`` does for a person: never below what is available (``Conflict``)."""
    entry = LedgerEntry(
        user_id=by,
        organisation_id=organisation_id,
        amount=int(amount),
        kind="grant" if amount >= 0 else "deduct",
        reason=reason[:500],
        created_by=by,
    )
    async with db.transaction() as session:
        changed = await session.execute(
            update(OrganisationWallet)
            .where(
                OrganisationWallet.organisation_id == organisation_id,
                OrganisationWallet.balance - OrganisationWallet.reserved + int(amount) >= 0,
            )
            .values(balance=OrganisationWallet.balance + int(amount))
        )
        if rows_affected(changed) != 1:
            raise Conflict("That would take the balance below zero.", code="insufficient_balance")
        session.add(entry)
    return entry


async def fund_organisation(
    db: Database, user_id: str, organisation_id: str, amount: int, reference: str
) -> None:
    """Move ``amount`` credits from ``user_id``'s own wallet to the organisation's, in one
    transaction: the personal side is the same conditional UPDATE as a hold (402 when the
    available balance does not cover it). Idempotent on ``reference``."""
    await ensure_wallet(db, user_id)
    async with db.transaction() as session:
        connection = await session.connection()
        seen = await connection.scalar(
            select(LedgerEntry.id).where(
                LedgerEntry.kind == "transfer", LedgerEntry.reference == f"{reference}:out"
            )
        )
        if seen is not None:
            return
        taken = await connection.execute(
            update(Wallet)
            .where(Wallet.user_id == user_id, Wallet.balance - Wallet.reserved >= amount)
            .values(balance=Wallet.balance - amount)
        )
        if taken.rowcount != 1:
            raise PaymentRequired(
                "Your wallet does not hold that many available credits.",
                code="insufficient_credits",
            )
        added = await connection.execute(
            update(OrganisationWallet)
            .where(OrganisationWallet.organisation_id == organisation_id)
            .values(balance=OrganisationWallet.balance + amount)
        )
        if added.rowcount != 1:
            raise NotFound("No such organisation.")
        note_changed(session, user_id)
        await connection.execute(
            insert(LedgerEntry),
            [
                {
                    "user_id": user_id,
                    "organisation_id": None,
                    "amount": -amount,
                    "kind": "transfer",
                    "reason": "Credits moved to an organisation",
                    "reference": f"{reference}:out",
                },
                {
                    "user_id": user_id,
                    "organisation_id": organisation_id,
                    "amount": amount,
                    "kind": "transfer",
                    "reason": "Credits added by a member",
                    "reference": f"{reference}:in",
                },
            ],
        )
        await stage_if_low(session, user_id, amount)


async def credit_organisation_in(
    session: AsyncSession,
    organisation_id: str,
    user_id: str,
    amount: int,
    *,
    kind: str,
    reason: str,
    reference: str,
) -> bool:
    """Inside the caller's transaction: add ``amount`` credits to the organisation's wallet
    (``user_id``: who paid for them), as one ledger entry. Idempotent on ``(kind, reference)``,
    as ``credit_in`` is: a second call adds nothing and returns False."""
    connection = await session.connection()
    seen = await connection.scalar(
        select(LedgerEntry.id).where(LedgerEntry.kind == kind, LedgerEntry.reference == reference)
    )
    if seen is not None or amount <= 0:
        return False
    added = await connection.execute(
        update(OrganisationWallet)
        .where(OrganisationWallet.organisation_id == organisation_id)
        .values(balance=OrganisationWallet.balance + amount)
    )
    if added.rowcount != 1:
        return False  # the organisation is gone: nothing to credit
    await connection.execute(
        insert(LedgerEntry).values(
            user_id=user_id,
            organisation_id=organisation_id,
            amount=amount,
            kind=kind,
            reason=reason[:500],
            reference=reference,
        )
    )
    return True


async def take_back_organisation_in(
    session: AsyncSession,
    organisation_id: str,
    user_id: str,
    up_to: int,
    *,
    kind: str,
    reason: str,
    reference: str,
) -> int:
    """``take_back_in`` for an organisation's wallet (a refunded or disputed organisation
    plan): up to ``up_to`` credits, never more than are available; what was taken."""
    return await _take_back_from(
        session,
        OrganisationWallet,
        OrganisationWallet.organisation_id == organisation_id,
        up_to,
        entry={
            "user_id": user_id,
            "organisation_id": organisation_id,
            "kind": kind,
            "reason": reason[:500],
            "reference": reference,
        },
    )


async def organisation_ledger_sum(db: Database, organisation_id: str) -> int:
    async with db.read() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.organisation_id == organisation_id
            )
        )
    return int(total or 0)


async def usage_by_member(
    db: Database, organisation_id: str, since: datetime, until: datetime
) -> dict[str, dict[str, int]]:
    """Credits each member spent from the organisation's wallet in ``[since, until)``, with
    their number of answers: user id → ``{"credits", "answers"}``."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(
                    LedgerEntry.user_id,
                    func.coalesce(func.sum(LedgerEntry.amount), 0),
                    func.count(LedgerEntry.id),
                )
                .where(
                    LedgerEntry.organisation_id == organisation_id,
                    LedgerEntry.kind == "usage",
                    LedgerEntry.created_at >= since,
                    LedgerEntry.created_at < until,
                )
                .group_by(LedgerEntry.user_id)
            )
        ).all()
    return {uid: {"credits": -int(total), "answers": int(count)} for uid, total, count in rows}
