"""Accounts, sessions and API keys: the operations the API and the pages share."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from multinotes.db import Database, rows_affected, utcnow
from multinotes.errors import Forbidden, Invalid, NotFound, Unauthorized
from multinotes.identity import scopes as key_scopes
from multinotes.identity.actor import Actor
from multinotes.identity.models import ApiKey, AuthSession, User
from multinotes.identity.passwords import (
    hash_password_async,
    needs_rehash,
    password_problem,
    verify_password_async,
)

API_KEY_PREFIX = "mn_"
# Touch last_seen / last_used at most this often, so reads stay reads.
TOUCH_INTERVAL = timedelta(minutes=5)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class NewSession:
    session: AuthSession
    token: str


async def register_user(db: Database, *, email: str, password: str, name: str) -> User:
    """Create an account. The first account on a fresh install becomes admin."""
    email = normalize_email(email)
    problem = password_problem(password, email=email, name=name)
    if problem:
        raise Invalid("Choose a stronger password.", fields={"password": problem})
    # ~180 ms of CPU at the standard cost: in the hashing pool (argon2 releases the GIL),
    # outside the transaction, so the event loop keeps serving everyone else.
    password_hash = await hash_password_async(password)
    try:
        async with db.transaction() as session:
            existing = await session.scalar(select(User.id).where(User.email == email))
            if existing is not None:
                raise Invalid(
                    "An account with this email already exists.",
                    code="email_taken",
                    fields={"email": "already registered"},
                )
            users = await session.scalar(select(func.count()).select_from(User))
            user = User(
                email=email,
                name=name.strip(),
                password_hash=password_hash,
                role="admin" if users == 0 else "user",
            )
            session.add(user)
    except IntegrityError:
        # Two registrations raced for one email: the unique index decided.
        raise Invalid(
            "An account with this email already exists.",
            code="email_taken",
            fields={"email": "already registered"},
        ) from None
    return user


async def authenticate(db: Database, *, email: str, password: str) -> User:
    """The user with these credentials; one vague error for every failure."""
    async with db.read() as session:
        user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    ok = await verify_password_async(user.password_hash if user else None, password)
    if not ok or user is None:
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if not user.is_active and not user.blocked_reason:
        # Closed or blocked without a stated reason (an account being deleted, a console block):
        # the same answer as a wrong password.
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if not user.is_active:
        # Blocked after an abuse review: with the right password its owner is told why (this
        # reveals nothing to anyone else).
        raise Forbidden(
            "This account is blocked: "
            + (user.blocked_reason or "contact support to find out why."),
            code="account_blocked",
        )
    assert user.password_hash is not None
    if needs_rehash(user.password_hash):
        new_hash = await hash_password_async(password)
        async with db.transaction() as session:
            await session.execute(
                update(User).where(User.id == user.id).values(password_hash=new_hash)
            )
    return user


async def create_session(
    db: Database, user: User, *, max_age: timedelta, ip: str | None, user_agent: str | None
) -> NewSession:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    record = AuthSession(
        user_id=user.id,
        token_hash=token_hash(token),
        csrf_token=secrets.token_urlsafe(32),
        ip=ip,
        user_agent=(user_agent or "")[:400] or None,
        created_at=now,
        last_seen_at=now,
        expires_at=now + max_age,
    )
    async with db.transaction() as session:
        session.add(record)
    return NewSession(record, token)


async def revoke_session(db: Database, session_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


async def revoke_all_sessions(
    db: Database, user_id: str, except_session_id: str | None = None
) -> int:
    """Log ``user_id`` out everywhere (but on ``except_session_id``); returns how many sessions
    ended. Call it whenever a user's password or privileges change."""
    condition = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)]
    if except_session_id is not None:
        condition.append(AuthSession.id != except_session_id)
    async with db.transaction() as session:
        result = await session.execute(
            update(AuthSession).where(*condition).values(revoked_at=utcnow())
        )
    return rows_affected(result)


async def active_sessions(db: Database, user_id: str, *, idle_minutes: int) -> list[AuthSession]:
    """The sessions still usable: neither revoked, expired nor idle for ``idle_minutes``."""
    return await list_sessions(db, user_id, idle_timeout=timedelta(minutes=idle_minutes))


