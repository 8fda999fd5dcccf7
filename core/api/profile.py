"""Your profile: name, timezone, avatar, email change; and your security events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.api.account_security import MessageOut, TokenIn
from multinotes.http.endpoint import endpoint, raw
from multinotes.http.uploads import read_upload
from multinotes.identity import profile
from multinotes.identity import service as identity
from multinotes.identity.actor import require_user
from multinotes.identity.schemas import EmailChangeIn, ProfileOut, ProfilePatch
from multinotes.keys import DB
from multinotes.storage import objects

routes = web.RouteTableDef()


class SecurityEventOut(BaseModel):
    id: str
    created_at: datetime
    action: str
    label: str = Field(description="What happened, for people.")
    actor: str = Field(
        description="`you`, `administrator` (an admin acted on your account) or `someone` "
        "(e.g. a failed login with your address)."
    )
    ip: str | None
    device: str
    details: dict[str, Any]


class SecurityEventsPage(BaseModel):
    events: list[SecurityEventOut]
    next_cursor: str | None


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, max_length=32)


@routes.get("/api/me", name="api_me")
@endpoint(access="user", response=ProfileOut, tags=["profile"])
async def me(request: web.Request) -> ProfileOut:
    """The user making the request, with their profile."""
    actor = require_user(request)
    return ProfileOut.of(await identity.get_user(request.app[DB], actor.user_id))


@routes.patch("/api/me", name="api_me_update")
@endpoint(access="user", body=ProfilePatch, response=ProfileOut, tags=["profile"], errors=[422])
async def update_me(request: web.Request, body: ProfilePatch) -> ProfileOut:
    """Change your name or timezone. Any other field (role, email, balance, ...) is refused with
    422: the email changes through `POST /api/me/email`. There is no language setting: the
    interface is in English."""
    actor = require_user(request)
    return ProfileOut.of(await profile.apply_profile_patch(request, actor.user_id, body))


@routes.post("/api/me/avatar", name="api_me_avatar")
@endpoint(access="user", response=ProfileOut, tags=["profile"], errors=[413, 422], upload="avatar")
async def upload_avatar(request: web.Request) -> ProfileOut:
    """Upload an avatar as multipart/form-data in the field `avatar`: PNG, JPEG, WebP or GIF
    (judged by content, not name), at most 2 MiB by default. It is re-encoded as a 256x256 PNG
    without metadata."""
    actor = require_user(request)
    data = await read_upload(request)
    user = await profile.set_avatar(request.app, actor.user_id, data)
    await audit.record(
        request.app, request, "profile.avatar_changed", target_type="user", target_id=user.id
    )
    return ProfileOut.of(user)


@routes.delete("/api/me/avatar", name="api_me_avatar_delete")
@endpoint(access="user", status=204, tags=["profile"])
async def delete_avatar(request: web.Request) -> None:
    """Remove your avatar."""
    actor = require_user(request)
    if await profile.remove_avatar(request.app, actor.user_id):
        await audit.record(
            request.app,
            request,
            "profile.avatar_removed",
            target_type="user",
            target_id=actor.user_id,
        )


@routes.post("/api/me/email", name="api_me_email")
@endpoint(
    access="user",
    body=EmailChangeIn,
    response=MessageOut,
    status=202,
    tags=["profile"],
    rate="auth",
    errors=[422],
)
async def change_email(request: web.Request, body: EmailChangeIn) -> MessageOut:
    """Ask to change your email address (your password is needed). A link is mailed to the
    new address; the address changes when it is opened (`POST /api/me/email/confirm`). Your
    current address is told."""
    actor = require_user(request)
    new_email = await profile.request_email_change(
        request, actor.user_id, new_email=str(body.new_email), password=body.password
    )
    return MessageOut(message=profile.email_change_message(new_email))


@routes.post("/api/me/email/confirm", name="api_me_email_confirm")
@endpoint(
    access="public", body=TokenIn, response=ProfileOut, tags=["profile"], rate="auth", errors=[422]
)
async def confirm_email(request: web.Request, body: TokenIn) -> ProfileOut:
    """Apply an email change with the token from the link mailed to the new address."""
    return ProfileOut.of(await profile.confirm_email_change(request, body.token))


@routes.get("/api/me/security-events", name="api_me_security_events")
@endpoint(access="user", query=EventsQuery, response=SecurityEventsPage, tags=["profile"])
async def my_security_events(request: web.Request, query: EventsQuery) -> dict[str, Any]:
    """Security events of your account, newest first: logins and failed attempts, password,
    email and session changes, API keys, and what an administrator changed. Page with
    `before`."""
    actor = require_user(request)
    events, cursor = await profile.security_events(
        request.app, actor.user_id, limit=query.limit, before=query.before
    )
    return {"events": events, "next_cursor": cursor}


@routes.get(r"/avatars/{avatar_id:[0-9a-f]{32}}.png", name="avatar")
@raw(access="user", summary="An avatar image", content_type="image/png")
async def avatar(request: web.Request) -> web.StreamResponse:
    key = profile.avatar_key(request.match_info["avatar_id"])
    if key is None:
        raise web.HTTPNotFound()
    return await objects.serve(
        request,
        objects.storage_of(request.app),
        key,
        {
            "Content-Type": "image/png",
            "Content-Disposition": 'inline; filename="avatar.png"',
            "Cache-Control": "private, max-age=86400",
            # Even if a browser were talked into rendering it as a document: no script, no load.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
