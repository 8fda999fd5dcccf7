"""Referrals: every user has a link ``/r/<code>``; a sign-up that came through it records the
referrer, and on the referee's first paid order both get the bonus credits, once."""

from __future__ import annotations

import secrets

from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.app_settings import AppSetting
from multinotes.billing.models import Order, Referral, ReferralCode
from multinotes.db import Database, utcnow
from multinotes.wallet import service as wallet

COOKIE = "mn_ref"
#: Credits each side gets, unless an admin set ``billing.referral_bonus_credits``.
BONUS_SETTING = "billing.referral_bonus_credits"
DEFAULT_BONUS = 50_000


async def code_for(db: Database, user_id: str) -> str:
    """The user's referral code, made on first use."""
    async with db.read() as session:
        code = await session.scalar(
            select(ReferralCode.code).where(ReferralCode.user_id == user_id)
        )
    if code:
        return str(code)
    try:
        async with db.transaction() as session:
            made = ReferralCode(user_id=user_id, code=secrets.token_urlsafe(9)[:12])
            session.add(made)
        return made.code
    except IntegrityError:  # made concurrently: read the winner's
        return await code_for(db, user_id)


async def existing_code(db: Database, user_id: str) -> str | None:
    async with db.read() as session:
        code = await session.scalar(
            select(ReferralCode.code).where(ReferralCode.user_id == user_id)
        )
    return str(code) if code else None


async def record_signup(request: web.Request, db: Database, referee_id: str) -> None:
    """After a new account was created: its own referral code, and, if its browser came
    through a referral link, who referred it (never oneself; once)."""
    await code_for(db, referee_id)
    code = request.cookies.get(COOKIE, "")[:16]
    if not code:
        return
    async with db.read() as session:
        referrer = await session.scalar(
            select(ReferralCode.user_id).where(ReferralCode.code == code)
        )
    if referrer is None or referrer == referee_id:
        return
    try:
        async with db.transaction() as session:
            session.add(Referral(referee_id=referee_id, referrer_id=referrer))
    except IntegrityError:
        pass


async def referrer_of(db: Database, user_id: str) -> str | None:
    async with db.read() as session:
        found = await session.scalar(
            select(Referral.referrer_id).where(
                Referral.referee_id == user_id, Referral.rewarded_at.is_(None)
            )
        )
    return str(found) if found else None


async def reward_in(session: AsyncSession, order: Order) -> None:
    """Inside the transaction that marked ``order`` paid: the referral bonus, if this is the
    referee's first paid order and it was not paid before (both wallets exist already)."""
    connection = await session.connection()
    referrer = await connection.scalar(
        select(Referral.referrer_id).where(
            Referral.referee_id == order.user_id, Referral.rewarded_at.is_(None)
        )
    )
    if referrer is None:
        return
    earlier = await connection.scalar(
        select(func.count())
        .select_from(Order)
        .where(
            Order.user_id == order.user_id,
            Order.id != order.id,
            Order.paid_at.is_not(None),
        )
    )
    if earlier:
        return
    claimed = await connection.execute(
        update(Referral)
        .where(Referral.referee_id == order.user_id, Referral.rewarded_at.is_(None))
        .values(rewarded_at=utcnow())
    )
    if claimed.rowcount != 1:
        return
    setting = await session.get(AppSetting, BONUS_SETTING)
    bonus = int(setting.value if setting is not None else DEFAULT_BONUS)
    for user_id, reference in ((order.user_id, "referee"), (str(referrer), "referrer")):
        await wallet.credit_in(
            session,
            user_id,
            bonus,
            kind="bonus",
            reason="Referral bonus",
            reference=f"referral-{reference}:{order.user_id}",
        )
