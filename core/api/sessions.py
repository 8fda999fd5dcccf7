"""Your logged-in browsers: listed, revoked one by one, or all at once."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.http.endpoint import endpoint
from multinotes.http.session import clear_session_cookie
from multinotes.identity import service as identity
from multinotes.identity.actor import require_user
from multinotes.identity.schemas import SessionOut
from multinotes.keys import DB, SETTINGS

routes = web.RouteTableDef()


class RevokeAllIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_api_keys: bool = Field(default=False, description="Revoke every API key too.")


class RevokeAllOut(BaseModel):
    sessions_revoked: int
    api_keys_revoked: int


@routes.get("/api/sessions", name="api_sessions_list")
@endpoint(access="user", response=list[SessionOut], tags=["sessions"])
async def list_sessions(request: web.Request) -> list[SessionOut]:
    """Your active sessions (logged-in browsers), most recently used first. API keys are at
    `GET /api/keys`."""
    actor = require_user(request)
    return [
        SessionOut.of(s, actor.session_id)
        for s in await identity.active_sessions(
            request.app[DB], actor.user_id, idle_minutes=request.app[SETTINGS].session_idle_minutes
        )
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
