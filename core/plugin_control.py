"""Switching plugins on and off and editing their settings, across every process.

The database is the truth; a bus message tells every web and worker process to re-read it.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select

from multinotes import audit
from multinotes.keys import BUS, DB, METRICS, PLUGIN_SETTINGS, PLUGINS
from multinotes.plugin_models import PluginState

log = structlog.get_logger(__name__)

CHANNEL = "plugins"


async def stored_state(app: web.Application) -> dict[str, bool]:
    async with app[DB].read() as session:
        return {row.name: row.enabled for row in await session.scalars(select(PluginState))}


async def reload_state(app: web.Application, *, force: bool = False) -> None:
    """Re-read enabled flags; rebuild the registries in this process if they changed."""
    host = app[PLUGINS]
    before = {r.name: r.enabled for r in host.loaded()}
    stored = await stored_state(app)
    wanted = {r.name: stored.get(r.name, r.default_enabled) for r in host.loaded()}
    # Settings may have changed too (their message may have been lost): those that did are
    # read again when next needed.
    await app[PLUGIN_SETTINGS].invalidate_changed()
    if wanted == before and not force:
        return
    host.apply_state(stored)
    app[METRICS].plugins_enabled.set(sum(1 for r in host.loaded() if r.enabled))
    changed = {n: r.enabled for n, r in host.records.items() if before.get(n) != r.enabled}
    if changed:
        log.info("plugin_state_applied", changed=changed)


async def set_enabled(
    app: web.Application,
    name: str,
    enabled: bool,
    by: str | None,
    *,
    request: web.Request | None = None,
) -> None:
    host = app[PLUGINS]
    record = host.get(name)
    if record.status != "loaded" and enabled:
        from multinotes.errors import Conflict

        raise Conflict(
            f"Plugin {name!r} is not loaded and cannot be enabled: {record.error}",
            code="plugin_failed",
        )
    state = await stored_state(app)
    state[name] = enabled
    host.apply_state(state)  # raises (changing nothing) on a duplicate id
    try:
        async with app[DB].transaction() as session:
            row = await session.get(PluginState, name)
            if row is None:
                session.add(PluginState(name=name, enabled=enabled, updated_by=by))
            else:
                row.enabled = enabled
                row.updated_by = by
    except Exception:
        await reload_state(app, force=True)  # keep memory in line with the database
        raise
    await app[BUS].publish(CHANNEL, {"plugin": name, "enabled": enabled})
    action = "plugin.enabled" if enabled else "plugin.disabled"
    await audit.record(app, request, action, actor_id=by, target_type="plugin", target_id=name)


async def update_settings(
    app: web.Application,
    name: str,
    changes: dict[str, Any],
    *,
    request: web.Request | None = None,
) -> None:
    await app[PLUGIN_SETTINGS].update(name, changes)
    await app[BUS].publish(CHANNEL, {"plugin": name, "settings": True})
    # Which fields changed, never their values (some are secrets).
    await audit.record(
        app,
        request,
        "plugin.settings_changed",
        target_type="plugin",
        target_id=name,
        details={"fields": sorted(changes)},
    )


async def on_bus_message(app: web.Application, _message: dict[str, Any]) -> None:
    await reload_state(app)
