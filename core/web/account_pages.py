"""Account security pages: verify an address, reset a forgotten password, change it, and
manage sessions. Plain forms with POST-redirect-GET, like the rest of the pages."""

from __future__ import annotations

from aiohttp import web

from multinotes import audit
from multinotes.errors import Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render, safe_next
from multinotes.http.session import clear_session_cookie
from multinotes.identity import account_mail
from multinotes.identity import service as identity
from multinotes.identity.account_mail import (
    RESET_PASSWORD,
    VERIFY_EMAIL,
    forgot_message,
    queue_account_mail,
    resend_message,
)
from multinotes.identity.actor import current_actor, require_user
from multinotes.identity.guard import throttle_reset
from multinotes.identity.schemas import ForgotIn
from multinotes.keys import DB
from multinotes.web.pages import account_page

routes = web.RouteTableDef()


# -- email verification -------------------------------------------------------------------------


@routes.get("/verify", name="verify_email")
@page(access="public", rate="auth")
async def verify_email(request: web.Request) -> web.Response:
    """Opening the mailed link verifies the address at once and says so."""
    token = request.query.get("token", "")
    context = {"nav": "", "hide_verify_banner": True}
    try:
        if not token:
            raise account_mail.invalid_link()
        user = await account_mail.verify_email(request.app[DB], token)
    except Invalid as exc:
        response = render(request, "account/verify.html", {**context, "error": exc.message}, 400)
    else:
        await audit.record(
            request.app,
            request,
            "auth.email_verified",
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
        )
        response = render(request, "account/verify.html", {**context, "email": user.email})
    return response


