"""The audit log for admins: browse and filter. There is no route to change or delete an entry
(the log is append-only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from multinotes.api.admin_users import AuditEntryOut
from multinotes.http.endpoint import endpoint
from multinotes.identity.admin import AuditQuery, search_audit

routes = web.RouteTableDef()


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: str | None


@routes.get("/api/admin/audit", name="api_admin_audit")
@endpoint(access="admin", query=AuditQuery, response=AuditPage, tags=["admin"])
async def admin_audit(request: web.Request, query: AuditQuery) -> dict[str, Any]:
    """Security events, newest first: filter by actor, action, target and date range
    (`since` inclusive, `until` exclusive); page with `before`."""
    return await search_audit(request.app, query)
