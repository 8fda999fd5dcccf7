"""Managing people as an administrator: find and filter accounts, look at one, block or
unblock it, change its role or rate-limit tier, and browse the audit log. The admin API and the
admin console pages both call these, with the same query and patch models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, or_, select

from multinotes import audit
from multinotes.db import utcnow
from multinotes.errors import Conflict, NotFound
from multinotes.identity import profile
from multinotes.identity import service as identity
from multinotes.identity.actor import require_admin
from multinotes.identity.models import RATE_LIMIT_TIERS, ROLES, ApiKey, AuthSession, User
from multinotes.identity.service import normalize_email
from multinotes.keys import DB

Role = Literal["admin", "user"]
Tier = Literal["exempt", "default", "strict"]
assert set(ROLES) == {"admin", "user"} and set(RATE_LIMIT_TIERS) == {"exempt", "default", "strict"}


class UsersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=320, description="Part of the email or name.")
    role: Role | None = None
    status: Literal["active", "blocked"] | None = None
    rate_limit_tier: Tier | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, max_length=32, description="`next_cursor`.")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = Field(default=None, description="Changing it logs the user out.")
    is_active: bool | None = Field(
        default=None, description="false blocks the user: sessions and API keys stop at once."
    )
    rate_limit_tier: Tier | None = Field(
        default=None, description="`exempt`: no rate limits; `strict`: the strict limits."
    )


def user_out(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "is_active": user.is_active,
        "status": "active" if user.is_active else "blocked",
        "email_verified": user.email_verified_at is not None,
        "rate_limit_tier": user.rate_limit_tier,
        "timezone": user.timezone or profile.DEFAULT_TIMEZONE,
        "avatar_url": profile.avatar_url(user),
        "created_at": user.created_at,
    }


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


async def list_users(app: web.Application, query: UsersQuery) -> dict[str, Any]:
    """Newest accounts first, filtered; ``before`` continues after a page's last id."""
    statement = select(User).order_by(User.id.desc()).limit(query.limit + 1)
    if query.q and query.q.strip():
        pattern = _like(query.q.strip())
        statement = statement.where(
            or_(
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(User.name).like(pattern, escape="\\"),
            )
        )
    if query.role:
        statement = statement.where(User.role == query.role)
    if query.status:
        statement = statement.where(User.is_active.is_(query.status == "active"))
    if query.rate_limit_tier:
        statement = statement.where(User.rate_limit_tier == query.rate_limit_tier)
    if query.before:
        statement = statement.where(User.id < query.before)
    async with app[DB].read() as session:
        users = list(await session.scalars(statement))
    more = len(users) > query.limit
    users = users[: query.limit]
    return {
        "users": [user_out(u) for u in users],
        "next_cursor": users[-1].id if more and users else None,
    }


async def audit_entries_out(
    app: web.Application, entries: list[audit.AuditEntry]
) -> list[dict[str, Any]]:
    """Entries for admins, with the actors' email addresses."""
    ids = {e.actor_id for e in entries if e.actor_id}
    emails: dict[str, str] = {}
    if ids:
        async with app[DB].read() as session:
            rows = await session.execute(select(User.id, User.email).where(User.id.in_(ids)))
            emails = {row[0]: row[1] for row in rows}
    return [
        {
            "id": e.id,
            "created_at": e.created_at,
            "action": e.action,
            "label": audit.label(e.action),
            "actor_id": e.actor_id,
            "actor_email": emails.get(e.actor_id) if e.actor_id else None,
            "target_type": e.target_type,
            "target_id": e.target_id,
            "ip": e.ip,
            "user_agent": e.user_agent,
            "details": e.details or {},
        }
        for e in entries
    ]


async def user_detail(app: web.Application, user_id: str) -> dict[str, Any]:
    user = await identity.get_user(app[DB], user_id)
    now = utcnow()
    async with app[DB].read() as session:
        sessions = await session.scalar(
            select(func.count())
            .select_from(AuthSession)
            .where(
                AuthSession.user_id == user.id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
        )
        keys = await session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        )
    events = await audit.list_entries(app[DB], limit=20, subject=user.id)
    return {
        **user_out(user),
        "active_sessions": int(sessions or 0),
        "api_keys": int(keys or 0),
        "recent_events": await audit_entries_out(app, events),
    }


