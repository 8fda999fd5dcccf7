"""Organisation spaces over HTTP: moving a note, folder, conversation or prompt template between
spaces (audited), what an organisation's space holds, and the workspace switcher in the top bar
(a POST sets the space the person works in; the GET only draws the switcher)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import endpoint, page, validate
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render, safe_next
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.organisations import service, spaces
from multinotes.organisations.workspace import WORKSPACE_COOKIE, current_workspace
from multinotes.sharing import access

routes = web.RouteTableDef()
TAGS = ["organisations"]
ID = r"^[0-9A-Za-z_-]{1,32}$"


class MoveSpaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str | None = Field(
        pattern=ID,
        description="The organisation whose space it moves to; null: its owner's own space.",
    )


class MovedOut(BaseModel):
    id: str
    organisation_id: str | None = Field(description="The space it is in now (null: personal).")


class SpaceItem(BaseModel):
    id: str
    title: str
    owner_id: str
    updated_at: str


class SpaceOut(BaseModel):
    folders: list[SpaceItem]
    documents: list[SpaceItem]
    conversations: list[SpaceItem] = Field(
        description="Members read them at `/api/conversations/{id}`."
    )
    templates: list[SpaceItem] = Field(description="Members use them as any template.")


#: What moves between spaces, and how.
MOVERS = {
    "document": spaces.move_document,
    "folder": spaces.move_folder,
    "conversation": spaces.move_conversation,
    "template": spaces.move_template,
}


async def _record(request: web.Request, moved: spaces.Moved) -> None:
    await audit.record(
        request.app,
        request,
        f"{moved.kind}.space_moved",
        target_type=moved.kind,
        target_id=moved.id,
        details={"from": moved.before, "to": moved.after},
    )


async def move(request: web.Request, kind: str, item_id: str, target: str | None) -> Any:
    """Both doors: move, then audit."""
    actor = require_user(request)
    moved = await MOVERS[kind](request.app[DB], actor.user_id, item_id, target)
    await _record(request, moved)
    return moved


@routes.post("/api/documents/{id}/move-space", name="api_document_move_space")
@endpoint(access="user", body=MoveSpaceIn, response=MovedOut, tags=TAGS, errors=[403, 404, 409])
async def move_document(request: web.Request, body: MoveSpaceIn) -> dict[str, Any]:
    """Move a note into an organisation's space (its owner, a member there) or out of it (its
    owner, or the organisation's owner and admins). Its members then read and edit it; a note
    in a folder of another space leaves that folder."""
    moved = await move(request, "document", request.match_info["id"], body.org_id)
    return {"id": moved.id, "organisation_id": moved.after}


@routes.post("/api/folders/{id}/move-space", name="api_folder_move_space")
@endpoint(access="user", body=MoveSpaceIn, response=MovedOut, tags=TAGS, errors=[403, 404, 409])
async def move_folder(request: web.Request, body: MoveSpaceIn) -> dict[str, Any]:
    """Move a folder with everything inside it between spaces (the same rules as a note)."""
    moved = await move(request, "folder", request.match_info["id"], body.org_id)
    return {"id": moved.id, "organisation_id": moved.after}


@routes.post("/api/conversations/{id}/move-space", name="api_conversation_move_space")
@endpoint(access="user", body=MoveSpaceIn, response=MovedOut, tags=TAGS, errors=[403, 404])
async def move_conversation(request: web.Request, body: MoveSpaceIn) -> dict[str, Any]:
    """Move a conversation into an organisation's space (its owner, a member there) or out of
    it (its owner, or the organisation's owner and admins). Its members then read it, and your
    prompts in it draw from the organisation's wallet."""
    moved = await move(request, "conversation", request.match_info["id"], body.org_id)
    return {"id": moved.id, "organisation_id": moved.after}


@routes.post("/api/templates/{id}/move-space", name="api_template_move_space")
@endpoint(access="user", body=MoveSpaceIn, response=MovedOut, tags=TAGS, errors=[403, 404])
async def move_template(request: web.Request, body: MoveSpaceIn) -> dict[str, Any]:
    """Move a prompt template into an organisation's space (its owner, a member there) or out
    of it (its owner, or the organisation's owner and admins). Its members then see and use
    it; the organisation's owner and admins may change it too."""
    moved = await move(request, "template", request.match_info["id"], body.org_id)
    return {"id": moved.id, "organisation_id": moved.after}


def _item(row: Any, title: str, owner_id: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": title,
        "owner_id": owner_id or row.user_id,
        "updated_at": row.updated_at.isoformat(),
    }


@routes.get("/api/orgs/{id}/space", name="api_org_space")
@endpoint(access="user", response=SpaceOut, tags=TAGS, errors=[404])
async def organisation_space(request: web.Request) -> dict[str, Any]:
    """The folders, notes, conversations and prompt templates in the organisation's space
    (members: open them as usual, at `/api/folders/{id}`, `/api/documents/{id}`,
    `/api/conversations/{id}` and `/api/templates/{id}`)."""
    actor = require_user(request)
    who = await access.organisation(request.app[DB], actor.user_id, request.match_info["id"])
    folders, documents = await spaces.contents(request.app[DB], who.organisation_id)
    conversations, templates = await spaces.shared_work(request.app[DB], who.organisation_id)
    return {
        "folders": [_item(f, f.name) for f in folders],
        "documents": [_item(d, d.title) for d in documents],
        "conversations": [_item(c, c.title) for c in conversations],
        "templates": [_item(t, t.title, t.owner_id) for t in templates],
    }


# -- the workspace switcher ----------------------------------------------------------------------


@routes.get("/workspace/switcher", name="workspace_switcher")
@page(access="user")
async def switcher(request: web.Request) -> web.Response:
    """The top bar's switcher (loaded into the page): the spaces you may work in."""
    actor = require_user(request)
    return render(
        request,
        "organisations/_switcher.html",
        {
            "memberships": await service.for_user(request.app[DB], actor.user_id),
            "workspace": await current_workspace(request),
            "next": safe_next(request.query.get("next")),
        },
    )


@routes.post("/workspace", name="workspace_switch")
@page(access="user")
async def switch(request: web.Request) -> web.Response:
    """Work in your own space (``space=personal``) or an organisation's (its id): new chats pay
    from its wallet and uploads count against its storage until you switch back."""
    actor = require_user(request)
    form = await request.post()
    space = form_field(form, "space")
    back = safe_next(form_field(form, "next") or "/")
    if space in ("", "personal"):
        response = redirect(back, "You are working in your personal space.")
        response.del_cookie(WORKSPACE_COOKIE, path="/")
        return response
    try:
        validate(MoveSpaceIn, {"org_id": space})
        who = await access.organisation(request.app[DB], actor.user_id, space)
    except AppError as exc:
        if isinstance(exc, Invalid):
            return redirect(back, "Choose one of your organisations.", "error")
        raise
    organisation = await service.get(request.app[DB], who)
    response = redirect(back, f"You are working in {organisation.name}.")
    response.set_cookie(
        WORKSPACE_COOKIE,
        who.organisation_id,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
    )
    return response


@routes.post("/organisations/{id}/space/move", name="organisation_space_move")
@page(access="user")
async def page_move(request: web.Request) -> web.Response:
    """The organisation page's buttons: bring one of your notes, conversations or templates
    in, or take an item out."""
    actor = require_user(request)
    org_id = request.match_info["id"]
    await access.organisation(request.app[DB], actor.user_id, org_id)  # 404 for outsiders
    form = await request.post()
    kind = form_field(form, "kind")
    item_id = form_field(form, "item_id")
    into = form_field(form, "direction") != "out"
    back = f"/organisations/{org_id}"
    if kind not in MOVERS or not item_id:
        return redirect(back, "Choose something to move.", "error")
    try:
        await move(request, kind, item_id, org_id if into else None)
    except AppError as exc:
        return redirect(back, exc.message, "error")
    return redirect(back, "Moved into the space." if into else "Moved out of the space.")