async def list_sessions(
    db: Database, user_id: str, *, idle_timeout: timedelta | None = None
) -> list[AuthSession]:
    """The user's sessions that still work, most recently used first."""
    now = utcnow()
    async with db.read() as session:
        rows = await session.scalars(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.last_seen_at.desc(), AuthSession.id.desc())
        )
        return [s for s in rows if _session_is_live(s, now, idle_timeout)]


async def revoke_user_session(db: Database, user_id: str, session_id: str) -> None:
    """End one of the user's own sessions; someone else's id is as unknown as a made-up one."""
    async with db.transaction() as session:
        result = await session.execute(
            update(AuthSession)
            .where(
                AuthSession.id == session_id,
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
    if rows_affected(result) == 0:
        raise NotFound("No such session.")


async def change_password(
    db: Database,
    user_id: str,
    *,
    current_password: str,
    new_password: str,
    keep_session_id: str | None,
) -> int:
    """Set a new password (the current one must match) and end every other session; returns
    how many sessions ended."""
    user = await get_user(db, user_id)
    if not await verify_password_async(user.password_hash, current_password):
        raise Invalid(
            "The current password is wrong.",
            code="wrong_password",
            fields={"current_password": "This is not your current password."},
        )
    problem = password_problem(new_password, email=user.email, name=user.name)
    if problem:
        raise Invalid("Choose a stronger password.", fields={"new_password": problem})
    new_hash = await hash_password_async(new_password)  # outside the transaction
    async with db.transaction() as session:
        await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
    return await revoke_all_sessions(db, user.id, except_session_id=keep_session_id)


async def _credential_with_user(
    db: Database, model: Any, digest_column: Any, digest: str
) -> tuple[Any, User] | None:
    async with db.read() as session:
        row = (
            await session.execute(
                select(model, User)
                .join(User, User.id == model.user_id)
                .where(digest_column == digest)
            )
        ).first()
    return None if row is None else (row[0], row[1])


def _actor(user: User, via: Literal["session", "api_key"], **extra: Any) -> Actor:
    return Actor(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        via=via,
        email_verified=user.email_verified_at is not None,
        rate_limit_tier=user.rate_limit_tier,
        timezone=user.timezone or None,
        **extra,
    )


def _session_is_live(
    auth_session: AuthSession, now: datetime, idle_timeout: timedelta | None
) -> bool:
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        return False
    # last_seen_at is only refreshed every TOUCH_INTERVAL, a rounding the idle limit can afford.
    return idle_timeout is None or now - auth_session.last_seen_at <= idle_timeout


@dataclass(frozen=True)
class ResolvedSession:
    """A session that is not revoked and whose user is active, with what each use checks
    again (expiry, idle time): what ``identity.key_cache.SessionCache`` keeps."""

    actor: Actor
    expires_at: datetime
    last_seen_at: datetime


async def resolve_session(db: Database, digest: str) -> ResolvedSession | None:
    """The session with this token hash, as one read; None when unknown, revoked or its user
    blocked (or deleted). Expiry and idle time are left to ``session_usable``."""
    found = await _credential_with_user(db, AuthSession, AuthSession.token_hash, digest)
    if found is None:
        return None
    auth_session, user = found
    if auth_session.revoked_at is not None or not user.is_active:
        return None
    actor = _actor(user, "session", session_id=auth_session.id, csrf_token=auth_session.csrf_token)
    return ResolvedSession(actor, auth_session.expires_at, auth_session.last_seen_at)


def session_usable(
    resolved: ResolvedSession, now: datetime, idle_timeout: timedelta | None
) -> bool:
    """Whether a resolved session still signs in now: not expired, not idle too long."""
    if resolved.expires_at <= now:
        return False
    return idle_timeout is None or now - resolved.last_seen_at <= idle_timeout


async def touch_session(db: Database, resolved: ResolvedSession, now: datetime) -> bool:
    """Record the session's use, at most every TOUCH_INTERVAL; True when it wrote. The write
    changes nothing a cached session resolves to, so it drops no cache entry."""
    last = resolved.last_seen_at
    if now - last <= TOUCH_INTERVAL:
        return False
    async with db.transaction() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.id == resolved.actor.session_id)
            .values(last_seen_at=now)
            .execution_options(**{CREDENTIALS_UNCHANGED: True})
        )
    return True


