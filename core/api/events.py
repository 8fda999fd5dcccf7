"""The domain event catalogue: every event the core and the enabled plugins publish."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from multinotes.domain_events import EVENTS
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import PLUGINS

routes = web.RouteTableDef()


class EventTypeOut(BaseModel):
    name: str = Field(description="Dotted, e.g. note.created.")
    version: int = Field(
        description="The payload schema version: raised when a field changes meaning or goes "
        "away (adding an optional field keeps it)."
    )
    description: str
    source: str = Field(description='"core", or the plugin that registered it.')
    json_schema: dict[str, Any] = Field(description="The payload's JSON Schema (draft 2020-12).")


class CatalogOut(BaseModel):
    events: list[EventTypeOut]


@routes.get("/api/events/catalog", name="api_events_catalog")
@endpoint(access="user", response=CatalogOut, tags=["events"])
async def catalog(request: web.Request) -> dict[str, Any]:
    """Every domain event with its payload schema, sorted by name: the core's and those of
    enabled plugins. Integrations (outgoing webhooks, Slack, ...) receive these events, each as
    `{id, name, version, user_id, occurred_at, payload}`, after the change committed; `user_id`
    is the owner of what changed."""
    require_user(request)
    host = request.app[PLUGINS]
    return {
        "events": [
            {**entry.event.describe(), "source": entry.owner}
            for entry in request.app[EVENTS].catalogue.entries()
            if entry.owner == "core" or host.is_enabled(entry.owner)
        ]
    }
