"""What the operator's billing console reads: the order search, one order with everything that
happened to it, and the revenue figures.

Revenue counts money, not credits, per currency (a site may sell in several): a paid order
brings its ``total`` on the day it was paid, and every renewal of a subscription (a
``subscription.renewed`` provider event that was applied) brings the order's ``total`` again on
the day it arrived. A refund, full or partial, takes its ``amount`` back on the day it was
made (``order_refunds``). Nothing here writes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select

from multinotes.billing.models import Coupon, Order, Plan, ProviderEvent
from multinotes.billing.refund_models import OrderRefund
from multinotes.billing.schemas import OrdersQuery
from multinotes.db import Database, utcnow
from multinotes.errors import NotFound
from multinotes.identity.models import User
from multinotes.wallet.models import LedgerEntry

#: The most rows one CSV export holds (a narrower filter gets the rest).
CSV_LIMIT = 20_000
#: Statuses in which an order's money reached the seller (a refund or dispute came later).
PAID_STATUSES = ("paid", "refunded", "disputed")
#: Subscription statuses that still renew (``cancelling`` ends with its period).
RENEWING = ("active", "past_due")


@dataclass(frozen=True)
class OrderRow:
    """An order with the names the console shows beside it."""

    order: Order
    email: str
    user_name: str
    plan_name: str
    coupon_code: str | None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(query: OrdersQuery) -> Select[Order, str, str, str, str]:
    statement = (
        select(Order, User.email, User.name, Plan.name, Coupon.code)
        .join(User, User.id == Order.user_id)
        .join(Plan, Plan.id == Order.plan_id)
        .outerjoin(Coupon, Coupon.id == Order.coupon_id)
    )
    now = utcnow()
    if query.status == "expired":
        statement = statement.where(Order.status == "pending", Order.expires_at <= now)
    elif query.status == "pending":
        statement = statement.where(Order.status == "pending", Order.expires_at > now)
    elif query.status:
        statement = statement.where(Order.status == query.status)
    if query.user and query.user.strip():
        wanted = query.user.strip()
        statement = statement.where(
            or_(Order.user_id == wanted, func.lower(User.email).like(_like(wanted), escape="\\"))
        )
    if query.plan_id:
        statement = statement.where(Order.plan_id == query.plan_id)
    if query.coupon and query.coupon.strip():
        statement = statement.where(Coupon.code == query.coupon.strip().upper())
    if query.since:
        statement = statement.where(Order.created_at >= _start_of(query.since))
    if query.until and query.until < date.max:  # the last day there is: no upper bound
        statement = statement.where(Order.created_at < _start_of(query.until + timedelta(days=1)))
    return statement


def _rows(result: Any) -> list[OrderRow]:
    return [
        OrderRow(order, email, user_name, plan_name, code)
        for order, email, user_name, plan_name, code in result
    ]


async def search_orders(db: Database, query: OrdersQuery) -> tuple[list[OrderRow], str | None]:
    """Newest orders first, filtered; the second value continues after the page's last order
    (ids sort by creation time)."""
    statement = _filtered(query).order_by(Order.id.desc()).limit(query.limit + 1)
    if query.before:
        statement = statement.where(Order.id < query.before)
    async with db.read() as session:
        rows = _rows(await session.execute(statement))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, (rows[-1].order.id if more and rows else None)


async def export_orders(db: Database, query: OrdersQuery) -> list[OrderRow]:
    """Every order the filters match (up to ``CSV_LIMIT``), newest first, for the CSV export."""
    statement = _filtered(query).order_by(Order.id.desc()).limit(CSV_LIMIT)
    if query.before:
        statement = statement.where(Order.id < query.before)
    async with db.read() as session:
        return _rows(await session.execute(statement))


@dataclass
class OrderDetail:
    row: OrderRow
    ledger: list[LedgerEntry]
    events: list[ProviderEvent]
    refunds: list[OrderRefund]

    @property
    def refunded(self) -> int:
        """The money refunded so far (minor units)."""
        return max((r.refunded_total for r in self.refunds), default=0)


async def order_detail(db: Database, order_id: str) -> OrderDetail:
    """One order with its ledger entries (everything booked with its reference, its refunds'
    take-backs included), its refunds and every provider event that named it, oldest first."""
    async with db.read() as session:
        found = _rows(await session.execute(_filtered(OrdersQuery()).where(Order.id == order_id)))
        if not found:
            raise NotFound("No such order.")
        ledger = list(
            await session.scalars(
                select(LedgerEntry)
                .where(
                    or_(
                        LedgerEntry.reference == f"order:{order_id}",
                        # a refund's take-back names the order and its refunded total
                        LedgerEntry.reference.like(f"refund:{order_id}:%"),
                    )
                )
                .order_by(LedgerEntry.created_at, LedgerEntry.id)
            )
        )
        events = list(
            await session.scalars(
                select(ProviderEvent)
                .where(ProviderEvent.order_id == order_id)
                .order_by(ProviderEvent.received_at, ProviderEvent.id)
            )
        )
        refunds = list(
            await session.scalars(
                select(OrderRefund)
                .where(OrderRefund.order_id == order_id)
                .order_by(OrderRefund.refunded_total)
            )
        )
    return OrderDetail(found[0], ledger, events, refunds)


async def currencies(db: Database) -> list[str]:
    """The currencies orders were placed in, the most used first (USD when there are none)."""
    async with db.read() as session:
        rows = await session.execute(
            select(Order.currency, func.count())
            .where(Order.status.in_(PAID_STATUSES))
            .group_by(Order.currency)
        )
        counted = Counter({str(code).upper(): int(n) for code, n in rows})
    return [code for code, _ in counted.most_common()] or ["USD"]


@dataclass
class Bucket:
    """One day or month of the chart."""

    label: str
    start: datetime
    gross: int = 0
    refunds: int = 0
    payments: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.refunds


@dataclass
class Revenue:
    currency: str
    by: str
    buckets: list[Bucket]
    today: int
    last_30_days: int
    refunds_30_days: int
    #: How many refunds (full or partial) were made in the last 30 days.
    refund_count_30_days: int
    mrr: int
    subscriptions: dict[str, int]
    by_plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(b.net for b in self.buckets)


def _month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _buckets(by: str, now: datetime) -> list[Bucket]:
    if by == "month":
        starts = [_month_start(now)]
        for _ in range(11):
            starts.insert(0, _month_start(starts[0] - timedelta(days=1)))
        return [Bucket(s.strftime("%Y-%m"), s) for s in starts]
    today = _start_of(now.date())
    return [
        Bucket(d.strftime("%Y-%m-%d"), d)
        for d in (today - timedelta(days=n) for n in range(29, -1, -1))
    ]


def _monthly(order_total: int, interval: str) -> int:
    return order_total // 12 if interval == "year" else order_total


async def revenue(db: Database, currency: str, by: str = "day") -> Revenue:
    """The figures of the revenue page for one currency."""
    currency = currency.upper()
    now = utcnow()
    buckets = _buckets(by, now)
    first = buckets[0].start
    window_30 = _start_of(now.date()) - timedelta(days=29)
    since = min(first, window_30)
    today = _start_of(now.date())
    payments: list[tuple[datetime, int, str]] = []  # when, amount, plan id
    refunds: list[tuple[datetime, int]] = []
    async with db.read() as session:
        paid = await session.execute(
            select(Order.paid_at, Order.total, Order.plan_id).where(
                Order.currency == currency,
                Order.status.in_(PAID_STATUSES),
                Order.paid_at >= since,
            )
        )
        payments += [(when, int(total), plan) for when, total, plan in paid if when is not None]
        renewed = await session.execute(
            select(ProviderEvent.received_at, Order.total, Order.plan_id)
            .join(Order, Order.id == ProviderEvent.order_id)
            .where(
                Order.currency == currency,
                ProviderEvent.type == "subscription.renewed",
                ProviderEvent.outcome == "applied",
                ProviderEvent.received_at >= since,
            )
        )
        payments += [(when, int(total), plan) for when, total, plan in renewed]
        refunded = await session.execute(
            select(OrderRefund.created_at, OrderRefund.amount).where(
                OrderRefund.currency == currency, OrderRefund.created_at >= since
            )
        )
        refunds += [(when, int(amount)) for when, amount in refunded]
        subscribed = await session.execute(
            select(Order.subscription_status, Order.total, Plan.interval)
            .join(Plan, Plan.id == Order.plan_id)
            .where(
                Order.currency == currency,
                Order.status == "paid",
                Order.subscription_status.is_not(None),
            )
        )
        statuses: Counter[str] = Counter()
        mrr = 0
        for status, total, interval in subscribed:
            statuses[str(status)] += 1
            if status in RENEWING:
                mrr += _monthly(int(total), str(interval))
        plan_names = {p.id: p.name for p in await session.scalars(select(Plan))}

    def bucket_of(moment: datetime) -> Bucket | None:
        found = None
        for bucket in buckets:
            if bucket.start <= moment:
                found = bucket
        return found if moment >= first else None

    per_plan: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for when, amount, plan_id in payments:
        bucket = bucket_of(when)
        if bucket is not None:
            bucket.gross += amount
            bucket.payments += 1
        if when >= window_30:
            per_plan[plan_id][0] += amount
            per_plan[plan_id][1] += 1
    for when, amount in refunds:
        bucket = bucket_of(when)
        if bucket is not None:
            bucket.refunds += amount
    refunds_30 = [amount for when, amount in refunds if when >= window_30]
    return Revenue(
        currency=currency,
        by=by,
        buckets=buckets,
        today=sum(a for w, a, _ in payments if w >= today)
        - sum(a for w, a in refunds if w >= today),
        last_30_days=sum(a for w, a, _ in payments if w >= window_30) - sum(refunds_30),
        refunds_30_days=sum(refunds_30),
        refund_count_30_days=len(refunds_30),
        mrr=mrr,
        subscriptions={s: statuses.get(s, 0) for s in ("active", "past_due", "cancelling")},
        by_plan=sorted(
            (
                {"plan_id": p, "name": plan_names.get(p, p), "revenue": v[0], "payments": v[1]}
                for p, v in per_plan.items()
            ),
            key=lambda row: (-int(row["revenue"]), str(row["name"])),
        ),
    )
