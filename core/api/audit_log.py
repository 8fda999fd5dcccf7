"""The audit log for admins: browse and filter. There is no route to change or delete an entry
(the log is append-only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from multinotes import audit
from multinotes.api.admin_users import AuditEntryOut, audit_entries_out
from multinotes.identity.service import normalize_email
from multinotes.keys import DB
from multinotes.models import User
from multinotes.web.endpoint import endpoint

routes = web.RouteTableDef()


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


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: str | None


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


@routes.get("/api/admin/audit", name="api_admin_audit")
@endpoint(access="admin", query=AuditQuery, response=AuditPage, tags=["admin"])
async def admin_audit(request: web.Request, query: AuditQuery) -> dict[str, Any]:
    """Security events, newest first: filter by actor, action, target and date range
    (`since` inclusive, `until` exclusive); page with `before`."""
    return await search_audit(request.app, query)
