"""The event bus of an app, and the hand-off of every domain event to integration plugins.

``setup_events`` builds the catalogue (the core's event types and those plugins registered with
``register_events``) and the ``EventBus`` (``app[EVENTS]``), and makes it the database's
after-commit callback, so events staged in a transaction are published once it commits (see
``multinotes.domain_events``).

Integrations receive the whole catalogue in the background: one subscriber enqueues a task per
event, and the task (in a worker) hands the event to every enabled integration that wants it, so
a slow Slack or webhook never holds up a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from multinotes import user_sets
from multinotes.domain_events import (
    EVENTS,
    NAME,
    DomainEvent,
    EventBus,
    EventCatalogue,
    validated,
)
from multinotes.integrations import Event
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS, TASKS

log = structlog.get_logger(__name__)

DISPATCH_TASK = "core.dispatch_event"


def setup_events(app: web.Application) -> None:
    """After ``setup_plugins`` (the catalogue takes the plugins' event types) and
    ``setup_database`` (the bus becomes the database's after-commit callback)."""
    host = app[PLUGINS]
    catalogue = EventCatalogue()
    for plugin, event_type in host.event_types.values():
        catalogue.add(event_type, plugin)
    bus = EventBus(app, catalogue, host.is_enabled)
    bus.subscribe_all(hand_to_integrations)
    app[EVENTS] = bus
    # Who has auto-reload or an integration's endpoints: asked after every event.
    user_sets.setup(app)

    async def after_commit(app: web.Application) -> AsyncIterator[None]:
        app[DB].after_commit = bus.publish_staged
        yield

    app.cleanup_ctx.append(after_commit)


async def emit_event(
    app: web.Application, name: str, user_id: str | None, data: dict[str, Any]
) -> DomainEvent:
    """Publish the event ``name`` with ``data`` as its payload. A catalogued name's data must
    fit its payload schema (``ValueError`` otherwise); a name outside the catalogue is still
    handed to the integrations (plugins emitted free-form events before the catalogue), as
    payload version 1."""
    bus = app[EVENTS]
    if name in bus.catalogue:
        event = validated(bus.catalogue, name, user_id, data)
    else:
        if not NAME.match(name):
            raise ValueError(f"event name {name!r} is not dotted lower case (note.created)")
        log.warning("event_not_in_catalogue", event_name=name)
        event = DomainEvent(name, 1, user_id, dict(data))
    await bus.publish(event)
    return event


async def _wants(app: web.Application, integration: Any, name: str, user_id: str | None) -> bool:
    """Whether ``integration`` acts on the event ``name`` of ``user_id`` (its audience is read
    from memory: no statement for a user it has nothing for)."""
    if integration.events and name not in integration.events:
        return False
    audience = getattr(integration, "audience", None)
    return audience is None or await user_sets.contains(app, audience, user_id)


async def hand_to_integrations(app: web.Application, event: DomainEvent) -> None:
    """Every event goes to the integrations that want it, through a task (at-least-once, in a
    worker). An event nobody wants (no integration, or none whose audience holds its user:
    a user without webhook endpoints) skips the queue round trip."""
    for _plugin, integration in list(app[PLUGINS].registries.integrations.values()):
        if await _wants(app, integration, event.name, event.user_id):
            break
    else:
        return
    await app[TASKS].enqueue(
        DISPATCH_TASK,
        name=event.name,
        user_id=event.user_id,
        data=event.payload,
        event_id=event.id,
        version=event.version,
        occurred_at=event.occurred_at.isoformat(),
    )


async def dispatch_event(
    app: web.Application,
    name: str,
    user_id: str | None,
    data: dict[str, Any],
    event_id: str = "",
    version: int = 1,
    occurred_at: str = "",
) -> int:
    """Deliver to each enabled integration; one failing integration does not stop the rest."""
    event = Event(name, user_id, data, id=event_id, version=version, occurred_at=occurred_at)
    from inspect import signature

    delivered = 0
    for plugin, integration in list(app[PLUGINS].registries.integrations.values()):
        if not await _wants(app, integration, name, user_id):
            continue
        try:
            config = await app[PLUGIN_SETTINGS].config(plugin)
            handle: Any = integration.handle
            if "context" in signature(handle).parameters:
                # An integration that keeps state (its own tables, tasks) asks for its context.
                from multinotes.plugin.context import PluginContext

                await handle(event, config, context=PluginContext(app, plugin))
            else:
                await handle(event, config)
            delivered += 1
        except Exception as exc:
            log.error(
                "integration_failed",
                plugin=plugin,
                event_name=name,
                error=f"{type(exc).__name__}: {exc}",
            )
    return delivered
