"""The profile and security-events sections of the account page, their forms, and the page
behind the email-change link."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes import audit
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.http.uploads import read_upload
from multinotes.identity import profile
from multinotes.identity.actor import require_user
from multinotes.identity.models import User
from multinotes.identity.schemas import EmailChangeIn, ProfileOut, ProfilePatch
from multinotes.web.pages import account_page

routes = web.RouteTableDef()


async def account_sections(request: web.Request, user: User) -> dict[str, Any]:
    """What the account page's profile and security-events sections show."""
    events, _ = await profile.security_events(request.app, user.id, limit=20)
    return {
        "profile": ProfileOut.of(user).model_dump(),
        "timezones": sorted(profile.timezones()),
        # None: times are shown in the browser's own time zone.
        "timezone_chosen": user.timezone or "",
        "security_events": events,
    }


async def _account_error(request: web.Request, exc: AppError, **extra: Any) -> web.Response:
    response = await account_page(request, **extra)
    response.set_status(exc.status)
    return response


@routes.post("/account/profile", name="account_profile")
@page(access="user")
async def account_profile(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    # No interface-language field: the UI is English only (a setting that changed nothing was
    # removed). An empty time zone is "this browser's".
    values = {n: str(form.get(n, "")).strip() for n in ("name", "timezone")}
    try:
        body = validate(ProfilePatch, {**values, "timezone": values["timezone"] or None})
    except Invalid as exc:
        return await _account_error(
            request,
            exc,
            profile_error=exc.message,
            profile_fields=exc.fields,
            profile_values=values,
        )
    await profile.apply_profile_patch(request, actor.user_id, body)
    return redirect("/account#profile", "Your profile was saved.")


@routes.post("/account/avatar", name="account_avatar")
@page(access="user")
async def account_avatar(request: web.Request) -> web.Response:
    actor = require_user(request)
    try:
        data = await read_upload(request)
        await profile.set_avatar(request.app, actor.user_id, data)
    except AppError as exc:
        if exc.status not in (400, 413, 422):
            raise
        message = next(iter(exc.fields.values()), exc.message)
        return await _account_error(request, exc, avatar_error=message)
    await audit.record(
        request.app, request, "profile.avatar_changed", target_type="user", target_id=actor.user_id
    )
    return redirect("/account#profile", "Your avatar was updated.")


@routes.post("/account/avatar/delete", name="account_avatar_delete")
@page(access="user")
async def account_avatar_delete(request: web.Request) -> web.Response:
    actor = require_user(request)
    if await profile.remove_avatar(request.app, actor.user_id):
        await audit.record(
            request.app,
            request,
            "profile.avatar_removed",
            target_type="user",
            target_id=actor.user_id,
        )
    return redirect("/account#profile", "Your avatar was removed.")


@routes.post("/account/email", name="account_email")
@page(access="user", rate="auth")
async def account_email(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    new_email = str(form.get("new_email", "")).strip()
    try:
        body = validate(EmailChangeIn, {"new_email": new_email, "password": form.get("password")})
        address = await profile.request_email_change(
            request, actor.user_id, new_email=str(body.new_email), password=body.password
        )
    except Invalid as exc:
        return await _account_error(
            request, exc, email_error=exc.message, email_fields=exc.fields, new_email=new_email
        )
    return redirect("/account#email", profile.email_change_message(address))


@routes.get("/account/email/confirm", name="account_email_confirm")
@page(access="public", rate="auth")
async def email_confirm_form(request: web.Request) -> web.Response:
    """The mailed link opens a page with a button, so a mail scanner fetching the link does not
    change anyone's address."""
    token = request.query.get("token", "")
    response = render(request, "account/email_confirm.html", {"nav": "", "token": token})
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.post("/account/email/confirm", name="account_email_confirm_submit")
@page(access="public", rate="auth")
async def email_confirm_submit(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        user = await profile.confirm_email_change(request, str(form.get("token", "")))
    except Invalid as exc:
        return render(
            request, "account/email_confirm.html", {"nav": "", "error": exc.message}, status=400
        )
    return render(request, "account/email_confirm.html", {"nav": "", "email": user.email})
