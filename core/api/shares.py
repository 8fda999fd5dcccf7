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

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.sharing import service as sharing
from multinotes.sharing.actions import ObjectType, ShareIn, create, public_link

routes = web.RouteTableDef()


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


async def _created_out(request: web.Request, created: sharing.Created) -> dict[str, Any]:
    out = await sharing.describe(request.app[DB], created.share)
    return {**out, "url": public_link(request, created.token) if created.token else None}


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
