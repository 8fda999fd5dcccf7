"""Admin user management: list, search and filter users, view one, block or unblock, change
role and rate-limit tier. Nothing money-related (the wallet has its own endpoints), and no
impersonation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from multinotes.http.endpoint import endpoint
from multinotes.identity.admin import (
    UserPatch,
    UsersQuery,
    apply_user_patch,
    list_users,
    user_detail,
)

routes = web.RouteTableDef()


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
