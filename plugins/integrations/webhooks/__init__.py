"""Outgoing webhooks: users (and admins, for the whole instance) subscribe URLs to events and
receive them signed as the Standard Webhooks specification says, retried with backoff, each
attempt in a delivery log (``/api/webhooks``, the ``/integrations`` page).

Events arrive through the integration hook (``handle``, in a background task); each matching
endpoint gets one delivery, sent by the ``webhooks.deliver`` task and retried by it or by the
``webhooks.sweep`` job. Its tables (``tables.py``) are created by its own revisions
(``migrations/``, the ``webhooks`` branch of the schema).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from sqlalchemy import case, null, select

from multinotes.plugin import (
    Event,
    Integration,
    IntegrationRegistrar,
    MigrationsRegistrar,
    NavLink,
    NavLinkRegistrar,
    PluginContext,
    RouteRegistrar,
    SettingsRegistrar,
    TaskRegistrar,
    TemplateRegistrar,
    UserDataRegistrar,
    UserSet,
    hookimpl,
    plugin_context,
)

from . import api, pages, service, tables, user_data
from .service import DELIVER_TASK, PLUGIN, SWEEP_TASK, WebhooksSettings

__version__ = "1.0.0"


class Webhooks(Integration):
    integration_id = PLUGIN
    name = "Outgoing webhooks"
    #: Every event: which endpoint wants which is decided per endpoint.
    events: ClassVar[frozenset[str]] = frozenset()
    #: Owners of an enabled endpoint; NULL (everyone) when an instance-wide one exists. The
    #: core skips the queue and the endpoint read for everyone else's events.
    audience: ClassVar[UserSet | None] = UserSet(
        "webhooks.endpoints",
        select(case((tables.Endpoint.scope == "instance", null()), else_=tables.Endpoint.user_id))
        .where(tables.Endpoint.enabled.is_(True))
        .distinct(),
    )

    async def handle(
        self, event: Event, config: Any, *, context: PluginContext | None = None
    ) -> None:
        if context is None:
            return  # a core without the context argument cannot reach our tables
        await service.dispatch(context, event)


async def deliver_task(
    app: web.Application, delivery_id: str, expected_attempts: int = 0, initial: bool = False
) -> str:
    ctx = plugin_context(app, PLUGIN)
    if expected_attempts < 0:  # the Retry button: one attempt now, whatever the status
        status, _ = await service.attempt(
            ctx, delivery_id, await ctx.settings(WebhooksSettings), trigger="manual"
        )
        return status
    return await service.deliver(ctx, delivery_id, expected_attempts, initial=initial)


async def sweep_task(app: web.Application) -> int:
    return await service.sweep(plugin_context(app, PLUGIN))


@hookimpl
def register_integrations(register: IntegrationRegistrar) -> None:
    register(Webhooks())


@hookimpl
def register_migrations(register: MigrationsRegistrar) -> None:
    register(Path(__file__).parent / "migrations", metadata=tables.Base.metadata)


@hookimpl
def register_user_data(register: UserDataRegistrar) -> None:
    register(user_data.WEBHOOKS_EXPORT)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(WebhooksSettings)


@hookimpl
def register_tasks(register: TaskRegistrar) -> None:
    register(DELIVER_TASK, deliver_task)
    register(SWEEP_TASK, sweep_task, schedule="* * * * *")


@hookimpl
def register_routes(register: RouteRegistrar) -> None:
    for method, path, handler, name in api.ROUTES:
        register(method, path, handler, access="user", name=name)
    for method, path, handler, name in pages.ROUTES:
        register(method, path, handler, access="user", name=name)


@hookimpl
def register_nav_links(register: NavLinkRegistrar) -> None:
    register(NavLink(id="integrations", label="Integrations", href="/integrations"))


@hookimpl
def register_templates(register: TemplateRegistrar) -> None:
    here = Path(__file__).parent
    register(templates=here / "templates", static=here / "static")
