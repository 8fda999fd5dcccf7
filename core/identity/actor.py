"""Who is asking: resolved once per request by the auth middleware."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from multinotes.errors import Forbidden, Unauthorized
from multinotes.keys import SETTINGS


@dataclass(frozen=True)
class Actor:
    user_id: str
    email: str
    name: str
    role: str
    via: Literal["session", "api_key"]
    email_verified: bool = False
    session_id: str | None = None
    csrf_token: str | None = None
    api_key_id: str | None = None
    rate_limit_tier: str = "default"
    #: An API key's effective scopes (``multinotes.identity.scopes``); None for a session.
    scopes: frozenset[str] | None = None
    #: The time zone chosen in the profile (IANA name); None: the browser's own.
    timezone: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ACTOR: web.RequestKey[Actor | None] = web.RequestKey("actor")


def current_actor(request: web.Request) -> Actor | None:
    return request.get(ACTOR)


def require_user(request: web.Request) -> Actor:
    actor = current_actor(request)
    if actor is None:
        raise Unauthorized()
    return actor


def require_admin(request: web.Request) -> Actor:
    actor = require_user(request)
    if not actor.is_admin:
        raise Forbidden("This needs an administrator.")
    return actor


def require_verified(request: web.Request) -> Actor:
    """The actor, who must have verified their email address when the install requires it
    (``email_verification_required``). For endpoints that spend: generation, uploads."""
    actor = require_user(request)
    if not actor.email_verified and request.app[SETTINGS].requires_email_verification:
        raise Forbidden(
            f"Verify your email address first: open the link we sent to {actor.email}. "
            "No mail? Check your spam folder, or ask for a new link with the button on any page "
            "(POST /api/auth/resend-verification).",
            code="email_unverified",
        )
    return actor
