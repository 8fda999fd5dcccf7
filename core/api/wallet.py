"""The credit wallet: balance, ledger, usage over time; admins grant or deduct credits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.http.endpoint import endpoint
from multinotes.identity import service as identity
from multinotes.identity.actor import require_admin, require_user
from multinotes.keys import DB
from multinotes.wallet import service as wallet
from multinotes.wallet.models import LEDGER_KINDS, LedgerEntry

routes = web.RouteTableDef()


class WalletOut(BaseModel):
    balance: int = Field(description="Credits you have (1 credit = US$0.00001).")
    reserved: int = Field(description="Credits held for answers still streaming.")
    available: int
    low_balance: bool


class LedgerEntryOut(BaseModel):
    id: str
    amount: int
    kind: str
    reason: str
    model: str | None
    created_at: datetime


class LedgerPage(BaseModel):
    entries: list[LedgerEntryOut]
    next_cursor: str | None


class LedgerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, max_length=32)
    kind: str | None = Field(default=None, pattern="^(" + "|".join(LEDGER_KINDS) + ")$")
    since: datetime | None = None
    until: datetime | None = None


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, le=366)


class UsageOut(BaseModel):
    days: list[str]
    total: list[int]
    by_model: dict[str, list[int]]


class CreditsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(description="Positive grants, negative deducts (never below zero).")
    reason: str = Field(min_length=1, max_length=500)


def as_utc(moment: datetime | None) -> datetime | None:
    """Dates without a zone in a query string are read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def entry_out(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "amount": entry.amount,
        "kind": entry.kind,
        "reason": entry.reason,
        "model": entry.model_id,
        "created_at": entry.created_at,
    }


@routes.get("/api/wallet", name="api_wallet")
@endpoint(access="user", response=WalletOut, tags=["wallet"])
async def get_wallet(request: web.Request) -> dict[str, Any]:
    """Your credit balance and what is held for answers in flight."""
    return await wallet.summary(request.app[DB], require_user(request).user_id)


@routes.get("/api/wallet/ledger", name="api_wallet_ledger")
@endpoint(access="user", query=LedgerQuery, response=LedgerPage, tags=["wallet"])
async def get_ledger(request: web.Request, query: LedgerQuery) -> dict[str, Any]:
    """Every credit movement, newest first; filter by kind and date; page with `before`."""
    actor = require_user(request)
    entries = await wallet.ledger(
        request.app[DB],
        actor.user_id,
        limit=query.limit + 1,
        before=query.before,
        kind=query.kind,
        since=as_utc(query.since),
        until=as_utc(query.until),
    )
    more = len(entries) > query.limit
    entries = entries[: query.limit]
    return {
        "entries": [entry_out(e) for e in entries],
        "next_cursor": entries[-1].id if more and entries else None,
    }


@routes.get("/api/wallet/usage", name="api_wallet_usage")
@endpoint(access="user", query=UsageQuery, response=UsageOut, tags=["wallet"])
async def get_usage(request: web.Request, query: UsageQuery) -> dict[str, Any]:
    """Credits spent per day, in total and per model, over the last `days` days."""
    return await wallet.usage_by_day(request.app[DB], require_user(request).user_id, query.days)


@routes.post("/api/admin/users/{id}/credits", name="api_admin_user_credits")
@endpoint(
    access="admin",
    body=CreditsIn,
    response=LedgerEntryOut,
    status=201,
    tags=["admin"],
    errors=[404, 409],
)
async def adjust_credits(request: web.Request, body: CreditsIn) -> dict[str, Any]:
    """Grant or deduct credits with a reason (a ledger entry; never below zero)."""
    admin = require_admin(request)
    user = await identity.get_user(request.app[DB], request.match_info["id"])
    entry = await wallet.adjust(
        request.app[DB], user.id, body.amount, body.reason, by=admin.user_id
    )
    await audit.record(
        request.app,
        request,
        "wallet.adjusted",
        target_type="user",
        target_id=user.id,
        details={"amount": body.amount, "reason": body.reason},
    )
    return entry_out(entry)