async def actor_from_session(
    db: Database, token: str, *, idle_timeout: timedelta | None = None
) -> Actor | None:
    """The actor of a session cookie, or None when it is unknown, revoked, expired, idle for
    longer than ``idle_timeout``, or its user is blocked (or deleted: the row is gone).

    Reads the database every time; the auth middleware goes through
    ``identity.key_cache.SessionCache``, which calls the same steps."""
    now = utcnow()
    resolved = await resolve_session(db, token_hash(token))
    if resolved is None or not session_usable(resolved, now, idle_timeout):
        return None
    await touch_session(db, resolved, now)
    return resolved.actor


async def session_still_signs_in(
    db: Database, token: str, *, idle_timeout: timedelta | None = None
) -> bool:
    """Whether a session cookie still signs its user in (as ``actor_from_session``), without
    counting the check as use: a long-lived connection re-checks its session this way, and an
    open tab must not keep an idle session alive."""
    found = await _credential_with_user(db, AuthSession, AuthSession.token_hash, token_hash(token))
    if found is None:
        return False
    auth_session, user = found
    return _session_is_live(auth_session, utcnow(), idle_timeout) and user.is_active


@dataclass(frozen=True)
class ResolvedKey:
    """A live API key's actor (effective scopes included), with what each use checks again."""

    actor: Actor
    expires_at: datetime | None
    last_used_at: datetime | None


#: Execution option on a statement that writes the users or api_keys table without changing
#: what a key resolves to (the last-use touch), so ``identity.key_cache`` keeps its entries.
CREDENTIALS_UNCHANGED = "credentials_unchanged"


async def resolve_api_key(db: Database, digest: str) -> ResolvedKey | None:
    """The key with this hash, as one read; None when unknown, revoked or its owner blocked.
    Expiry is left to ``check_key_expiry`` so a cached key expires on time."""
    found = await _credential_with_user(db, ApiKey, ApiKey.key_hash, digest)
    if found is None:
        return None
    api_key, user = found
    if api_key.revoked_at is not None or not user.is_active:
        return None
    actor = _actor(user, "api_key", api_key_id=api_key.id)
    actor = replace(actor, scopes=key_scopes.effective(key_scopes.parse(api_key.scopes), user.role))
    return ResolvedKey(actor, api_key.expires_at, api_key.last_used_at)


def check_key_expiry(resolved: ResolvedKey, now: datetime) -> None:
    """An expired key is a 401 ``api_key_expired``."""
    expires_at = resolved.expires_at
    if expires_at is not None and expires_at <= now:
        raise Unauthorized(
            f"The API key expired on {expires_at:%Y-%m-%d %H:%M} UTC. "
            "Create a new one on your account page.",
            code="api_key_expired",
        )


async def touch_api_key(db: Database, resolved: ResolvedKey, now: datetime) -> bool:
    """Record the key's use, at most every TOUCH_INTERVAL; True when it wrote."""
    last = resolved.last_used_at
    if last is not None and now - last <= TOUCH_INTERVAL:
        return False
    async with db.transaction() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == resolved.actor.api_key_id)
            .values(last_used_at=now)
            .execution_options(**{CREDENTIALS_UNCHANGED: True})
        )
    return True


async def actor_from_api_key(db: Database, key: str) -> Actor | None:
    """The actor of a Bearer key with its effective scopes; None when the key is unknown,
    revoked or its owner blocked. An expired key is a 401 ``api_key_expired``.

    Reads the database every time; the auth middleware goes through
    ``identity.key_cache.ApiKeyCache``, which calls the same steps."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    now = utcnow()
    resolved = await resolve_api_key(db, token_hash(key))
    if resolved is None:
        return None
    check_key_expiry(resolved, now)
    await touch_api_key(db, resolved, now)
    return resolved.actor


def check_key_scopes(scopes: Iterable[str], role: str) -> frozenset[str]:
    """The scopes asked for a key, refused when empty or beyond what the owner's role allows."""
    wanted = frozenset(scopes)
    if not wanted:
        raise Invalid(fields={"scopes": "Give the key at least one scope."})
    unknown = wanted - set(key_scopes.SCOPES)
    if unknown:
        raise Invalid(fields={"scopes": "No such scope: " + ", ".join(sorted(unknown)) + "."})
    beyond = wanted - key_scopes.allowed_for_role(role)
    if beyond:
        raise Invalid(
            "A key cannot do more than its owner.",
            code="scope_not_allowed",
            fields={"scopes": "Only administrators can give a key the admin scope."},
        )
    return wanted


