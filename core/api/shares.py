"""Sharing notes, folders, files and conversations with people (viewer or editor) or by public
link (read-only, optional expiry and password, a view count).

- `GET /api/shares` lists what you shared (optionally of one object); `GET /api/shared-with-me`
  lists what others shared with you (a shared folder stands for everything inside it).
- Only an object's owner shares it, and changes or revokes its shares; revoking takes effect on
  the very next request.
- Sharing with an address that has no account yet waits for it: the invitation mail says to sign
  up with that address, and access starts once the new account has verified it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from limits import RateLimitItemPerHour
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import func, select

from multinotes import audit
from multinotes.audit import AuditEntry
from multinotes.db import utcnow
from multinotes.errors import RateLimited
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import Actor, require_user, require_verified
from multinotes.identity.service import normalize_email
from multinotes.keys import DB, RATE_LIMITS, SETTINGS
from multinotes.models import User
from multinotes.sharing import service as sharing
from multinotes.sharing.models import Share
from multinotes.sharing.notifications import Outbox
from multinotes.web.endpoint import endpoint

routes = web.RouteTableDef()

ObjectType = Literal["document", "folder", "file", "conversation"]
#: Person shares (each mails someone) a user may make per hour.
PERSON_SHARES_PER_HOUR = RateLimitItemPerHour(100)
ID = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_-]+$")


#: The audit action of each invitation (a share mailed to an address without an account).
INVITATION = "share.invitation"

class ShareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_type: ObjectType
    object_id: str = ID
    email: EmailStr | None = Field(
        default=None, max_length=320, description="Share with this person (or use `public`)."
    )
    public: bool = Field(default=False, description="Make a read-only public link instead.")
    role: Literal["viewer", "editor"] = Field(
        default="viewer",
        description="Editors may edit a note's title and content (notes and folders only).",
    )
    expires_at: datetime | None = Field(
        default=None, description="When access ends (ISO 8601; without a zone: UTC)."
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Public links only: visitors must enter it.",
    )


class SharePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["viewer", "editor"] | None = None
    expires_at: datetime | None = Field(default=None, description="`null`: never expires.")
    password: str | None = Field(
        default=None, max_length=256, description="Public links: a new password; `null` removes it."
    )


class Recipient(BaseModel):
    id: str | None
    name: str | None


class ShareOut(BaseModel):
    id: str
    object_type: str
    object_id: str
    title: str
    public: bool
    email: str | None = Field(description="The person's address (null for public links).")
    recipient: Recipient | None = Field(description="The account it reaches, if there is one.")
    role: str
    status: Literal["active", "pending", "expired", "revoked"] = Field(
        description="`pending`: no (verified) account has this address yet."
    )
    expires_at: str | None
    has_password: bool
    view_count: int = Field(description="Public links: how often the page was opened.")
    last_viewed_at: str | None
    created_at: str
    object_url: str = Field(description="Where the object opens on this site.")


class ShareCreated(ShareOut):
    url: str | None = Field(
        description="The public link (shown only now: only a hash of its token is kept)."
    )


class ShareList(BaseModel):
    shares: list[ShareOut]


class ShareQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_type: ObjectType | None = None
    object_id: str | None = Field(default=None, max_length=32)


class Owner(BaseModel):
    id: str
    name: str
    email: str


class SharedItem(BaseModel):
    object_type: str
    object_id: str
    title: str
    role: str
    owner: Owner
    shared_at: str
    expires_at: str | None
    url: str = Field(description="Where it opens on this site.")


class SharedWithMe(BaseModel):
    items: list[SharedItem]


def public_link(request: web.Request, token: str) -> str:
    return f"{public_base_url(request)}{sharing.PUBLIC_PREFIX}{token}"


async def _created_out(request: web.Request, created: sharing.Created) -> dict[str, Any]:
    out = await sharing.describe(request.app[DB], created.share)
    return {**out, "url": public_link(request, created.token) if created.token else None}


async def create(request: web.Request, body: ShareIn) -> sharing.Created:
    """Shared by the API and the share dialog: create the share, then send its mail.

    Sharing with a person sends mail to an address the sharer chooses, so it needs a verified
    address (where the install requires one) and is limited per hour."""
    actor = require_user(request)
    if body.email is not None:
        require_verified(request)
        limits = request.app[RATE_LIMITS]
        if limits.enabled and not await limits.limiter.hit(
            PERSON_SHARES_PER_HOUR, "share_person", actor.user_id
        ):
            raise RateLimited(
                "You shared with too many people in the last hour. Try again later.",
                retry_after=3600,
            )
        await _check_invitations(request, actor, body)
    outbox = Outbox()
    created = await sharing.create_share(
        request.app[DB],
        actor,
        object_type=body.object_type,
        object_id=body.object_id,
        email=str(body.email) if body.email is not None else None,
        public=body.public,
        role=body.role,
        expires_at=body.expires_at,
        password=body.password,
        outbox=outbox,
    )
    await outbox.send(request)
    if any(mail["template"] == "share_invite" for mail in outbox.mails):
        # Kept for abuse review: who mailed which (fingerprinted) address, about what.
        await audit.record(
            request.app,
            request,
            INVITATION,
            target_type="share",
            target_id=created.share.id,
            details={
                **audit.attempted_email(request.app, str(body.email)),
                "object_type": body.object_type,
                "object_id": body.object_id,
            },
        )
    return created


async def _check_invitations(request: web.Request, actor: Actor, body: ShareIn) -> None:
    """An invitation mails someone without an account, at an address the sharer chooses: at
    most ``invitations_per_day`` in 24 hours per account (fewer for an unverified one), so
    sharing cannot be used to send spam. Shares with people who have an account are not
    counted (they are notified in the app too, and limited per hour above), nor is sharing
    again with someone already invited (that mails no one)."""
    settings = request.app[SETTINGS]
    since = utcnow() - timedelta(days=1)
    address = normalize_email(str(body.email))
    async with request.app[DB].read() as session:
        if await session.scalar(select(User.id).where(User.email == address)):
            return
        again = await session.scalar(
            select(Share.id).where(
                Share.object_type == body.object_type,
                Share.object_id == body.object_id,
                Share.recipient_email == address,
                Share.live_key == "",
            )
        )
        if again is not None:
            return
        sent = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == INVITATION,
                AuditEntry.actor_id == actor.user_id,
                AuditEntry.created_at >= since,
            )
        )
    limit = (
        settings.invitations_per_day
        if actor.email_verified
        else settings.invitations_per_day_unverified
    )
    if int(sent or 0) >= limit:
        hint = "" if actor.email_verified else " Verify your address to invite more."
        raise RateLimited(
            f"You invited {limit} people without an account in the last 24 hours, the most "
            f"allowed. Try again tomorrow, or share with people who have an account.{hint}",
            code="invitation_limit",
            retry_after=3600,
        )


@routes.post("/api/shares", name="api_shares_create")
@endpoint(
    access="user",
    body=ShareIn,
    response=ShareCreated,
    status=201,
    tags=["sharing"],
    errors=[403, 404, 409, 422, 429],
)
async def create_share(request: web.Request, body: ShareIn) -> dict[str, Any]:
    """Share something you own with a person (`email`, as viewer or editor) or by public link
    (`public: true`, read-only; optional `expires_at` and `password`). The person is notified
    in the app and by mail. Sharing again with the same person changes the role and expiry.
    Files and conversations are shared read-only; sharing with yourself is a 422. Sharing with
    people needs a verified address (where the install requires one) and is limited to 100 an
    hour (429)."""
    return await _created_out(request, await create(request, body))


@routes.get("/api/shares", name="api_shares")
@endpoint(access="user", query=ShareQuery, response=ShareList, tags=["sharing"], errors=[404])
async def list_shares(request: web.Request, query: ShareQuery) -> dict[str, Any]:
    """What you shared (live shares, newest first); filter by `object_type` and `object_id`."""
    actor = require_user(request)
    shares = await sharing.shares_by(
        request.app[DB], actor.user_id, object_type=query.object_type, object_id=query.object_id
    )
    return {"shares": shares}


@routes.get("/api/shared-with-me", name="api_shared_with_me")
@endpoint(access="user", response=SharedWithMe, tags=["sharing"])
async def shared_with_me(request: web.Request) -> dict[str, Any]:
    """What others shared with you, newest first, one entry per object with your best role.
    A shared folder stands for everything inside it."""
    actor = require_user(request)
    return {"items": await sharing.shared_with(request.app[DB], actor.user_id)}


@routes.patch("/api/shares/{id}", name="api_share_update")
@endpoint(access="user", body=SharePatch, response=ShareOut, tags=["sharing"], errors=[404, 422])
async def update_share(request: web.Request, body: SharePatch) -> dict[str, Any]:
    """Change a share's role or expiry (`null`: never), or a public link's password (`null`:
    none). Only the person who shared can."""
    actor = require_user(request)
    changes = body.model_dump(exclude_unset=True)
    share = await sharing.update_share(
        request.app[DB], actor.user_id, request.match_info["id"], changes
    )
    return await sharing.describe(request.app[DB], share)


@routes.delete("/api/shares/{id}", name="api_share_delete")
@endpoint(access="user", status=204, tags=["sharing"], errors=[404])
async def revoke_share(request: web.Request) -> None:
    """Revoke a share: the next request through it is refused (a public link answers 410)."""
    actor = require_user(request)
    await sharing.revoke_share(request.app[DB], actor.user_id, request.match_info["id"])
