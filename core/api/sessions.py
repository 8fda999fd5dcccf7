"""Your logged-in browsers: listed, revoked one by one, or all at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.api.auth import clear_session_cookie
from multinotes.identity import service as identity
from multinotes.identity.actor import require_user
from multinotes.keys import DB, SETTINGS
from multinotes.models import AuthSession
from multinotes.web.endpoint import endpoint

routes = web.RouteTableDef()

_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("aiohttp/", "a Python program"),
    ("python-", "a Python program"),
)
_SYSTEMS = (
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe_user_agent(user_agent: str | None) -> str:
    """A short, human name for a User-Agent ("Firefox on Linux"), for telling sessions apart."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime = Field(description="Refreshed at most every few minutes.")
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    device: str = Field(description="A short name for the browser, from its User-Agent.")
    current: bool = Field(description="The session making this request.")

    @classmethod
    def of(cls, record: AuthSession, current_id: str | None) -> SessionOut:
        return cls(
            id=record.id,
            created_at=record.created_at,
            last_seen_at=record.last_seen_at,
            expires_at=record.expires_at,
            ip=record.ip,
            user_agent=record.user_agent,
            device=describe_user_agent(record.user_agent),
            current=record.id == current_id,
        )


class RevokeAllIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_api_keys: bool = Field(default=False, description="Revoke every API key too.")


class RevokeAllOut(BaseModel):
    sessions_revoked: int
    api_keys_revoked: int


def idle_timeout(request: web.Request) -> timedelta:
    return timedelta(minutes=request.app[SETTINGS].session_idle_minutes)


async def active_sessions(request: web.Request, user_id: str) -> list[AuthSession]:
    return await identity.list_sessions(
        request.app[DB], user_id, idle_timeout=idle_timeout(request)
    )


@routes.get("/api/sessions", name="api_sessions_list")
@endpoint(access="user", response=list[SessionOut], tags=["sessions"])
async def list_sessions(request: web.Request) -> list[SessionOut]:
    """Your active sessions (logged-in browsers), most recently used first. API keys are at
    `GET /api/keys`."""
    actor = require_user(request)
    return [
        SessionOut.of(s, actor.session_id) for s in await active_sessions(request, actor.user_id)
    ]


@routes.delete("/api/sessions/{id}", name="api_sessions_revoke")
@endpoint(access="user", status=204, tags=["sessions"], errors=[404])
async def revoke_session(request: web.Request) -> web.Response:
    """Log one of your sessions out. Revoking the current one is logging out."""
    actor = require_user(request)
    session_id = request.match_info["id"]
    await identity.revoke_user_session(request.app[DB], actor.user_id, session_id)
    await audit.record(
        request.app, request, "session.revoked", target_type="session", target_id=session_id
    )
    response = web.Response(status=204)
    if session_id == actor.session_id:
        clear_session_cookie(request, response)
    return response


@routes.post("/api/sessions/revoke-all", name="api_sessions_revoke_all")
@endpoint(access="user", body=RevokeAllIn, response=RevokeAllOut, tags=["sessions"])
async def revoke_all(request: web.Request, body: RevokeAllIn) -> web.Response:
    """Log out everywhere: every session, this one included, and with `include_api_keys`
    every API key."""
    actor = require_user(request)
    db = request.app[DB]
    sessions = await identity.revoke_all_sessions(db, actor.user_id)
    keys = await identity.revoke_all_api_keys(db, actor.user_id) if body.include_api_keys else 0
    await audit.record(
        request.app,
        request,
        "session.revoked_all",
        target_type="user",
        target_id=actor.user_id,
        details={"sessions": sessions, "include_api_keys": body.include_api_keys},
    )
    response = web.json_response(
        RevokeAllOut(sessions_revoked=sessions, api_keys_revoked=keys).model_dump()
    )
    clear_session_cookie(request, response)
    return response
