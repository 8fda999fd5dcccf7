"""A plugin using every UI extension point, as a third party would (``multinotes.plugin`` only):
a nav link in the main and admin navigation, actions on notes, answers, conversations and folders
(one posted, one a link in the "Export" group), settings panels on /account and in the console,
a stylesheet, and a page of its own that extends the core's base template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from multinotes.plugin import (
    Action,
    ActionRegistrar,
    ActionTarget,
    AssetRegistrar,
    NavLink,
    NavLinkRegistrar,
    RouteRegistrar,
    SettingsPanel,
    SettingsPanelRegistrar,
    SettingsRegistrar,
    TemplateRegistrar,
    Viewer,
    hookimpl,
    plugin_context,
)

HERE = Path(__file__).parent
NAME = "uidemo"
#: What the posted action received: (object id, user who asked).
SENT: list[tuple[str, str]] = []


class DemoSettings(BaseModel):
    channel: str = "#general"


def owner_only(target: ActionTarget, viewer: Viewer) -> bool:
    return target.owner_id == viewer.id


async def board(request: web.Request) -> web.Response:
    return plugin_context(request.app, NAME).render_page(
        request, "uidemo/board.html", nav="uidemo", items=["first", "<second>"]
    )


async def send(request: web.Request) -> web.Response:
    context = plugin_context(request.app, NAME)
    user = context.caller(request).user_id
    settings = await context.settings(DemoSettings)
    SENT.append((request.match_info["id"], user))
    return web.Response(text=f"Sent to {settings.channel}.", content_type="text/plain")


async def panel_context(request: web.Request) -> dict[str, Any]:
    settings = await plugin_context(request.app, NAME).settings(DemoSettings)
    return {"channel": settings.channel}


@hookimpl
def register_templates(register: TemplateRegistrar) -> None:
    register(templates=HERE / "templates", static=HERE / "static")


@hookimpl
def register_assets(register: AssetRegistrar) -> None:
    register("uidemo.css")


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(DemoSettings)


@hookimpl
def register_routes(register: RouteRegistrar) -> None:
    register("GET", "/plugins/uidemo/board", board, access="user")
    register("POST", "/plugins/uidemo/send/{id}", send, access="user")


@hookimpl
def register_nav_links(register: NavLinkRegistrar) -> None:
    register(NavLink("uidemo-board", "Board & <Co>", "/plugins/uidemo/board"))
    register(NavLink("uidemo-reports", "Demo reports", "/plugins/uidemo/board", area="admin"))


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    register(
        Action(
            "uidemo-send",
            "Send to Demo",
            on={"note", "answer", "prompt", "conversation", "folder"},
            post="/plugins/uidemo/send/{id}",
            icon="send",
            applies=owner_only,
        )
    )
    register(
        Action(
            "uidemo-open",
            "Demo file",
            on={"note"},
            url="/plugins/uidemo/board?note={id}",
            group="Export",
        )
    )


@hookimpl
def register_settings_panels(register: SettingsPanelRegistrar) -> None:
    register(SettingsPanel("uidemo-account", "Demo", "uidemo/panel.html", context=panel_context))
    register(
        SettingsPanel(
            "uidemo-console",
            "Demo channel",
            "uidemo/panel.html",
            area="admin",
            context=panel_context,
        )
    )
