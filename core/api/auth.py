"""Registration, login, logout and the current user."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from multinotes import audit
from multinotes.identity import service as identity
from multinotes.identity.account_mail import VERIFY_EMAIL, queue_account_mail
from multinotes.identity.actor import require_user
from multinotes.identity.guard import check_login, register_account
from multinotes.keys import DB, SETTINGS
from multinotes.models import User
from multinotes.web.endpoint import endpoint
from multinotes.web.middleware import session_cookie_name

routes = web.RouteTableDef()


class RegisterIn(BaseModel):
    # Unknown fields (role, balance, ...) are rejected, never silently applied.
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=200)


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


async def start_session(request: web.Request, response: web.StreamResponse, user: User) -> str:
    """Log ``user`` in on this browser: a fresh session (never a reused id) and its cookie."""
    settings = request.app[SETTINGS]
    max_age = timedelta(days=settings.session_max_age_days)
    old = request.cookies.get(session_cookie_name(settings))
    if old:
        current = await identity.actor_from_session(request.app[DB], old)
        if current and current.session_id:
            await identity.revoke_session(request.app[DB], current.session_id)
    new = await identity.create_session(
        request.app[DB],
        user,
        max_age=max_age,
        ip=request.remote,
        user_agent=request.headers.get("User-Agent"),
    )
    response.set_cookie(
        session_cookie_name(settings),
        new.token,
        max_age=int(max_age.total_seconds()),
        httponly=True,
        secure=settings.secure_cookies,
        samesite="Lax",
        path="/",
    )
    return new.session.csrf_token


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[SETTINGS]
    response.del_cookie(
        session_cookie_name(settings),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="Lax",
    )


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
