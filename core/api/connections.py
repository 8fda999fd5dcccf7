"""Connected accounts through the API: which services can be connected and which are, and
disconnecting one. Connecting needs a browser (the service's consent page): ``POST
/connections/{kind}/connect`` from the account page. Tokens are never shown."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.connections import service as connections
from multinotes.connections.models import ConnectedAccountRow
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB

routes = web.RouteTableDef()


class DestinationOut(BaseModel):
    id: str
    name: str


class ConnectionOut(BaseModel):
    id: str
    kind: str = Field(description="The service (a connection kind id: notion, google_docs...).")
    service: str = Field(description="The service's name.")
    account_name: str = Field(description="The connected account, as the service names it.")
    status: Literal["active", "revoked"] = Field(
        description="revoked: the service no longer accepts it; connect again."
    )
    destination: DestinationOut | None = Field(
        default=None, description="Where exports go by default (a Notion page, a Drive folder)."
    )
    connected_at: str
    updated_at: str

    @classmethod
    def of(cls, row: ConnectedAccountRow, service: str) -> ConnectionOut:
        chosen = (row.data or {}).get("destination")
        return cls(
            destination=DestinationOut(**chosen) if isinstance(chosen, dict) else None,
            id=row.id,
            kind=row.kind,
            service=service,
            account_name=row.account_name,
            status="revoked" if row.status == "revoked" else "active",
            connected_at=row.created_at.isoformat(),
            updated_at=row.updated_at.isoformat(),
        )


class KindOut(BaseModel):
    kind: str
    name: str
    connected: bool
    connect_url: str = Field(description="The form (POST, in a browser) that starts connecting.")


class ConnectionList(BaseModel):
    connections: list[ConnectionOut]
    available: list[KindOut] = Field(description="Services that can be connected now.")


async def connections_of(app: web.Application, user_id: str) -> dict[str, Any]:
    listed = await connections.overview(app, user_id)
    return {
        "connections": [ConnectionOut.of(i.row, i.name) for i in listed if i.row is not None],
        "available": [
            KindOut(
                kind=i.kind_id,
                name=i.name,
                connected=i.row is not None,
                connect_url=f"/connections/{i.kind_id}/connect",
            )
            for i in listed
            if i.enabled
        ],
    }


@routes.get("/api/connections", name="api_connections")
@endpoint(access="user", response=ConnectionList, tags=["connections"])
async def list_connections(request: web.Request) -> dict[str, Any]:
    """Your connected accounts (Notion, Google, ...) and the services that can be connected.
    A connection of a plugin switched off stays listed (and keeps working when it is back)."""
    actor = require_user(request)
    return await connections_of(request.app, actor.user_id)


@routes.delete("/api/connections/{id}", name="api_connection_delete")
@endpoint(access="user", status=204, tags=["connections"], errors=[404])
async def delete_connection(request: web.Request) -> None:
    """Disconnect an account: its tokens are deleted here (revoke the app's access at the
    service too, in its settings), and so is the memory of what exports made there."""
    actor = require_user(request)
    await connections.disconnect(request.app[DB], actor.user_id, request.match_info["id"])


class DestinationList(BaseModel):
    label: str = Field(description="What a destination is at this service.")
    destinations: list[DestinationOut]
    chosen: DestinationOut | None


class ConnectionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destination_id: str = Field(
        min_length=1, max_length=255, description="One of GET .../destinations."
    )


@routes.get("/api/connections/{id}/destinations", name="api_connection_destinations")
@endpoint(
    access="user", response=DestinationList, tags=["connections"], errors=[404, 409, 502, 503]
)
async def list_destinations(request: web.Request) -> dict[str, Any]:
    """Where the service lets exports go for this account (asked of the service now): Notion
    pages shared with the integration, Drive folders this app may use."""
    actor = require_user(request)
    row, kind, found = await connections.destinations_of(
        request.app, actor.user_id, request.match_info["id"]
    )
    chosen = (row.data or {}).get("destination")
    return {
        "label": kind.destination_label or "",
        "destinations": [{"id": d.id, "name": d.name} for d in found],
        "chosen": chosen if isinstance(chosen, dict) else None,
    }


@routes.patch("/api/connections/{id}", name="api_connection_update")
@endpoint(
    access="user",
    body=ConnectionPatch,
    response=ConnectionOut,
    tags=["connections"],
    errors=[404, 409, 422, 502, 503],
)
async def update_connection(request: web.Request, body: ConnectionPatch) -> ConnectionOut:
    """Choose where exports through this account go by default (one of its destinations)."""
    actor = require_user(request)
    row = await connections.choose_destination(
        request.app, actor.user_id, request.match_info["id"], body.destination_id
    )
    _, kind = connections.kind_of(request.app, row.kind)
    return ConnectionOut.of(row, kind.name)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64, description="A service that takes one.")
    access_token: str = Field(
        min_length=1, max_length=2000, description="E.g. a Notion internal integration secret."
    )


@routes.post("/api/connections", name="api_connection_create")
@endpoint(
    access="user",
    body=TokenIn,
    response=ConnectionOut,
    status=201,
    tags=["connections"],
    errors=[404, 422, 502, 503],
)
async def create_connection(request: web.Request, body: TokenIn) -> ConnectionOut:
    """Connect with a token instead of the service's sign-in (services with
    `pasted_token_label`, such as Notion's internal integrations). The service is asked whose
    token it is first; the token is stored encrypted and never shown again."""
    actor = require_user(request)
    row = await connections.connect_with_token(
        request.app, user_id=actor.user_id, kind_id=body.kind, token=body.access_token
    )
    _, kind = connections.kind_of(request.app, row.kind)
    return ConnectionOut.of(row, kind.name)
