"""A note sent to a remote destination (``POST /api/documents/{id}/export``): Notion, Google
Docs... through the user's connected account; the answer is the address of the page or
document created there (or updated, when the note was exported there before)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.http.endpoint import endpoint
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import require_user
from multinotes.note_exports import remote

routes = web.RouteTableDef()


class RemoteExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field(
        min_length=1, max_length=64, description="A remote exporter's id (remote: true)."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The exporter's options.")


class LinkOut(BaseModel):
    url: str = Field(description="The page or document at the service.")


@routes.post("/api/documents/{id}/export", name="api_document_export_remote")
@endpoint(
    access="user",
    body=RemoteExportIn,
    response=LinkOut,
    tags=["exports"],
    errors=[404, 409, 422, 502, 503],
)
async def export_document_remote(request: web.Request, body: RemoteExportIn) -> dict[str, Any]:
    """Send a note to a remote destination through your connected account: a new page the
    first time, the same page updated afterwards. 409 `not_connected` or `reconnect_required`
    when the account must be connected (again) first. Also for people the note is shared with."""
    actor = require_user(request)
    link = await remote.export_remote(
        request.app,
        actor.user_id,
        request.match_info["id"],
        body.format,
        body.options,
        public_base_url(request),
    )
    return {"url": link.url}
