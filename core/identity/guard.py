"""Login, registration and password reset, guarded: stricter rate limits per client IP and per
target account, a temporary lock after repeated failed logins, and audit entries.

The target account is the email address asked about, whether or not an account uses it: an
unknown address is counted, limited and locked exactly like a known one, and answered with the
same status, message and (no password check while locked, a dummy one otherwise) timing, so the
answers reveal nothing about which addresses have accounts. The API and the pages both call
these instead of the bare identity service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select

from multinotes import audit
from multinotes.abuse import signup as abuse_signup
from multinotes.db import new_id
from multinotes.errors import Invalid, RateLimited, Unauthorized
from multinotes.identity import service as identity
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.models import User
from multinotes.identity.service import normalize_email
from multinotes.keys import DB, RATE_LIMITS, SETTINGS
from multinotes.mail import queue_mail


def account_key(request: web.Request, email: str) -> str:
    """The rate-limit identity of an email address (keyed hash: no address in Redis)."""
    return "acct:" + audit.email_fingerprint(request.app[SETTINGS], normalize_email(email))


def _ip(request: web.Request) -> str:
    return f"ip:{request.remote}"


def locked_error(seconds: int) -> RateLimited:
    minutes = max(1, math.ceil(seconds / 60))
    return RateLimited(
        "Too many failed logins for this email address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, "
        "or reset your password by email.",
        code="login_locked",
        retry_after=seconds,
    )


async def _user_id_for(request: web.Request, email: str) -> str | None:
    async with request.app[DB].read() as session:
        user_id: str | None = await session.scalar(
            select(User.id).where(User.email == normalize_email(email))
        )
    return user_id


async def check_login(request: web.Request, *, email: str, password: str) -> User:
    """The user with these credentials, or ``Unauthorized`` / ``RateLimited`` (locked).

    Every failure counts against the address; ``login_lockout_failures`` of them within
    ``login_lockout_window_seconds`` lock it for ``login_lockout_seconds``, during which even
    the right password is refused. A success clears the count."""
    app = request.app
    limits = app[RATE_LIMITS]
    key = account_key(request, email)
    await limits.hit_named("login_ip", _ip(request))
    await limits.hit_named("login_account", key)
    locked = await limits.locked_for(key)
    if locked:
        await _record_failure(request, email, "locked")
        raise locked_error(locked)
    try:
        user = await identity.authenticate(app[DB], email=email, password=password)
    except Unauthorized:
        now_locked = await limits.login_failed(key)
        target = await _record_failure(request, email, "invalid_credentials")
        if now_locked:
            seconds = app[SETTINGS].login_lockout_seconds
            await audit.record(
                app,
                request,
                "auth.locked",
                actor_id=None,
                target_type="user" if target else None,
                target_id=target,
                details={**audit.attempted_email(app, email), "seconds": seconds},
            )
            raise locked_error(seconds) from None
        raise
    await limits.login_succeeded(key)
    await audit.record(
        app, request, "auth.login", actor_id=user.id, target_type="user", target_id=user.id
    )
    return user


async def _record_failure(request: web.Request, email: str, reason: str) -> str | None:
    """Audit a failed login: the address masked and fingerprinted, never the password. When an
    account uses the address, the entry is about it, so its owner sees the attempt."""
    app = request.app
    target = await _user_id_for(request, email)
    await audit.record(
        app,
        request,
        "auth.login_failed",
        actor_id=None,
        target_type="user" if target else None,
        target_id=target,
        details={**audit.attempted_email(app, email), "reason": reason},
    )
    return target


@dataclass(frozen=True)
class Registration:
    """What a sign-up answers with. ``created`` is False when the address already had an
    account: then ``user`` is an unsaved stand-in shaped like a new account, so the answer is
    the same as for a new address, and the owner was mailed instead."""

    user: User
    created: bool


async def register_account(
    request: web.Request, *, email: str, password: str, name: str
) -> Registration:
    """Create an account, limited per client IP and per address.

    An address that already has an account is answered exactly like a new one (registration
    must not tell who has an account, as login and forgot-password do not); its owner gets a
    "someone tried to sign up with your address" mail instead."""
    limits = request.app[RATE_LIMITS]
    await limits.hit_named("register_ip", _ip(request))
    await limits.hit_named("register_account", account_key(request, email))
    # Abuse rules: a burst from the network or a throw-away address may refuse the sign-up.
    pending = await abuse_signup.before_signup(request, email)
    try:
        user = await identity.register_user(
            request.app[DB], email=email, password=password, name=name
        )
    except Invalid as exc:
        if exc.error_code != "email_taken":
            raise
        return await _existing_address(request, email, name)
    await abuse_signup.after_signup(request, user, pending)
    await audit.record(
        request.app,
        request,
        "auth.register",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    return Registration(user, True)


async def _existing_address(request: web.Request, email: str, name: str) -> Registration:
    address = normalize_email(email)
    async with request.app[DB].read() as session:
        owner = await session.scalar(select(User).where(User.email == address))
    if owner is not None:
        await audit.record(
            request.app,
            request,
            "auth.register_existing",
            actor_id=None,
            target_type="user",
            target_id=owner.id,
            details=audit.attempted_email(request.app, address),
        )
        if owner.is_active:
            base = public_base_url(request)
            await queue_mail(
                request.app,
                template="signup_attempt",
                to=owner.email,
                context={
                    "name": owner.name,
                    "email": owner.email,
                    "login_link": f"{base}/login",
                    "reset_link": f"{base}/password/forgot",
                },
            )
    stand_in = User(id=new_id(), email=address, name=name.strip(), role="user")
    return Registration(stand_in, False)


async def throttle_reset(request: web.Request, email: str | None) -> None:
    """Count a password-reset request (``email``: the address a link was asked for) or a
    reset with a mailed token (``email`` None: per client IP only)."""
    limits = request.app[RATE_LIMITS]
    await limits.hit_named("reset_ip", _ip(request))
    if email is not None:
        await limits.hit_named("reset_account", account_key(request, email))
        await audit.record(
            request.app,
            request,
            "auth.password_reset_requested",
            details=audit.attempted_email(request.app, email),
        )
