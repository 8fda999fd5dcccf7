"""Personal API keys: created (shown once) with scopes and an optional expiry, listed with
their last use, narrowed, revoked. What each scope allows: ``multinotes.identity.scopes``."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from multinotes.errors import Invalid
from multinotes.http.endpoint import endpoint
from multinotes.identity import key_actions
from multinotes.identity import scopes as key_scopes
from multinotes.identity import service as identity
from multinotes.identity.actor import Actor, require_user
from multinotes.identity.schemas import KeyOut, key_out_scopes
from multinotes.identity.scopes import Scope
from multinotes.keys import DB

routes = web.RouteTableDef()


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] | None = Field(
        default=None,
        min_length=1,
        description="What the key may do (read, notes, chat, admin). Default: read, notes "
        "and chat. Only an administrator's key may hold admin.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working (401 api_key_expired). Default: never.",
    )


class KeyScopesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[Scope] = Field(
        min_length=1, description="The scopes to keep: a subset of the key's scopes."
    )


class NewKeyOut(BaseModel):
    id: str
    name: str
    key: str = Field(description="The key itself. Shown only in this response.")
    prefix: str
    scopes: list[Scope]
    expires_at: datetime | None


def _within_callers_key(actor: Actor, scopes: list[Scope] | None) -> None:
    """A key that creates a key cannot hand out more than it holds itself."""
    if actor.scopes is None:
        return
    wanted = set(scopes) if scopes is not None else set(key_scopes.default_scopes(actor.role))
    beyond = wanted - actor.scopes
    if beyond:
        raise Invalid(
            "A key cannot create a key that can do more than itself.",
            code="scope_not_allowed",
            fields={"scopes": "The key you call with does not have " + ", ".join(sorted(beyond))},
        )


@routes.post("/api/keys", name="api_keys_create")
@endpoint(access="user", body=KeyIn, response=NewKeyOut, status=201, tags=["keys"])
async def create_key(request: web.Request, body: KeyIn) -> NewKeyOut:
    """Create an API key for `Authorization: Bearer <key>`. The key is shown once."""
    actor = require_user(request)
    _within_callers_key(actor, body.scopes)
    record, key = await key_actions.create_key(
        request, actor.user_id, body.name, scopes=body.scopes, expires_at=body.expires_at
    )
    return NewKeyOut(
        id=record.id,
        name=record.name,
        key=key,
        prefix=record.prefix,
        scopes=key_out_scopes(record, actor.role),
        expires_at=record.expires_at,
    )


@routes.get("/api/keys", name="api_keys_list")
@endpoint(access="user", response=list[KeyOut], tags=["keys"])
async def list_keys(request: web.Request) -> list[KeyOut]:
    """Your API keys that are not revoked (never the keys themselves), with their scopes,
    expiry and last use."""
    actor = require_user(request)
    return [
        KeyOut.of(k, actor.role)
        for k in await identity.list_api_keys(request.app[DB], actor.user_id)
    ]


@routes.patch("/api/keys/{id}", name="api_keys_narrow")
@endpoint(access="user", body=KeyScopesIn, response=KeyOut, tags=["keys"], errors=[404, 422])
async def narrow_key(request: web.Request, body: KeyScopesIn) -> KeyOut:
    """Narrow one of your keys to fewer scopes. Scopes can only be taken away: a key that
    should do more is a new key."""
    actor = require_user(request)
    record = await key_actions.narrow_key(
        request, actor.user_id, request.match_info["id"], body.scopes
    )
    return KeyOut.of(record, actor.role)


@routes.delete("/api/keys/{id}", name="api_keys_revoke")
@endpoint(access="user", status=204, tags=["keys"], errors=[404])
async def revoke_key(request: web.Request) -> None:
    """Revoke one of your API keys; it stops working immediately."""
    actor = require_user(request)
    await key_actions.revoke_key(request, actor.user_id, request.match_info["id"])
