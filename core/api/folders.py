"""Folders: a tree per user, with a trash that keeps deleted folders for 30 days.

``GET /api/folders`` returns the tree flat: every live folder with its ``parent_id`` (``null`` at
the root), sorted by name; clients nest it themselves.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.notes import service as notes
from multinotes.sharing import access
from multinotes.sharing.service import folder_contents

routes = web.RouteTableDef()

ID = Field(min_length=1, max_length=32)


class FolderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    parent_id: str | None = Field(default=None, max_length=32, description="Default: the root.")


class FolderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    parent_id: str | None = Field(
        default=None, max_length=32, description="Move here; `null` moves to the root."
    )


class FolderOut(BaseModel):
    id: str
    name: str
    parent_id: str | None
    created_at: str
    updated_at: str


class FolderTree(BaseModel):
    folders: list[FolderOut] = Field(
        description="Every folder, flat; `parent_id` links them into a tree (null: the root)."
    )


class FolderFile(BaseModel):
    id: str
    name: str
    size: int
    content_type: str


class FolderListing(BaseModel):
    folder: FolderOut
    role: str = Field(description="Yours: owner, editor or viewer (shared with you).")
    folders: list[FolderOut] = Field(description="The subfolders, by name.")
    documents: list[dict[str, Any]] = Field(description="The notes in it (summaries), by title.")
    files: list[FolderFile] = Field(description="The files in it, by name.")


class TrashItem(BaseModel):
    kind: str
    id: str
    name: str | None = None
    title: str | None = None
    parent_id: str | None = None
    folder_id: str | None = None
    deleted_at: str
    purge_after: str


class TrashOut(BaseModel):
    items: list[TrashItem]


@routes.get("/api/folders", name="api_folders")
@endpoint(access="user", response=FolderTree, tags=["notes"])
async def list_folders(request: web.Request) -> dict[str, Any]:
    """All your folders as a flat list with `parent_id` (the tree, to be nested by the client)."""
    actor = require_user(request)
    folders = await notes.list_folders(request.app[DB], actor.user_id)
    return {"folders": [notes.folder_out(f) for f in folders]}


@routes.post("/api/folders", name="api_folders_create")
@endpoint(
    access="user", body=FolderIn, response=FolderOut, status=201, tags=["notes"], errors=[404]
)
async def create_folder(request: web.Request, body: FolderIn) -> dict[str, Any]:
    """Create a folder; names are unique within a parent, ignoring case (422 `name_taken`)."""
    actor = require_user(request)
    folder = await notes.create_folder(request.app[DB], actor.user_id, body.name, body.parent_id)
    return notes.folder_out(folder)


@routes.get("/api/folders/{id}", name="api_folder")
@endpoint(access="user", response=FolderListing, tags=["notes"], errors=[404])
async def get_folder(request: web.Request) -> dict[str, Any]:
    """One folder with what is directly inside it: subfolders, notes and files. Also for people
    it (or a folder above it) is shared with."""
    actor = require_user(request)
    db = request.app[DB]
    folder, rights = await access.folder(db, actor.user_id, request.match_info["id"])
    folders, documents, files = await folder_contents(db, rights.owner_id, folder.id)
    return {
        "folder": notes.folder_out(folder),
        "role": rights.role,
        "folders": [notes.folder_out(f) for f in folders],
        "documents": [notes.document_summary(d) for d in documents],
        "files": [
            {"id": f.id, "name": f.name, "size": f.size, "content_type": f.content_type}
            for f in files
        ],
    }


@routes.patch("/api/folders/{id}", name="api_folder_update")
@endpoint(access="user", body=FolderPatch, response=FolderOut, tags=["notes"], errors=[404])
async def update_folder(request: web.Request, body: FolderPatch) -> dict[str, Any]:
    """Rename and/or move a folder. Moving it into itself or below itself is a 422 on
    `parent_id` (`folder_cycle`)."""
    actor = require_user(request)
    changes = body.model_dump(exclude_unset=True)
    db, folder_id = request.app[DB], request.match_info["id"]
    async with access.owner_only(db, actor.user_id, "folder", folder_id, "rename or move it"):
        folder = await notes.update_folder(db, actor.user_id, folder_id, changes)
    return notes.folder_out(folder)


@routes.delete("/api/folders/{id}", name="api_folder_delete")
@endpoint(access="user", status=204, tags=["notes"], errors=[404])
async def delete_folder(request: web.Request) -> None:
    """Move a folder and everything in it to the trash (restorable for 30 days)."""
    actor = require_user(request)
    db, folder_id = request.app[DB], request.match_info["id"]
    async with access.owner_only(db, actor.user_id, "folder", folder_id, "delete it"):
        await notes.trash_folder(db, actor.user_id, folder_id)


@routes.post("/api/folders/{id}/restore", name="api_folder_restore")
@endpoint(access="user", response=FolderOut, tags=["notes"], errors=[404])
async def restore_folder(request: web.Request) -> dict[str, Any]:
    """Restore a trashed folder with its contents; it returns to its parent (or the root if the
    parent is gone), its name suffixed " (restored)" if the name was reused meanwhile."""
    actor = require_user(request)
    folder = await notes.restore_folder(request.app[DB], actor.user_id, request.match_info["id"])
    return notes.folder_out(folder)


@routes.get("/api/trash", name="api_trash")
@endpoint(access="user", response=TrashOut, tags=["notes"])
async def trash(request: web.Request) -> dict[str, Any]:
    """What you deleted in the last 30 days (folders and documents you deleted yourself; what
    went along with a folder comes back with it)."""
    actor = require_user(request)
    found = await notes.list_trash(request.app[DB], actor.user_id)
    items = [notes.trashed_out(f) for f in found["folders"]] + [
        notes.trashed_out(d) for d in found["documents"]
    ]
    items.sort(key=lambda item: item["deleted_at"], reverse=True)
    return {"items": items}
