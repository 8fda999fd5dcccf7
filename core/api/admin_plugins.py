"""The plugin console's API: list plugins, switch them, edit their settings."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from multinotes import plugin_control
from multinotes.errors import Conflict
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_admin
from multinotes.keys import PLUGINS
from multinotes.plugin_admin import PluginDetailOut, PluginOut, plugin_detail, plugin_out

routes = web.RouteTableDef()


class PluginPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    settings: dict[str, Any] | None = None


@routes.get("/api/admin/plugins", name="api_admin_plugins")
@endpoint(access="admin", response=list[PluginOut], tags=["admin"])
async def list_plugins(request: web.Request) -> list[PluginOut]:
    """Every plugin found: kinds, version, enabled, and the error of any that failed."""
    host = request.app[PLUGINS]
    return [PluginOut(**plugin_out(r)) for r in sorted(host.records.values(), key=lambda r: r.name)]


@routes.get("/api/admin/plugins/{name}", name="api_admin_plugin")
@endpoint(access="admin", response=PluginDetailOut, tags=["admin"], errors=[404])
async def get_plugin(request: web.Request) -> PluginDetailOut:
    """One plugin with the hooks it implements and its settings (secrets masked: last four
    characters at most)."""
    return await plugin_detail(request.app, request.match_info["name"])


@routes.patch("/api/admin/plugins/{name}", name="api_admin_plugin_update")
@endpoint(
    access="admin",
    body=PluginPatch,
    response=PluginDetailOut,
    tags=["admin"],
    errors=[404, 409, 422],
)
async def update_plugin(request: web.Request, body: PluginPatch) -> PluginDetailOut:
    """Switch a plugin on or off and/or change its settings. Takes effect in every process.

    For a secret setting, an empty string or null keeps the stored value and `{"clear": true}`
    removes it.
    """
    actor = require_admin(request)
    name = request.match_info["name"]
    record = request.app[PLUGINS].get(name)
    if body.enabled and record.status != "loaded":
        raise Conflict(
            f"Plugin {name!r} is not loaded and cannot be enabled: {record.error}",
            code="plugin_failed",
        )
    if body.settings:
        await plugin_control.update_settings(request.app, name, body.settings, request=request)
    if body.enabled is not None:
        await plugin_control.set_enabled(
            request.app, name, body.enabled, actor.user_id, request=request
        )
    return await plugin_detail(request.app, name)
