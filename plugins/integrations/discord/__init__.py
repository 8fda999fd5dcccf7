"""The Discord app: ``/ask`` in a server is answered by the user's models and charged to their
MultinotesAI credits; a Save as note button keeps an answer.

Discord sends every interaction to ``POST /api/integrations/discord/interactions``, checked
against the application's Ed25519 public key before anything else (PING answered with PONG). A
Discord user links their account once, through a signed link ``/ask`` sends them; ``/ask`` is
deferred at once and the ``discord.answer`` task edits the reply through Discord's webhook API
once the workspace's pipeline has answered. Tables: ``tables.py``, created by ``migrations/``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web as aiohttp_web

from multinotes.plugin import (
    AssetRegistrar,
    MigrationsRegistrar,
    RouteRegistrar,
    SettingsPanel,
    SettingsPanelRegistrar,
    SettingsRegistrar,
    TaskRegistrar,
    TemplateRegistrar,
    UserDataRegistrar,
    hookimpl,
    plugin_context,
)

from . import service, tables, user_data, web
from .service import ANSWER_TASK, PLUGIN, DiscordSettings

__version__ = "1.0.0"

HERE = Path(__file__).parent


async def answer_task(app: aiohttp_web.Application, interaction_id: str) -> str:
    return await service.answer_interaction(plugin_context(app, PLUGIN), interaction_id)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(DiscordSettings)


@hookimpl
def register_migrations(register: MigrationsRegistrar) -> None:
    register(HERE / "migrations", metadata=tables.Base.metadata)


@hookimpl
def register_user_data(register: UserDataRegistrar) -> None:
    register(user_data.DISCORD_EXPORT)


@hookimpl
def register_tasks(register: TaskRegistrar) -> None:
    register(ANSWER_TASK, answer_task)


@hookimpl
def register_routes(register: RouteRegistrar) -> None:
    for method, path, handler, access, name in web.ROUTES:
        register(method, path, handler, access=access, name=name)


@hookimpl
def register_templates(register: TemplateRegistrar) -> None:
    register(templates=HERE / "templates", static=HERE / "static")


@hookimpl
def register_assets(register: AssetRegistrar) -> None:
    register("discord.css")


@hookimpl
def register_settings_panels(register: SettingsPanelRegistrar) -> None:
    register(
        SettingsPanel(
            "discord",
            "Discord",
            "discord/panel.html",
            area="integrations",
            context=web.panel_context,
        )
    )
