"""Personal API keys: created (shown once), listed, revoked."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit
from multinotes.identity import service as identity
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.web.endpoint import endpoint

routes = web.RouteTableDef()


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)


class NewKeyOut(BaseModel):
    id: str
    name: str
    key: str = Field(description="The key itself. Shown only in this response.")
    prefix: str


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


@routes.post("/api/keys", name="api_keys_create")
@endpoint(access="user", body=KeyIn, response=NewKeyOut, status=201, tags=["keys"])
async def create_key(request: web.Request, body: KeyIn) -> NewKeyOut:
    """Create an API key for `Authorization: Bearer <key>`. The key is shown once."""
    actor = require_user(request)
    record, key = await identity.create_api_key(request.app[DB], actor.user_id, body.name)
    await audit.record(
        request.app,
        request,
        "api_key.created",
        target_type="api_key",
        target_id=record.id,
        details={"name": record.name},
    )
    return NewKeyOut(id=record.id, name=record.name, key=key, prefix=record.prefix)


@routes.get("/api/keys", name="api_keys_list")
@endpoint(access="user", response=list[KeyOut], tags=["keys"])
async def list_keys(request: web.Request) -> list[KeyOut]:
    """Your active API keys (never the keys themselves)."""
    actor = require_user(request)
    return [
        KeyOut(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            created_at=k.created_at,
            last_used_at=k.last_used_at,
        )
        for k in await identity.list_api_keys(request.app[DB], actor.user_id)
    ]


@routes.delete("/api/keys/{id}", name="api_keys_revoke")
@endpoint(access="user", status=204, tags=["keys"], errors=[404])
async def revoke_key(request: web.Request) -> None:
    """Revoke one of your API keys; it stops working immediately."""
    actor = require_user(request)
    await identity.revoke_api_key(request.app[DB], actor.user_id, request.match_info["id"])
    await audit.record(
        request.app,
        request,
        "api_key.revoked",
        target_type="api_key",
        target_id=request.match_info["id"],
    )
