"""Email verification, password reset by email, and password change."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from multinotes import audit
from multinotes.errors import Invalid
from multinotes.http.endpoint import endpoint
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

routes = web.RouteTableDef()


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="The token from the mailed link.")


class VerifiedOut(BaseModel):
    email: str
    email_verified: bool


class ResendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = Field(
        default=None,
        max_length=320,
        description="The account's address; only when not logged in (a logged-in caller always "
        "gets the link for their own account).",
    )


class MessageOut(BaseModel):
    message: str


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="The token from the mailed link.")
    password: str = Field(min_length=1, max_length=256, description="The new password.")


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)
    revoke_api_keys: bool = Field(
        default=True,
        description="Revoke every API key of the account too (a key does not depend on the "
        "password, so one that leaked would otherwise keep working).",
    )


class ChangedOut(BaseModel):
    message: str
    sessions_revoked: int = Field(description="Other sessions that were logged out.")
    api_keys_revoked: int = Field(default=0, description="API keys that were revoked.")


@routes.post("/api/auth/verify", name="api_verify_email")
@endpoint(access="public", body=TokenIn, response=VerifiedOut, tags=["auth"], rate="auth")
async def verify(request: web.Request, body: TokenIn) -> VerifiedOut:
    """Verify an email address with the token from the mailed link.

    A token works once and for 48 hours; using it again after it worked answers the same."""
    user = await account_mail.verify_email(request.app[DB], body.token)
    await audit.record(
        request.app,
        request,
        "auth.email_verified",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    return VerifiedOut(email=user.email, email_verified=True)


@routes.post("/api/auth/resend-verification", name="api_resend_verification")
@endpoint(
    access="public", body=ResendIn, response=MessageOut, status=202, tags=["auth"], rate="auth"
)
async def resend_verification(request: web.Request, body: ResendIn) -> web.Response | MessageOut:
    """Mail a new verification link.

    Logged in: to your own address (200 with a message if it is already verified). Anonymous:
    give `email`; the answer is the same whether or not such an account exists. At most one
    mail a minute goes to an account, however often this is called."""
    actor = current_actor(request)
    if actor is None:
        if body.email is None:
            raise Invalid(
                "Log in, or give the address of the account.",
                fields={"email": "Give the address the account uses."},
            )
        await queue_account_mail(request, VERIFY_EMAIL, str(body.email))
        return MessageOut(message=resend_message(str(body.email), anonymous=True))
    if actor.email_verified:
        return web.json_response(
            MessageOut(message="Your email address is already verified.").model_dump()
        )
    await queue_account_mail(request, VERIFY_EMAIL, actor.email)
    return MessageOut(message=resend_message(actor.email, anonymous=False))


@routes.post("/api/auth/password/forgot", name="api_password_forgot")
@endpoint(
    access="public", body=ForgotIn, response=MessageOut, status=202, tags=["auth"], rate="auth"
)
async def password_forgot(request: web.Request, body: ForgotIn) -> MessageOut:
    """Mail a password-reset link. The answer is the same whether or not the account exists."""
    await throttle_reset(request, str(body.email))
    await queue_account_mail(request, RESET_PASSWORD, str(body.email))
    return MessageOut(message=forgot_message(str(body.email)))


@routes.post("/api/auth/password/reset", name="api_password_reset")
@endpoint(
    access="public", body=ResetIn, response=MessageOut, tags=["auth"], rate="auth", errors=[422]
)
async def password_reset(request: web.Request, body: ResetIn) -> web.Response:
    """Choose a new password with the token from the mailed link (one use, one hour).

    Every session of the account is logged out, this one included: log in with the new
    password. API keys keep working."""
    await throttle_reset(request, None)
    user = await account_mail.reset_password(request.app[DB], body.token, body.password)
    await audit.record(
        request.app,
        request,
        "auth.password_reset",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    message = MessageOut(message="Your password was changed. Log in with your new password.")
    response = web.json_response(message.model_dump())
    actor = current_actor(request)
    if actor is not None and actor.user_id == user.id:
        clear_session_cookie(request, response)
    return response


@routes.post("/api/auth/password/change", name="api_password_change")
@endpoint(access="user", body=ChangeIn, response=ChangedOut, tags=["auth"], rate="auth")
async def password_change(request: web.Request, body: ChangeIn) -> ChangedOut:
    """Change your password; the current one is needed. Every other session is logged out,
    this one stays; the account's API keys are revoked unless `revoke_api_keys` is false."""
    actor = require_user(request)
    revoked = await identity.change_password(
        request.app[DB],
        actor.user_id,
        current_password=body.current_password,
        new_password=body.new_password,
        keep_session_id=actor.session_id,
    )
    keys = (
        await identity.revoke_all_api_keys(request.app[DB], actor.user_id)
        if body.revoke_api_keys
        else 0
    )
    await audit.record(
        request.app,
        request,
        "auth.password_changed",
        target_type="user",
        target_id=actor.user_id,
        details={"sessions_revoked": revoked, "api_keys_revoked": keys},
    )
    return ChangedOut(
        message="Your password was changed.", sessions_revoked=revoked, api_keys_revoked=keys
    )
