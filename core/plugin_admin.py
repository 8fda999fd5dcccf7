"""What the plugin console shows about a plugin, the same for the admin API, the console
pages and ``multinotes plugins`` on the command line."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from multinotes.keys import PLUGIN_SETTINGS, PLUGINS
from multinotes.plugin_host import PluginRecord


class SettingField(BaseModel):
    name: str
    title: str
    description: str | None = None
    type: str
    secret: bool
    source: str
    value: Any = None
    is_set: bool | None = None
    masked: str | None = None


class PluginOut(BaseModel):
    name: str
    kinds: list[str]
    version: str | None
    module: str
    enabled: bool
    status: str
    error: str | None
    has_settings: bool


class PluginDetailOut(PluginOut):
    #: The hooks it implements (a tracing aid for plugin authors).
    hooks: list[str]
    settings: list[SettingField]


def plugin_out(record: PluginRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "kinds": record.kinds,
        "version": record.version,
        "module": record.module,
        "enabled": record.enabled,
        "status": record.status,
        "error": record.error,
        "has_settings": record.settings_model is not None,
    }


async def plugin_detail(app: web.Application, name: str) -> PluginDetailOut:
    record = app[PLUGINS].get(name)
    fields = await app[PLUGIN_SETTINGS].view(name) if record.status == "loaded" else []
    return PluginDetailOut(
        **plugin_out(record),
        hooks=list(record.hooks),
        settings=[SettingField(**f) for f in fields],
    )
