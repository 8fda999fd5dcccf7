"""The Slack app: ``/multinotes <prompt>`` in a channel is answered by the user's models and
charged to their MultinotesAI credits; a Save as note button keeps an answer, and the "Save to
MultinotesAI" message shortcut (Callback ID ``save_to_multinotes``) keeps any message as a note.

A workspace adds the app through Slack's OAuth v2 ("Add to Slack" on ``/integrations``; the bot
token is kept encrypted). Every request from Slack arrives at one Request URL,
``POST /api/integrations/slack/events`` (slash commands, button presses and Events API
callbacks), and is checked against the app's signing secret before anything else. A Slack user
links their account once, through a signed link the command sends them; the answer is worked
out in a background task (``slack.answer``) through the workspace's own pipeline and posted
through the command's ``response_url``. Tables: ``tables.py``, created by ``migrations/``.
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
from .service import ANSWER_TASK, PLUGIN, SlackSettings

__version__ = "1.0.0"

HERE = Path(__file__).parent


async def answer_task(app: aiohttp_web.Application, command_id: str) -> str:
    return await service.answer_command(plugin_context(app, PLUGIN), command_id)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(SlackSettings)


@hookimpl
def register_migrations(register: MigrationsRegistrar) -> None:
    register(HERE / "migrations", metadata=tables.Base.metadata)


@hookimpl
def register_user_data(register: UserDataRegistrar) -> None:
    register(user_data.SLACK_EXPORT)


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
    register("chat-apps.css")


@hookimpl
def register_settings_panels(register: SettingsPanelRegistrar) -> None:
    register(
        SettingsPanel(
            "slack", "Slack", "slack/panel.html", area="integrations", context=web.panel_context
        )
    )
