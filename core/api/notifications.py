"""Your notifications: things shared with you, mentions of you in comments."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.sharing import notifications
from multinotes.sharing.schemas import ID_PATTERN, NotificationQuery

routes = web.RouteTableDef()


class Actor(BaseModel):
    id: str | None
    name: str


class NotificationOut(BaseModel):
    id: str
    kind: str = Field(
        description='"share" (shared with you), "mention" (in a comment), "low_balance" '
        '(credits fell below the low-balance mark), "schedule" (a schedule paused itself) or '
        '"plugin" (a plugin\'s message).'
    )
    actor: Actor
    object_type: str
    object_id: str
    title: str
    excerpt: str
    url: str = Field(description="Where to go from it, a path on this site.")
    read: bool
    created_at: str


class NotificationPage(BaseModel):
    unread: int = Field(description="How many of all your notifications are unread.")
    notifications: list[NotificationOut]
    next_cursor: str | None


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        default=None, max_length=500
    )
    all: bool = Field(default=False, description="Mark every notification read.")

    @model_validator(mode="after")
    def _one_of(self) -> ReadIn:
        if self.all == (self.ids is not None):
            raise ValueError("send either ids or all: true")
        return self


class ReadOut(BaseModel):
    marked: int
    unread: int


@routes.get("/api/notifications", name="api_notifications")
@endpoint(access="user", query=NotificationQuery, response=NotificationPage, tags=["sharing"])
async def list_notifications(request: web.Request, query: NotificationQuery) -> dict[str, Any]:
    """Your notifications, newest first, with the unread count; page with `before`."""
    actor = require_user(request)
    rows, cursor, unread = await notifications.list_notifications(
        request.app[DB],
        actor.user_id,
        before=query.before,
        limit=query.limit,
        unread_only=query.unread,
    )
    return {
        "unread": unread,
        "notifications": [notifications.notification_out(n) for n in rows],
        "next_cursor": cursor,
    }


@routes.post("/api/notifications/read", name="api_notifications_read")
@endpoint(access="user", body=ReadIn, response=ReadOut, tags=["sharing"], errors=[422])
async def mark_read(request: web.Request, body: ReadIn) -> dict[str, Any]:
    """Mark notifications read: `{"ids": [...]}` or `{"all": true}`."""
    actor = require_user(request)
    db = request.app[DB]
    marked = await notifications.mark_read(db, actor.user_id, None if body.all else body.ids)
    return {"marked": marked, "unread": await notifications.unread_count(db, actor.user_id)}
