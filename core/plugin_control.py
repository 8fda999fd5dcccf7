"""Switching plugins on and off and editing their settings, across every process.

The database is the truth; a bus message tells every web and worker process to re-read it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select

from multinotes import audit
from multinotes.keys import BUS, DB, METRICS, PLUGIN_SETTINGS, PLUGINS, ROLE
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
    await warm_providers(app)


#: Provider classes whose ``warm`` has run in this process (an import happens once).
_warmed: set[type] = set()


async def warm_providers(app: web.Application, *, any_role: bool = False) -> None:
    """Load the SDK of every enabled provider that has not loaded it yet, in a worker thread.

    Provider plugins import their SDK where they call it, so a web or worker process where a
    provider is switched off never carries it (openai ~14 MB, google-genai ~15 MB, together
    ~6 MB); this runs at startup and whenever a provider is switched on, here or in another
    process, so no answer waits for an import. A provider whose SDK cannot be imported (not
    installed) is marked failed with the error, as a plugin that fails to import is.
    """
    if not any_role and app.get(ROLE, "") not in ("web", "worker"):
        return  # `multinotes plugins list` asks with any_role, to report a missing SDK
    host = app[PLUGINS]
    failed = False
    for plugin, provider in list(host.registries.providers.values()):
        kind = type(provider)
        if kind in _warmed:
            continue
        try:
            await asyncio.to_thread(provider.warm)
        except Exception as exc:
            host._fail(host.records[plugin], exc, "failed to load its SDK")
            failed = True
            continue
        _warmed.add(kind)
    if failed:
        host.apply_state({r.name: r.enabled for r in host.loaded()})


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
    if enabled:
        await warm_providers(app)
    await app[BUS].publish(CHANNEL, {"plugin": name, "enabled": enabled})
    action = "plugin.enabled" if enabled else "plugin.disabled"
    await audit.record(app, request, action, actor_id=by, target_type="plugin", target_id=name)
    await tell_admins(app, name, enabled)


#: The live event an administrator's open tabs get when a plugin is switched on or off.
PLUGIN_CHANGED = "plugin.changed"


async def tell_admins(app: web.Application, name: str, enabled: bool) -> None:
    """Every administrator's open tabs hear of it (their /admin/plugins page reads its table
    again). Only administrators: nobody else may see the plugin console."""
    from multinotes.identity.models import User
    from multinotes.live import HUB  # the live channel is set up after this module loads

    hub = app.get(HUB)
    if hub is None:
        return
    async with app[DB].read() as session:
        admins = list(
            await session.scalars(
                select(User.id).where(User.role == "admin", User.is_active.is_(True))
            )
        )
    for admin_id in admins:
        await hub.publish(admin_id, PLUGIN_CHANGED, {"plugin": name, "enabled": enabled})


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
