"""Privacy: download all your data, delete your account, and the legal pages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.api.account_security import MessageOut, TokenIn
from multinotes.errors import NotFound
from multinotes.http.endpoint import endpoint
from multinotes.http.session import clear_session_cookie
from multinotes.identity.actor import require_admin, require_user
from multinotes.keys import DB, SETTINGS
from multinotes.privacy import deletion, exports, legal
from multinotes.privacy.schemas import ExportOut, LegalIn
from multinotes.storage import objects

routes = web.RouteTableDef()

Doc = Literal["privacy", "terms", "cookies"]


class DeleteMeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(
        default=None, max_length=256, description="Your password (accounts that have one)."
    )
    confirm_email: str | None = Field(
        default=None,
        max_length=320,
        description="Accounts without a password (Google/Facebook sign-in): your email address.",
    )


class DeletionOut(BaseModel):
    status: Literal["pending"]
    purge_after: datetime = Field(description="When the account and its data are deleted.")
    message: str


class LegalOut(BaseModel):
    doc: str
    title: str
    markdown: str
    html: str = Field(description="Sanitised HTML.")
    is_default: bool = Field(description="The built-in text (no admin edited it).")
    updated_at: datetime | None

    @classmethod
    def of(cls, document: legal.LegalDocument) -> LegalOut:
        return cls(
            doc=document.doc,
            title=document.title,
            markdown=document.markdown,
            html=document.html,
            is_default=document.is_default,
            updated_at=document.updated_at,
        )


@routes.post("/api/me/export", name="api_me_export")
@endpoint(access="user", response=ExportOut, status=202, tags=["privacy"])
async def start_export(request: web.Request) -> ExportOut:
    """Start building a zip of all your data (JSON files and your media) in the background; a
    mail tells you when it is ready. While one is being built, this returns that one. Follow
    its progress at `GET /api/me/exports/{id}`. POST only: no GET may change anything."""
    return ExportOut.of(await exports.request_export(request))


@routes.get("/api/me/exports", name="api_me_exports")
@endpoint(access="user", response=list[ExportOut], tags=["privacy"])
async def list_exports(request: web.Request) -> list[ExportOut]:
    """Your recent data exports, newest first."""
    actor = require_user(request)
    return [ExportOut.of(e) for e in await exports.list_exports(request.app[DB], actor.user_id)]


@routes.get("/api/me/exports/{id}", name="api_me_export_status")
@endpoint(access="user", response=ExportOut, tags=["privacy"], errors=[404])
async def export_status(request: web.Request) -> ExportOut:
    """One of your data exports: its status and progress."""
    actor = require_user(request)
    return ExportOut.of(
        await exports.get_export(request.app[DB], actor.user_id, request.match_info["id"])
    )


@routes.get("/api/me/exports/{id}/download", name="api_me_export_download")
@endpoint(access="user", tags=["privacy"], errors=[404], content_type="application/zip")
async def download_export(request: web.Request) -> web.StreamResponse:
    """The zip of a finished export (until it expires)."""
    actor = require_user(request)
    export = await exports.get_export(request.app[DB], actor.user_id, request.match_info["id"])
    if not exports.downloadable(export) or export.path is None:
        raise NotFound("This export is not ready, or it expired.")
    name = f"multinotes-data-{export.created_at:%Y%m%d-%H%M}.zip"
    try:
        return await objects.serve(
            request,
            objects.storage_of(request.app),
            objects.key_of(export.path),
            {
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )
    except NotFound:
        raise NotFound("This export is not ready, or it expired.") from None


@routes.delete("/api/me", name="api_me_delete")
@endpoint(
    access="user",
    body=DeleteMeIn,
    response=DeletionOut,
    status=202,
    tags=["privacy"],
    rate="auth",
    errors=[409, 422],
)
async def delete_me(request: web.Request, body: DeleteMeIn) -> web.Response:
    """Delete your account. Give your `password` (or, for an account without one, your email
    address as `confirm_email`). The account stops working at once (sessions, API keys) and is
    deleted with all its data after the grace period (14 days by default); a mailed link
    cancels it until then. Credit movements are kept, anonymised."""
    actor = require_user(request)
    pending = await deletion.request_deletion(
        request, actor.user_id, password=body.password, confirm_email=body.confirm_email
    )
    out = DeletionOut(
        status="pending",
        purge_after=pending.purge_after,
        message=deletion.deletion_message(pending),
    )
    response = web.json_response(out.model_dump(mode="json"), status=202)
    clear_session_cookie(request, response)
    return response


@routes.post("/api/me/deletion/cancel", name="api_me_deletion_cancel")
@endpoint(
    access="public", body=TokenIn, response=MessageOut, tags=["privacy"], rate="auth", errors=[422]
)
async def cancel_deletion(request: web.Request, body: TokenIn) -> MessageOut:
    """Cancel your account's deletion with the token from the mailed link; the account works
    again (log in anew)."""
    await deletion.cancel_deletion(request, body.token)
    return MessageOut(message="Your account is active again. Log in to continue.")


@routes.get("/api/legal/{doc}", name="api_legal")
@endpoint(access="public", response=LegalOut, tags=["privacy"], errors=[404])
async def legal_page(request: web.Request) -> LegalOut:
    """A legal page (`privacy`, `terms` or `cookies`) as Markdown and sanitised HTML."""
    return LegalOut.of(
        await legal.legal_document(
            request.app[DB], request.app[SETTINGS], request.match_info["doc"]
        )
    )


@routes.put("/api/admin/legal/{doc}", name="api_admin_legal_update")
@endpoint(access="admin", body=LegalIn, response=LegalOut, tags=["privacy"], errors=[404, 422])
async def update_legal_page(request: web.Request, body: LegalIn) -> LegalOut:
    """Replace a legal page's text (Markdown); an empty text restores the default."""
    require_admin(request)
    doc = legal.check_doc(request.match_info["doc"])
    await legal.save_legal_text(request.app[DB], doc, body.markdown)
    await audit.record(
        request.app, request, "legal.updated", target_type="legal_page", target_id=doc
    )
    return LegalOut.of(await legal.legal_document(request.app[DB], request.app[SETTINGS], doc))
