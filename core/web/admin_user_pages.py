"""Admin console pages: users (list, search, filter, one user's details with block/unblock,
role and rate-limit tier, and their security events) and the audit log. Plain forms with
POST-redirect-GET, like the rest of the console."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from multinotes import audit
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_admin
from multinotes.identity.admin import (
    AuditQuery,
    UserPatch,
    UsersQuery,
    apply_user_patch,
    list_users,
    search_audit,
)
from multinotes.identity.admin import user_detail as load_user_detail
from multinotes.identity.models import ROLES

routes = web.RouteTableDef()

TIER_LABELS = {
    "exempt": "Exempt (no rate limits)",
    "default": "Default",
    "strict": "Strict (lower limits)",
}


def _filters(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    return {n: request.query.get(n, "").strip() for n in names if request.query.get(n, "").strip()}


def _next_url(path: str, filters: dict[str, str], cursor: str | None) -> str | None:
    return f"{path}?{urlencode({**filters, 'before': cursor})}" if cursor else None


@routes.get("/admin/users", name="admin_users")
@page(access="admin")
async def admin_users(request: web.Request) -> web.Response:
    filters = _filters(request, ("q", "role", "status", "rate_limit_tier"))
    error = None
    try:
        query = validate(
            UsersQuery, {**filters, "before": request.query.get("before") or None, "limit": 50}
        )
        result = await list_users(request.app, query)
    except Invalid as exc:
        error = "Some filters are invalid: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        result = {"users": [], "next_cursor": None}
    return render(
        request,
        "admin/users.html",
        {
            "nav": "admin",
            "section": "users",
            "filters": filters,
            "users": result["users"],
            "next_url": _next_url("/admin/users", filters, result["next_cursor"]),
            "paged": bool(request.query.get("before")),
            "roles": ROLES,
            "tiers": TIER_LABELS,
            "error": error,
        },
        status=422 if error else 200,
    )


async def user_page(
    request: web.Request, user_id: str, *, status: int = 200, **extra: Any
) -> web.Response:
    detail = await load_user_detail(request.app, user_id)
    return render(
        request,
        "admin/user.html",
        {
            "nav": "admin",
            "section": "users",
            "user": detail,
            "roles": ROLES,
            "tiers": TIER_LABELS,
            "is_self": detail["id"] == require_admin(request).user_id,
            **extra,
        },
        status=status,
    )


@routes.get("/admin/users/{id}", name="admin_user")
@page(access="admin")
async def admin_user(request: web.Request) -> web.Response:
    return await user_page(request, request.match_info["id"])


@routes.post("/admin/users/{id}", name="admin_user_update")
@page(access="admin")
async def admin_user_update(request: web.Request) -> web.Response:
    user_id = request.match_info["id"]
    form = await request.post()
    data: dict[str, Any] = {}
    for name in ("role", "rate_limit_tier"):
        value = form.get(name)
        if isinstance(value, str) and value:
            data[name] = value
    active = form.get("is_active")
    if active in ("true", "false"):
        data["is_active"] = active == "true"
    try:
        body = validate(UserPatch, data)
        user = await apply_user_patch(request, user_id, body)
    except AppError as exc:
        if exc.status == 404:
            raise
        return await user_page(request, user_id, status=exc.status, error=exc.message)
    done = []
    if "is_active" in data:
        done.append("blocked" if not user.is_active else "active")
    if "role" in data:
        done.append(f"role {user.role}")
    if "rate_limit_tier" in data:
        done.append(f"rate-limit tier {user.rate_limit_tier}")
    return redirect(f"/admin/users/{user.id}", f"{user.email}: {', '.join(done) or 'unchanged'}.")


@routes.get("/admin/audit", name="admin_audit")
@page(access="admin")
async def admin_audit(request: web.Request) -> web.Response:
    filters = _filters(request, ("actor", "action", "target_type", "target_id", "since", "until"))
    error = None
    try:
        query = validate(
            AuditQuery, {**filters, "before": request.query.get("before") or None, "limit": 50}
        )
        result = await search_audit(request.app, query)
    except Invalid as exc:
        error = "Some filters are invalid: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        result = {"entries": [], "next_cursor": None}
    return render(
        request,
        "admin/audit.html",
        {
            "nav": "admin",
            "section": "audit",
            "filters": filters,
            "entries": result["entries"],
            "next_url": _next_url("/admin/audit", filters, result["next_cursor"]),
            "paged": bool(request.query.get("before")),
            "actions": audit.ACTIONS,
            "error": error,
        },
        status=422 if error else 200,
    )
