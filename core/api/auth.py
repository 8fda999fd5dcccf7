"""Registration, login, logout and the current user."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.billing import referrals
from multinotes.http.endpoint import endpoint
from multinotes.http.session import clear_session_cookie, start_session
from multinotes.identity import service as identity
from multinotes.identity.account_mail import VERIFY_EMAIL, queue_account_mail
from multinotes.identity.actor import require_user
from multinotes.identity.guard import check_login, register_account
from multinotes.identity.models import User
from multinotes.identity.schemas import RegisterIn
from multinotes.keys import DB

routes = web.RouteTableDef()


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: str
    email_verified: bool = Field(
        description="Whether the address was confirmed through a mailed link. Installs that "
        "require it refuse to generate until it is (error code `email_unverified`)."
    )

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            email_verified=user.email_verified_at is not None,
        )


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send as X-CSRF-Token on cookie-authenticated writes.")


@routes.post("/api/auth/register", name="api_register")
@endpoint(
    access="public",
    body=RegisterIn,
    response=UserOut,
    status=201,
    tags=["auth"],
    rate="auth",
    errors=[422],
)
async def register(request: web.Request, body: RegisterIn) -> UserOut:
    """Create an account. The first account on a fresh install becomes an admin.

    A link to verify the address is mailed at once (`POST /api/auth/verify`). An address that
    already has an account gets the same answer (which addresses have accounts is not told);
    its owner is mailed that someone tried to sign up with it."""
    registration = await register_account(
        request, email=str(body.email), password=body.password, name=body.name
    )
    if registration.created:
        await queue_account_mail(request, VERIFY_EMAIL, registration.user.email)
        await referrals.record_signup(request, request.app[DB], registration.user.id)
    return UserOut.of(registration.user)


@routes.post("/api/auth/login", name="api_login")
@endpoint(
    access="public", body=LoginIn, response=LoginOut, tags=["auth"], rate="auth", errors=[401]
)
async def login(request: web.Request, body: LoginIn) -> web.Response:
    """Log in with email and password; sets the session cookie."""
    user = await check_login(request, email=body.email, password=body.password)
    response = web.json_response()
    csrf = await start_session(request, response, user)
    response.text = LoginOut(user=UserOut.of(user), csrf_token=csrf).model_dump_json()
    return response


@routes.post("/api/auth/logout", name="api_logout")
@endpoint(access="user", status=204, tags=["auth"])
async def logout(request: web.Request) -> web.Response:
    """End this session (API keys are unaffected)."""
    actor = require_user(request)
    if actor.session_id:
        await identity.revoke_session(request.app[DB], actor.session_id)
    await audit.record(request.app, request, "auth.logout")
    response = web.Response(status=204)
    clear_session_cookie(request, response)
    return response


# GET and PATCH /api/me (the user with their profile) are in multinotes.api.profile.