async def create_api_key(
    db: Database,
    user_id: str,
    name: str,
    *,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Returns the stored key and the plaintext, which is shown this once and never again.
    Without ``scopes`` the key gets ``scopes.default_scopes`` of the owner's role."""
    user = await get_user(db, user_id)
    wanted = check_key_scopes(
        key_scopes.default_scopes(user.role) if scopes is None else scopes, user.role
    )
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid(fields={"expires_at": "Choose a time in the future."})
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        user_id=user_id,
        name=name.strip(),
        prefix=key[:10],
        key_hash=token_hash(key),
        scopes=key_scopes.serialize(wanted),
        expires_at=expires_at,
    )
    async with db.transaction() as session:
        session.add(record)
    return record, key


async def drop_admin_scope(db: Database, user_id: str) -> None:
    """The user is no longer an administrator: their keys lose the admin scope for good
    (a later promotion does not bring it back)."""
    async with db.transaction() as session:
        records = await session.scalars(
            select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.scopes.contains("admin"))
        )
        for record in records:
            record.scopes = key_scopes.serialize(key_scopes.parse(record.scopes) - {"admin"})


async def narrow_api_key(db: Database, user_id: str, key_id: str, scopes: Iterable[str]) -> ApiKey:
    """Take scopes away from one of the user's keys; adding one is refused (make a new key)."""
    wanted = frozenset(scopes)
    async with db.transaction() as session:
        record = await session.scalar(
            select(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .with_for_update()
        )
        if record is None:  # first: someone else's key is a 404 whatever the body says
            raise NotFound("No such API key.")
        if not wanted:
            raise Invalid(fields={"scopes": "Keep at least one scope, or revoke the key."})
        user = await session.get(User, user_id)
        role = user.role if user is not None else "user"
        current = key_scopes.effective(key_scopes.parse(record.scopes), role)
        wider = wanted - current
        if wider:
            raise Invalid(
                "A key can only be narrowed; create a new key for more.",
                code="scope_not_allowed",
                fields={"scopes": "This key does not have " + ", ".join(sorted(wider)) + "."},
            )
        record.scopes = key_scopes.serialize(wanted)
    return record


async def list_api_keys(db: Database, user_id: str) -> list[ApiKey]:
    async with db.read() as session:
        rows = await session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc())
        )
        return list(rows)


async def revoke_all_api_keys(db: Database, user_id: str) -> int:
    async with db.transaction() as session:
        result = await session.execute(
            update(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return rows_affected(result)


async def revoke_api_key(db: Database, user_id: str, key_id: str) -> None:
    async with db.transaction() as session:
        result = await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    if rows_affected(result) == 0:
        raise NotFound("No such API key.")


async def get_user(db: Database, user_id: str) -> User:
    async with db.read() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


async def create_admin(db: Database, *, email: str, password: str, name: str) -> User:
    """For ``multinotes admin create``: a new admin, or promote an existing account.

    The operator names the address, so the account counts as verified. A promoted account's
    sessions end: privileges change only with a fresh login."""
    email = normalize_email(email)
    async with db.read() as session:
        existing = await session.scalar(select(User).where(User.email == email))
    verified_at = utcnow()
    if existing is not None:
        async with db.transaction() as session:
            await session.execute(
                update(User)
                .where(User.id == existing.id)
                .values(role="admin", email_verified_at=existing.email_verified_at or verified_at)
            )
        if existing.role != "admin":
            await revoke_all_sessions(db, existing.id)
        existing.role = "admin"
        existing.email_verified_at = existing.email_verified_at or verified_at
        return existing
    user = await register_user(db, email=email, password=password, name=name)
    async with db.transaction() as session:
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(role="admin", email_verified_at=verified_at)
        )
    user.role = "admin"
    user.email_verified_at = verified_at
    return user
