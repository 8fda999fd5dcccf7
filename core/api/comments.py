"""Comments on notes (Markdown, with @mentions) and a note's activity feed.

Anyone who can see a note comments on it and reads its feed; authors edit and delete their own
comments; the note's owner may delete any comment on it. `@email` or `@Display Name` of someone
who can see the note notifies them (in the app and by mail); a mention of anyone else does
nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.sharing import comments
from multinotes.sharing.actions import add_comment
from multinotes.sharing.activity import list_activity

routes = web.RouteTableDef()


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=comments.MAX_BODY, description="Markdown.")


class Person(BaseModel):
    id: str | None
    name: str


class CommentOut(BaseModel):
    id: str
    document_id: str
    author: Person
    body: str
    html: str = Field(description="The body rendered from Markdown and sanitised.")
    mentions: list[str] = Field(description="Ids of the people it mentions.")
    created_at: str
    edited_at: str | None
    can_edit: bool
    can_delete: bool


class CommentList(BaseModel):
    comments: list[CommentOut]


class ActivityItem(BaseModel):
    kind: str = Field(
        description="created, edited, restore, restore_version, share, share_changed, unshare, "
        "comment; folder_share, folder_share_changed, folder_unshare for a folder above the note"
    )
    actor: Person | None
    at: str
    detail: dict[str, Any] = Field(
        description="What the event shows. Shares: share_id, public, email, role (and "
        "previous_role when the role changed); a folder's share also has folder_id and folder (its "
        "name). comment: comment_id and excerpt (null once deleted). edited/created: version "
        "and title. restore_version: restored and version. restore: folder when it came back "
        "with one."
    )


class ActivityOut(BaseModel):
    items: list[ActivityItem]


class ActivityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)


@routes.get("/api/documents/{id}/comments", name="api_document_comments")
@endpoint(access="user", response=CommentList, tags=["comments"], errors=[404])
async def list_comments(request: web.Request) -> dict[str, Any]:
    """The comments on a note, oldest first."""
    actor = require_user(request)
    rows = await comments.list_comments(request.app[DB], actor.user_id, request.match_info["id"])
    return {"comments": rows}


@routes.post("/api/documents/{id}/comments", name="api_document_comment_create")
@endpoint(
    access="user",
    body=CommentIn,
    response=CommentOut,
    status=201,
    tags=["comments"],
    errors=[404, 422],
)
async def create_comment(request: web.Request, body: CommentIn) -> dict[str, Any]:
    """Comment on a note you can see. People who can see it and are @mentioned (by email or
    display name) are notified."""
    return await add_comment(request, request.match_info["id"], body.body)


@routes.patch("/api/comments/{id}", name="api_comment_update")
@endpoint(
    access="user", body=CommentIn, response=CommentOut, tags=["comments"], errors=[403, 404, 422]
)
async def update_comment(request: web.Request, body: CommentIn) -> dict[str, Any]:
    """Edit your comment; people it newly mentions are notified."""
    actor = require_user(request)
    return await comments.edit_comment(request.app[DB], actor, request.match_info["id"], body.body)


@routes.delete("/api/comments/{id}", name="api_comment_delete")
@endpoint(access="user", status=204, tags=["comments"], errors=[403, 404])
async def delete_comment(request: web.Request) -> None:
    """Delete your comment (a note's owner may delete any comment on it)."""
    actor = require_user(request)
    await comments.delete_comment(request.app[DB], actor.user_id, request.match_info["id"])


@routes.get("/api/documents/{id}/activity", name="api_document_activity")
@endpoint(access="user", query=ActivityQuery, response=ActivityOut, tags=["comments"], errors=[404])
async def activity(request: web.Request, query: ActivityQuery) -> dict[str, Any]:
    """What happened to a note, newest first: created and edited (each saved version), shared,
    share changed, unshared, commented, restored from the trash, a version restored; with who
    did it and when. Shares, role changes and revokes of the folders the note is in (at any
    depth) are listed too, naming the folder, to whoever may open that folder (the owner, and
    the people it or a folder above it is shared with)."""
    actor = require_user(request)
    items = await list_activity(
        request.app[DB], actor.user_id, request.match_info["id"], query.limit
    )
    return {"items": items}
