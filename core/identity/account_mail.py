"""Single-use links sent by mail: email verification and password reset.

A link carries a random 256-bit token; only its SHA-256 is stored (``user_tokens``), so a
database leak yields no usable link. A token works once (a conditional UPDATE on ``used_at``
decides races), expires (48 hours to verify, 1 hour to reset), and is bound to the address it
was sent to.

The token is created by the background task that sends the mail, not by the request that asked
for it: task arguments travel through the broker (Redis in production) and must hold no secret.
The request only names the address, so asking for a link about an unknown address looks exactly
like asking about a known one, in the response and in its timing.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Literal

import structlog
from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, rows_affected, utcnow
from multinotes.domain_events import EMAIL_VERIFIED, DomainEvent, EmailVerified, stage
from multinotes.errors import Invalid
from multinotes.identity.models import AuthSession, User, UserToken
from multinotes.identity.passwords import hash_password_async, password_problem
from multinotes.identity.service import normalize_email, token_hash
from multinotes.keys import DB, SETTINGS, TASKS
from multinotes.links import request_base_url
from multinotes.mail import send_mail
from multinotes.plugin_host import TaskDef

log = structlog.get_logger(__name__)

Purpose = Literal["verify_email", "reset_password"]
VERIFY_EMAIL: Purpose = "verify_email"
RESET_PASSWORD: Purpose = "reset_password"
LIFETIMES: dict[str, timedelta] = {
    VERIFY_EMAIL: timedelta(hours=48),
    RESET_PASSWORD: timedelta(hours=1),
}
#: However often a link is asked for, an account gets at most one mail of a kind per window.
MAIL_COOLDOWN = timedelta(seconds=60)
ACCOUNT_MAIL_TASK = "core.send_account_mail"
PATHS: dict[str, str] = {VERIFY_EMAIL: "/verify", RESET_PASSWORD: "/password/reset"}

INVALID_LINK = "This link is invalid, was already used, or has expired. Ask for a new one."


def invalid_link() -> Invalid:
    return Invalid(INVALID_LINK, code="invalid_token", fields={"token": INVALID_LINK})


def public_base_url(request: web.Request) -> str:
    """Where links in mails (and other absolute links to this site) point: ``public_url`` when
    set (set it in production), else the address the server listens on, read from the socket
    the request arrived on. Never from request headers (``multinotes.links``)."""
    return request_base_url(request)


async def queue_account_mail(request: web.Request, purpose: Purpose, email: str) -> None:
    """Ask the task queue to mail a link to ``email`` if an account (still) wants one."""
    await request.app[TASKS].enqueue(
        ACCOUNT_MAIL_TASK,
        purpose=purpose,
        email=normalize_email(email),
        base_url=public_base_url(request),
    )


# -- issuing ------------------------------------------------------------------------------------


async def issue_token(db: Database, user: User, purpose: Purpose) -> str | None:
    """A new token for ``user``, or None when one of this kind was issued within the cooldown.

    A new reset link replaces the previous ones; verification links all stay valid until one of
    them is used (people click the first mail after asking for a second)."""
    return await issue_mail_token(
        db,
        user.id,
        purpose,
        email=user.email,
        lifetime=LIFETIMES[purpose],
        replace_previous=purpose == RESET_PASSWORD,
    )


async def issue_mail_token(
    db: Database,
    user_id: str,
    purpose: str,
    *,
    email: str,
    lifetime: timedelta,
    replace_previous: bool,
) -> str | None:
    """Store the hash of a new single-use token bound to ``email``; return the token, or None
    when one of this kind was issued within ``MAIL_COOLDOWN``.

    :param replace_previous: earlier unused tokens of this kind stop working.
    """
    now = utcnow()
    token = secrets.token_urlsafe(32)
    async with db.transaction() as session:
        # Lock the user's row so two concurrent requests cannot both pass the cooldown check.
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
        recent = await session.scalar(
            select(func.count())
            .select_from(UserToken)
            .where(
                UserToken.user_id == user_id,
                UserToken.purpose == purpose,
                UserToken.created_at > now - MAIL_COOLDOWN,
            )
        )
        if recent:
            return None
        if replace_previous:
            await _use_up(session, user_id, purpose, now)
        session.add(
            UserToken(
                user_id=user_id,
                purpose=purpose,
                token_hash=token_hash(token),
                email=email,
                expires_at=now + lifetime,
                created_at=now,
            )
        )
    return token


async def redeem_mail_token(session: AsyncSession, token_id: str, now: datetime) -> None:
    """Use the token up inside the caller's transaction, or raise ``invalid_link()`` when it
    was used or expired meanwhile: a conditional UPDATE, so of two requests racing with one
    link exactly one wins."""
    connection = await session.connection()  # a Core result, which counts rows
    used = await connection.execute(
        update(UserToken)
        .where(
            UserToken.id == token_id,
            UserToken.used_at.is_(None),
            UserToken.expires_at > now,
        )
        .values(used_at=now)
    )
    if used.rowcount != 1:
        raise invalid_link()


async def _use_up(session: AsyncSession, user_id: str, purpose: str, now: datetime) -> None:
    """Every unused link of this kind stops working."""
    await session.execute(
        update(UserToken)
        .where(
            UserToken.user_id == user_id,
            UserToken.purpose == purpose,
            UserToken.used_at.is_(None),
        )
        .values(used_at=now)
    )


async def send_account_mail(
    app: web.Application, *, purpose: Purpose, email: str, base_url: str
) -> None:
    """The task: mail a fresh link to the account at ``email``, when there is one that needs it.

    Nothing is sent for an unknown or blocked address, an already verified one (verification),
    or within the cooldown; the person asking is told the same in every case."""
    db = app[DB]
    async with db.read() as session:
        user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    reason = None
    if user is None or not user.is_active:
        reason = "no_active_account"
    elif purpose == VERIFY_EMAIL and user.email_verified_at is not None:
        reason = "already_verified"
    if user is None or reason:
        log.info("account_mail_skipped", purpose=purpose, reason=reason)
        return
    token = await issue_token(db, user, purpose)
    if token is None:
        log.info("account_mail_skipped", purpose=purpose, reason="cooldown")
        return
    link = f"{base_url}{PATHS[purpose]}?token={token}"
    hours = int(LIFETIMES[purpose].total_seconds() // 3600)
    await send_mail(
        app,
        template=purpose,
        to=user.email,
        context={
            "name": user.name,
            "email": user.email,
            "link": link,
            "hours": hours,
            # What verifying unlocks depends on the install (embedded mode does not require it).
            "required": app[SETTINGS].requires_email_verification,
        },
    )


def account_mail_tasks() -> list[TaskDef]:
    return [TaskDef("core", ACCOUNT_MAIL_TASK, send_account_mail, None)]


# -- using --------------------------------------------------------------------------------------


async def _find(db: Database, purpose: Purpose, token: str) -> tuple[UserToken, User] | None:
    async with db.read() as session:
        row = (
            await session.execute(
                select(UserToken, User)
                .join(User, User.id == UserToken.user_id)
                .where(UserToken.token_hash == token_hash(token), UserToken.purpose == purpose)
            )
        ).first()
    return None if row is None else (row[0], row[1])


def _usable(record: UserToken, user: User) -> bool:
    return (
        record.used_at is None
        and record.expires_at > utcnow()
        and user.is_active
        and record.email == user.email
    )


async def reset_link_user(db: Database, token: str) -> User | None:
    """The user a reset link would work for right now (for showing the form), without using
    it up."""
    found = await _find(db, RESET_PASSWORD, token)
    if found is None or not _usable(*found):
        return None
    return found[1]


def email_verified(user_id: str, email: str) -> DomainEvent:
    """The event a verified address publishes (organisations with its domain react to it)."""
    domain = email.rpartition("@")[2].lower()
    return EMAIL_VERIFIED.of(user_id, EmailVerified(email_domain=domain))


async def verify_email(db: Database, token: str) -> User:
    """Mark the address the link was sent to as verified.

    Opening the link again after it worked says "verified" again rather than "invalid": the
    holder of the link learns nothing new, and a double click is not an error."""
    found = await _find(db, VERIFY_EMAIL, token)
    if found is None:
        raise invalid_link()
    record, user = found
    if not user.is_active or record.email != user.email:
        raise invalid_link()
    if user.email_verified_at is not None:
        return user
    now = utcnow()
    async with db.transaction() as session:
        await redeem_mail_token(session, record.id, now)
        verified = await session.execute(
            update(User)
            .where(User.id == user.id, User.email == record.email)
            .values(email_verified_at=now)
        )
        if rows_affected(verified) == 1:
            stage(session, email_verified(user.id, record.email))
        await _use_up(session, user.id, VERIFY_EMAIL, now)
    user.email_verified_at = now
    log.info("email_verified", user_id=user.id)
    return user


async def reset_password(db: Database, token: str, password: str) -> User:
    """Set a new password through a reset link, and end every session of the account.

    The password is checked before the link is used up, so a refused password costs nothing.
    Receiving the link proves the inbox, so an unverified address becomes verified."""
    found = await _find(db, RESET_PASSWORD, token)
    if found is None or not _usable(*found):
        raise invalid_link()
    record, user = found
    problem = password_problem(password, email=user.email, name=user.name)
    if problem:
        raise Invalid("Choose a stronger password.", fields={"password": problem})
    new_hash = await hash_password_async(password)  # slow: outside the transaction
    now = utcnow()
    async with db.transaction() as session:
        await redeem_mail_token(session, record.id, now)
        values: dict[str, object] = {"password_hash": new_hash}
        if user.email_verified_at is None:
            values["email_verified_at"] = now
            stage(session, email_verified(user.id, user.email))
        await session.execute(
            update(User).where(User.id == user.id, User.is_active.is_(True)).values(values)
        )
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    log.info("password_reset", user_id=user.id)
    return user


def forgot_message(email: str) -> str:
    return (
        f"If an account uses {email}, we sent it a link to choose a new password. "
        "The link works for one hour."
    )


def resend_message(email: str, *, anonymous: bool) -> str:
    if anonymous:
        return f"If an account with the unverified address {email} exists, we sent it a new link."
    return f"We sent a new link to {email}. It works for 48 hours."