async def apply_user_patch(request: web.Request, user_id: str, body: UserPatch) -> User:
    """Change a user's role, block state or tier (the API and the console page share this).

    The last active admin can be neither demoted nor blocked, and an admin cannot block
    themselves. A changed role or a block logs the user out everywhere (a blocked user's API
    keys stop working too, as long as the block lasts)."""
    admin = require_admin(request)
    changes = {
        name: getattr(body, name)
        for name in ("role", "is_active", "rate_limit_tier")
        if getattr(body, name) is not None
    }
    if user_id == admin.user_id and changes.get("is_active") is False:
        raise Conflict("You cannot block yourself.", code="cannot_block_self")
    db = request.app[DB]
    async with db.transaction() as session:
        # Lock every admin row first, in one order, then the target: two admins changing each
        # other at once cannot both pass the last-admin check, nor deadlock.
        admins = list(
            await session.scalars(
                select(User.id)
                .where(User.role == "admin", User.is_active.is_(True))
                .order_by(User.id)
                .with_for_update()
            )
        )
        user = await session.scalar(select(User).where(User.id == user_id).with_for_update())
        if user is None:
            raise NotFound("No such user.")
        before = {"role": user.role, "is_active": user.is_active, "tier": user.rate_limit_tier}
        loses_admin = user.id in admins and (
            changes.get("role", "admin") != "admin" or changes.get("is_active", True) is False
        )
        if loses_admin and len(admins) <= 1:
            raise Conflict(
                "This is the last active administrator: make someone else an admin first.",
                code="last_admin",
            )
        for name, value in changes.items():
            setattr(user, name, value)
        if changes.get("is_active") is not None:
            # A block from here gives no reason; one from the abuse queue sets it afterwards.
            user.blocked_reason = None
    role_changed = user.role != before["role"]
    block_changed = user.is_active != before["is_active"]
    if role_changed or (block_changed and not user.is_active):
        await identity.revoke_all_sessions(db, user.id)
    if role_changed and user.role != "admin":
        await identity.drop_admin_scope(db, user.id)
    target: dict[str, Any] = {"target_type": "user", "target_id": user.id}
    if role_changed:
        await audit.record(
            request.app,
            request,
            "user.role_changed",
            **target,
            details={"from": before["role"], "to": user.role},
        )
    if block_changed:
        action = "user.unblocked" if user.is_active else "user.blocked"
        await audit.record(request.app, request, action, **target)
    if user.rate_limit_tier != before["tier"]:
        await audit.record(
            request.app,
            request,
            "user.rate_limit_tier_changed",
            **target,
            details={"from": before["tier"], "to": user.rate_limit_tier},
        )
    return user


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(
        default=None, max_length=320, description="The acting user: an id or an email address."
    )
    action: str | None = Field(
        default=None,
        max_length=64,
        description='An action ("auth.login"), or a family ending in a dot ("auth.").',
    )
    target_type: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=200)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, max_length=32, description="`next_cursor`.")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A date or time without a zone is UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


async def actor_id_for(app: web.Application, actor: str | None) -> str | None:
    """An actor filter as given: an email address is looked up (an unknown one matches no
    entry), anything else is taken as a user id."""
    if not actor or not actor.strip():
        return None
    actor = actor.strip()
    if "@" not in actor:
        return actor
    async with app[DB].read() as session:
        user_id = await session.scalar(select(User.id).where(User.email == normalize_email(actor)))
    return user_id or "-"  # no user has the id "-"


async def search_audit(app: web.Application, query: AuditQuery) -> dict[str, Any]:
    entries = await audit.list_entries(
        app[DB],
        limit=query.limit + 1,
        before=query.before,
        actor_id=await actor_id_for(app, query.actor),
        action=query.action or None,
        target_type=query.target_type or None,
        target_id=query.target_id or None,
        since=query.since,
        until=query.until,
    )
    more = len(entries) > query.limit
    entries = entries[: query.limit]
    return {
        "entries": await audit_entries_out(app, entries),
        "next_cursor": entries[-1].id if more and entries else None,
    }
