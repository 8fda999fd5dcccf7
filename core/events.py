"""App events for integrations (``generation.completed``, ...), delivered in the background.

``emit_event`` only enqueues; a task hands the event to every enabled integration that wants
it, so a slow Slack or webhook never holds up a request.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from multinotes.integrations import Event
from multinotes.keys import PLUGIN_SETTINGS, PLUGINS, TASKS

log = structlog.get_logger(__name__)

DISPATCH_TASK = "core.dispatch_event"


async def emit_event(
    app: web.Application, name: str, user_id: str | None, data: dict[str, Any]
) -> None:
    if not app[PLUGINS].registries.integrations:
        return  # nobody listens: skip the queue round trip
    try:
        await app[TASKS].enqueue(DISPATCH_TASK, name=name, user_id=user_id, data=data)
    except Exception:
        log.exception("event_enqueue_failed", event_name=name)


async def dispatch_event(
    app: web.Application, name: str, user_id: str | None, data: dict[str, Any]
) -> int:
    """Deliver to each enabled integration; one failing integration does not stop the rest."""
    event = Event(name, user_id, data)
    delivered = 0
    for plugin, integration in list(app[PLUGINS].registries.integrations.values()):
        if integration.events and name not in integration.events:
            continue
        try:
            config = await app[PLUGIN_SETTINGS].config(plugin)
            await integration.handle(event, config)
            delivered += 1
        except Exception as exc:
            log.error(
                "integration_failed",
                plugin=plugin,
                event_name=name,
                error=f"{type(exc).__name__}: {exc}",
            )
    return delivered
