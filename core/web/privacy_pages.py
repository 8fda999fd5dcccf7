"""Privacy pages: /account/privacy (download your data, delete your account), the page behind
the mailed cancel link, the public legal pages and their admin editor."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from multinotes import audit
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.http.session import clear_session_cookie
from multinotes.identity import service as identity
from multinotes.identity.account_mail import INVALID_LINK
from multinotes.identity.actor import require_admin, require_user
from multinotes.keys import DB, SETTINGS
from multinotes.markdown import render_markdown
from multinotes.privacy import deletion, exports, legal
from multinotes.privacy.models import ExportStatus
from multinotes.privacy.schemas import ExportOut, LegalIn

routes = web.RouteTableDef()


async def _exports_context(request: web.Request, user_id: str) -> dict[str, Any]:
    rows = [ExportOut.of(e) for e in await exports.list_exports(request.app[DB], user_id)]
    return {
        "exports": rows,
        "exporting": any(e.status in (ExportStatus.PENDING, ExportStatus.RUNNING) for e in rows),
    }


async def privacy_page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    actor = require_user(request)
    user = await identity.get_user(request.app[DB], actor.user_id)
    settings = request.app[SETTINGS]
    response = render(
        request,
        "account/privacy.html",
        {
            "nav": "account",
            "user": user,
            "has_password": user.password_hash is not None,
            "grace_days": settings.account_deletion_grace_days,
            "export_days": settings.data_export_expiry_days,
            **await _exports_context(request, actor.user_id),
            **extra,
        },
        status=status,
    )
    return response


@routes.get("/account/privacy", name="account_privacy")
@page(access="user")
async def account_privacy(request: web.Request) -> web.Response:
    return await privacy_page(request)


@routes.post("/account/privacy/export", name="account_privacy_export")
@page(access="user")
async def account_privacy_export(request: web.Request) -> web.StreamResponse:
    await exports.request_export(request)
    if request.headers.get("HX-Request") == "true":
        return await account_privacy_exports(request)
    return redirect(
        "/account/privacy#export",
        "Your data is being collected. We will mail you when it is ready.",
    )


@routes.get("/account/privacy/exports", name="account_privacy_exports")
@page(access="user")
async def account_privacy_exports(request: web.Request) -> web.Response:
    """The exports list alone, for htmx: it polls itself every 2 s while one is being built."""
    actor = require_user(request)
    return aiohttp_jinja2.render_template(
        "account/_exports.html", request, await _exports_context(request, actor.user_id)
    )


@routes.post("/account/privacy/delete", name="account_privacy_delete")
@page(access="user", rate="auth")
async def account_privacy_delete(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    if str(form.get("confirm", "")) != "yes":
        return await privacy_page(
            request,
            422,
            delete_error="Tick the box to confirm that you want your account deleted.",
            delete_fields={"confirm": "Tick this box to confirm."},
        )
    try:
        pending = await deletion.request_deletion(
            request,
            actor.user_id,
            password=str(form.get("password", "")) or None,
            confirm_email=str(form.get("confirm_email", "")) or None,
        )
    except AppError as exc:
        fields = exc.fields if isinstance(exc, Invalid) else {}
        return await privacy_page(
            request, exc.status, delete_error=exc.message, delete_fields=fields
        )
    response = redirect("/login", deletion.deletion_message(pending))
    clear_session_cookie(request, response)
    return response


# -- the mailed cancel link ---------------------------------------------------------------------


def _cancel_page(request: web.Request, context: dict[str, Any], status: int = 200) -> web.Response:
    response = render(request, "account/deletion_cancel.html", {"nav": "", **context}, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/account/deletion/cancel", name="account_deletion_cancel")
@page(access="public", rate="auth")
async def deletion_cancel_form(request: web.Request) -> web.Response:
    """The page behind the mailed link. Showing it changes nothing (mail scanners open links);
    the button does."""
    token = request.query.get("token", "")
    found = await deletion.pending_deletion(request.app[DB], token) if token else None
    if found is None:
        return _cancel_page(request, {"invalid": INVALID_LINK}, 400)
    pending, user = found
    return _cancel_page(
        request, {"token": token, "email": user.email, "purge_after": pending.purge_after}
    )


@routes.post("/account/deletion/cancel", name="account_deletion_cancel_submit")
@page(access="public", rate="auth")
async def deletion_cancel_submit(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        await deletion.cancel_deletion(request, str(form.get("token", "")))
    except Invalid:
        return _cancel_page(request, {"invalid": INVALID_LINK}, 400)
    return redirect("/login", "Your account is active again and will not be deleted. Log in.")


# -- legal pages --------------------------------------------------------------------------------


@routes.get(r"/legal/{doc:privacy|terms|cookies}", name="legal")
@page(access="public")
async def legal_page(request: web.Request) -> web.Response:
    document = await legal.legal_document(
        request.app[DB], request.app[SETTINGS], request.match_info["doc"]
    )
    return render(request, "legal/page.html", {"nav": "legal", "document": document})


async def _editor(request: web.Request, doc: str, status: int = 200, **extra: Any) -> web.Response:
    document = await legal.legal_document(request.app[DB], request.app[SETTINGS], doc)
    return render(
        request,
        "admin/legal.html",
        {
            "nav": "admin",
            "section": "legal",
            "documents": legal.DOCUMENTS,
            "document": document,
            "text": document.markdown,
            **extra,
        },
        status=status,
    )


@routes.get("/admin/legal", name="admin_legal")
@page(access="admin")
async def admin_legal(request: web.Request) -> web.Response:
    doc = request.query.get("doc", "privacy")
    return await _editor(request, doc if doc in legal.DOCUMENTS else "privacy")


@routes.post("/admin/legal", name="admin_legal_save")
@page(access="admin")
async def admin_legal_save(request: web.Request) -> web.Response:
    """Save a page's text, or (the Preview button, without JavaScript) show how it renders."""
    require_admin(request)
    form = await request.post()
    doc = legal.check_doc(str(form.get("doc", "")))
    text = str(form.get("markdown", "")).replace("\r\n", "\n")
    try:
        body = validate(LegalIn, {"markdown": text})
    except Invalid as exc:
        return await _editor(request, doc, exc.status, text=text, error=exc.message)
    if form.get("action") == "preview":
        return await _editor(request, doc, text=text, preview=render_markdown(text))
    await legal.save_legal_text(request.app[DB], doc, body.markdown)
    await audit.record(
        request.app, request, "legal.updated", target_type="legal_page", target_id=doc
    )
    return redirect(f"/admin/legal?doc={doc}", f"The {legal.DOCUMENTS[doc].lower()} was saved.")


@routes.post("/admin/legal/preview", name="admin_legal_preview")
@page(access="admin")
async def admin_legal_preview(request: web.Request) -> web.Response:
    """The preview alone, for htmx: the Markdown as visitors will see it."""
    require_admin(request)
    form = await request.post()
    text = str(form.get("markdown", ""))[: legal.MAX_LENGTH]
    return aiohttp_jinja2.render_template(
        "admin/_legal_preview.html", request, {"preview": render_markdown(text)}
    )
