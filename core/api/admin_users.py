"""Admin user management: list, search and filter users, view one, block or unblock, change
role and rate-limit tier. Nothing money-related (the wallet has its own endpoints), and no
impersonation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from multinotes import audit
from multinotes.db import utcnow
from multinotes.errors import Conflict, NotFound
from multinotes.identity import profile
from multinotes.identity import service as identity
from multinotes.identity.actor import require_admin
from multinotes.keys import DB
from multinotes.models import RATE_LIMIT_TIERS, ROLES, ApiKey, AuthSession, User
from multinotes.web.endpoint import endpoint

routes = web.RouteTableDef()

Role = Literal["admin", "user"]
Tier = Literal["exempt", "default", "strict"]
assert set(ROLES) == {"admin", "user"} and set(RATE_LIMIT_TIERS) == {"exempt", "default", "strict"}


class AdminUserOut(BaseModel):
    id: str
    email: str
    name: str
    role: str
    is_active: bool
    status: str = Field(description="`active` or `blocked`.")
    email_verified: bool
    rate_limit_tier: str
    timezone: str
    language: str
    avatar_url: str | None
    created_at: datetime


class AuditEntryOut(BaseModel):
    id: str
    created_at: datetime
    action: str
    label: str
    actor_id: str | None
    actor_email: str | None = Field(description="null when no one was logged in, or deleted.")
    target_type: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class AdminUserDetailOut(AdminUserOut):
    active_sessions: int
    api_keys: int
    recent_events: list[AuditEntryOut] = Field(description="Their 20 latest security events.")


class UsersPage(BaseModel):
    users: list[AdminUserOut]
    next_cursor: str | None


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
        "language": user.language or profile.DEFAULT_LANGUAGE,
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
    role_changed = user.role != before["role"]
    block_changed = user.is_active != before["is_active"]
    if role_changed or (block_changed and not user.is_active):
        await identity.revoke_all_sessions(db, user.id)
    if role_changed and user.role != "admin":
        await identity.drop_admin_scope(db, user.id)
    target = {"target_type": "user", "target_id": user.id}
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


@routes.get("/api/admin/users", name="api_admin_users")
@endpoint(access="admin", query=UsersQuery, response=UsersPage, tags=["admin"])
async def admin_list_users(request: web.Request, query: UsersQuery) -> dict[str, Any]:
    """Users, newest first: search email and name with `q`, filter by role, status and tier,
    page with `before` (the previous page's `next_cursor`)."""
    return await list_users(request.app, query)


@routes.get("/api/admin/users/{id}", name="api_admin_user")
@endpoint(access="admin", response=AdminUserDetailOut, tags=["admin"], errors=[404])
async def admin_get_user(request: web.Request) -> dict[str, Any]:
    """One user, with counts of active sessions and API keys and their latest security
    events."""
    return await user_detail(request.app, request.match_info["id"])


@routes.patch("/api/admin/users/{id}", name="api_admin_user_update")
@endpoint(
    access="admin",
    body=UserPatch,
    response=AdminUserDetailOut,
    tags=["admin"],
    errors=[404, 409, 422],
)
async def admin_update_user(request: web.Request, body: UserPatch) -> dict[str, Any]:
    """Block or unblock a user, change their role or rate-limit tier.

    Refused (409) for the last active admin's demotion or block, and for blocking yourself.
    Any other field (email, balance, password, ...) is refused with 422."""
    user = await apply_user_patch(request, request.match_info["id"], body)
    return await user_detail(request.app, user.id)
