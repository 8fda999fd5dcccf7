"""Your profile: name, timezone, language, avatar, email change; and your security events."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import FileField
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from multinotes import audit
from multinotes.api.account_security import MessageOut, TokenIn
from multinotes.api.sessions import describe_user_agent
from multinotes.errors import BadRequest, Invalid, PayloadTooLarge
from multinotes.files import objects
from multinotes.identity import profile
from multinotes.identity import service as identity
from multinotes.identity.actor import require_user
from multinotes.keys import DB, SETTINGS
from multinotes.models import User
from multinotes.web.endpoint import check_upload, endpoint, raw

routes = web.RouteTableDef()


class ProfileOut(BaseModel):
    id: str
    email: str
    name: str
    role: str
    email_verified: bool = Field(
        description="Whether the address was confirmed through a mailed link. Installs that "
        "require it refuse to generate until it is (error code `email_unverified`)."
    )
    timezone: str = Field(description="An IANA timezone name, e.g. Europe/Berlin.")
    language: str = Field(description="The interface language: " + ", ".join(profile.LANGUAGES))
    avatar_url: str | None = Field(description="A 256x256 PNG, or null.")
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> ProfileOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            email_verified=user.email_verified_at is not None,
            timezone=user.timezone or profile.DEFAULT_TIMEZONE,
            language=user.language or profile.DEFAULT_LANGUAGE,
            avatar_url=profile.avatar_url(user),
            created_at=user.created_at,
        )


class ProfilePatch(BaseModel):
    # Role, balance, email and anything else unknown is rejected, never silently applied.
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA name; null resets to UTC."
    )
    language: str | None = Field(default=None, max_length=16, description="null resets to English.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("A name cannot be empty.")
        value = value.strip()
        if not value:
            raise ValueError("A name cannot be empty.")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        problem = None if value is None else profile.timezone_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        problem = None if value is None else profile.language_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class EmailChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256, description="Your current password.")


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


PROFILE_FIELDS = ("name", "timezone", "language")


async def apply_profile_patch(request: web.Request, user_id: str, body: ProfilePatch) -> User:
    """Store validated profile changes and audit which fields changed (the API and the page)."""
    changes = {
        name: getattr(body, name) for name in PROFILE_FIELDS if name in body.model_fields_set
    }
    user = await profile.update_profile(request.app[DB], user_id, changes)
    if changes:
        await audit.record(
            request.app,
            request,
            "profile.updated",
            target_type="user",
            target_id=user_id,
            details={"fields": sorted(changes)},
        )
    return user


@routes.get("/api/me", name="api_me")
@endpoint(access="user", response=ProfileOut, tags=["profile"])
async def me(request: web.Request) -> ProfileOut:
    """The user making the request, with their profile."""
    actor = require_user(request)
    return ProfileOut.of(await identity.get_user(request.app[DB], actor.user_id))


@routes.patch("/api/me", name="api_me_update")
@endpoint(access="user", body=ProfilePatch, response=ProfileOut, tags=["profile"], errors=[422])
async def update_me(request: web.Request, body: ProfilePatch) -> ProfileOut:
    """Change your name, timezone or language. Any other field (role, email, balance, ...) is
    refused with 422: the email changes through `POST /api/me/email`."""
    actor = require_user(request)
    return ProfileOut.of(await apply_profile_patch(request, actor.user_id, body))


async def read_upload(request: web.Request, field: str = "avatar") -> bytes:
    """The bytes of one file field of a multipart/form-data body (the API's and the page's)."""
    limit = request.app[SETTINGS].avatar_max_bytes
    too_large = PayloadTooLarge(
        f"The avatar is larger than {limit // 1024} KiB.", code="avatar_too_large"
    )
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise too_large  # before reading a byte of it
    check_upload(request, field)
    try:
        form = await request.post()  # cached: the CSRF check of a page form may have read it
    except (ValueError, HttpProcessingError):  # broken framing or part headers, a cut-off body
        raise BadRequest(
            "The form data is malformed.",
            code="bad_multipart",
            fields={field: "The multipart body could not be read."},
        ) from None
    item = form.get(field)
    if not isinstance(item, FileField):
        raise Invalid("Choose an image file.", fields={field: "Choose an image file."})
    data: bytes = await asyncio.to_thread(item.file.read, limit + 1)
    if len(data) > limit:
        raise too_large
    return data


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
    return MessageOut(message=email_change_message(new_email))


def email_change_message(new_email: str) -> str:
    return (
        f"We sent a link to {new_email}. Your address changes when you open it (within 24 hours)."
    )


@routes.post("/api/me/email/confirm", name="api_me_email_confirm")
@endpoint(
    access="public", body=TokenIn, response=ProfileOut, tags=["profile"], rate="auth", errors=[422]
)
async def confirm_email(request: web.Request, body: TokenIn) -> ProfileOut:
    """Apply an email change with the token from the link mailed to the new address."""
    return ProfileOut.of(await profile.confirm_email_change(request, body.token))


def event_out(entry: audit.AuditEntry, user_id: str) -> dict[str, Any]:
    if entry.actor_id == user_id:
        who = "you"
    elif entry.actor_id is None:
        who = "someone"
    else:
        who = "administrator"
    return {
        "id": entry.id,
        "created_at": entry.created_at,
        "action": entry.action,
        "label": audit.label(entry.action),
        "actor": who,
        "ip": entry.ip,
        "device": describe_user_agent(entry.user_agent),
        "details": entry.details or {},
    }


async def security_events(
    request: web.Request, user_id: str, *, limit: int, before: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    entries = await audit.list_entries(
        request.app[DB], limit=limit + 1, before=before, subject=user_id
    )
    more = len(entries) > limit
    entries = entries[:limit]
    cursor = entries[-1].id if more and entries else None
    return [event_out(e, user_id) for e in entries], cursor


@routes.get("/api/me/security-events", name="api_me_security_events")
@endpoint(access="user", query=EventsQuery, response=SecurityEventsPage, tags=["profile"])
async def my_security_events(request: web.Request, query: EventsQuery) -> dict[str, Any]:
    """Security events of your account, newest first: logins and failed attempts, password,
    email and session changes, API keys, and what an administrator changed. Page with
    `before`."""
    actor = require_user(request)
    events, cursor = await security_events(
        request, actor.user_id, limit=query.limit, before=query.before
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