@routes.post("/account/verification/resend", name="verification_resend")
@page(access="user", rate="auth")
async def verification_resend(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    back = safe_next(str(form.get("next", "/")))
    if actor.email_verified:
        return redirect(back, "Your email address is already verified.")
    await queue_account_mail(request, VERIFY_EMAIL, actor.email)
    return redirect(back, resend_message(actor.email, anonymous=False))


# -- forgotten password -------------------------------------------------------------------------


@routes.get("/password/forgot", name="password_forgot")
@page(access="public")
async def password_forgot_form(request: web.Request) -> web.Response:
    return render(request, "account/password_forgot.html", {"nav": "login", "fields": {}})


@routes.post("/password/forgot", name="password_forgot_submit")
@page(access="public", rate="auth")
async def password_forgot_submit(request: web.Request) -> web.Response:
    form = await request.post()
    email = str(form.get("email", "")).strip()
    try:
        body = validate(ForgotIn, {"email": email})
    except Invalid as exc:
        return render(
            request,
            "account/password_forgot.html",
            {"nav": "login", "error": exc.message, "fields": exc.fields, "email": email},
            status=exc.status,
        )
    await throttle_reset(request, str(body.email))
    await queue_account_mail(request, RESET_PASSWORD, str(body.email))
    return render(
        request,
        "account/password_forgot.html",
        {"nav": "login", "sent": forgot_message(str(body.email)), "fields": {}},
    )


def _reset_form(
    request: web.Request, token: str, *, error: str | None = None, field: str | None = None
) -> web.Response:
    response = render(
        request,
        "account/password_reset.html",
        {"nav": "login", "token": token, "error": error, "field_error": field},
        status=422 if error else 200,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _reset_invalid(request: web.Request) -> web.Response:
    return render(
        request,
        "account/password_reset.html",
        {"nav": "login", "invalid": account_mail.INVALID_LINK},
        status=400,
    )


@routes.get("/password/reset", name="password_reset")
@page(access="public", rate="auth")
async def password_reset_form(request: web.Request) -> web.Response:
    """The form behind the mailed link. Showing it does not use the link up."""
    token = request.query.get("token", "")
    if not token or await account_mail.reset_link_user(request.app[DB], token) is None:
        return _reset_invalid(request)
    return _reset_form(request, token)


@routes.post("/password/reset", name="password_reset_submit")
@page(access="public", rate="auth")
async def password_reset_submit(request: web.Request) -> web.Response:
    form = await request.post()
    token = str(form.get("token", ""))
    password = str(form.get("password", ""))
    if password != str(form.get("password_confirm", "")):
        return _reset_form(
            request, token, error="The two passwords differ.", field="Type the same password twice."
        )
    await throttle_reset(request, None)
    try:
        user = await account_mail.reset_password(request.app[DB], token, password)
    except Invalid as exc:
        if exc.error_code == "invalid_token":
            return _reset_invalid(request)
        return _reset_form(request, token, error=exc.message, field=exc.fields.get("password"))
    await audit.record(
        request.app,
        request,
        "auth.password_reset",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    response = redirect("/login", "Your password was changed. Log in with your new password.")
    actor = current_actor(request)
    if actor is not None and actor.user_id == user.id:
        clear_session_cookie(request, response)  # every session of the account has ended
    return response


# -- password change and sessions (on the account page) -----------------------------------------


@routes.post("/account/password", name="account_password")
@page(access="user", rate="auth")
async def account_password(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    new_password = str(form.get("new_password", ""))
    try:
        if new_password != str(form.get("new_password_confirm", "")):
            raise Invalid(
                "The two new passwords differ.",
                fields={"new_password_confirm": "Type the same password twice."},
            )
        revoked = await identity.change_password(
            request.app[DB],
            actor.user_id,
            current_password=str(form.get("current_password", "")),
            new_password=new_password,
            keep_session_id=actor.session_id,
        )
    except Invalid as exc:
        response = await account_page(
            request, password_error=exc.message, password_fields=exc.fields
        )
        response.set_status(exc.status)
        return response
    # An unticked checkbox sends nothing: only an explicit "true" revokes the keys.
    keys = 0
    if str(form.get("revoke_api_keys", "")) == "true":
        keys = await identity.revoke_all_api_keys(request.app[DB], actor.user_id)
    await audit.record(
        request.app,
        request,
        "auth.password_changed",
        target_type="user",
        target_id=actor.user_id,
        details={"sessions_revoked": revoked, "api_keys_revoked": keys},
    )
    others = f" {revoked} other session{'s' if revoked != 1 else ''} logged out." if revoked else ""
    if keys:
        others += f" {keys} API key{'s' if keys != 1 else ''} revoked."
    return redirect("/account#security", f"Your password was changed.{others}")


@routes.post("/account/sessions/{id}/revoke", name="account_session_revoke")
@page(access="user")
async def account_session_revoke(request: web.Request) -> web.Response:
    actor = require_user(request)
    session_id = request.match_info["id"]
    await identity.revoke_user_session(request.app[DB], actor.user_id, session_id)
    await audit.record(
        request.app, request, "session.revoked", target_type="session", target_id=session_id
    )
    if session_id == actor.session_id:
        response = redirect("/login", "You are logged out.")
        clear_session_cookie(request, response)
        return response
    return redirect("/account#sessions", "The session was logged out.")


@routes.post("/account/sessions/revoke-all", name="account_sessions_revoke_all")
@page(access="user")
async def account_sessions_revoke_all(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    db = request.app[DB]
    sessions = await identity.revoke_all_sessions(db, actor.user_id)
    message = "You are logged out everywhere."
    if str(form.get("include_api_keys", "")) == "true":
        keys = await identity.revoke_all_api_keys(db, actor.user_id)
        message = (
            f"You are logged out everywhere, and {keys} API key{'s' if keys != 1 else ''} revoked."
        )
    await audit.record(
        request.app,
        request,
        "session.revoked_all",
        target_type="user",
        target_id=actor.user_id,
        details={
            "sessions": sessions,
            "include_api_keys": str(form.get("include_api_keys", "")) == "true",
        },
    )
    response = redirect("/login", message)
    clear_session_cookie(request, response)
    return response
