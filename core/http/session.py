"""The browser's session cookie: set on sign-in (a fresh session, never a reused id) and
cleared on sign-out. Shared by the JSON API, the pages and the sign-in callbacks."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from multinotes.http.middleware import session_cookie_name
from multinotes.identity import service as identity
from multinotes.identity.models import User
from multinotes.keys import DB, SETTINGS


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
