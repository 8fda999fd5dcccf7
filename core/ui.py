"""UI extension points: what plugins add to the server-rendered pages.

Plugins register, through hooks (see ``hookspecs.py``), navigation links (``NavLink``), actions
on a note, an answer, a conversation or a folder (``Action``), settings panels on ``/account``
and in the admin console (``SettingsPanel``) and CSS/JS files (``register_assets``). Links,
actions and panels live in the plugin host's registries, which are rebuilt from the *enabled*
plugins whenever an admin flips a switch, so a disabled plugin's contributions vanish from the
next page; assets and template folders are filtered by the same state when a page is drawn.

Everything a plugin gives is text, never markup: labels and titles are escaped by the
templates, URLs must be site paths or http(s) addresses, icons are names from the core's icon
set. Only a settings panel's own template produces HTML, as any template does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import jinja2
import structlog
from aiohttp import web
from markupsafe import Markup

if TYPE_CHECKING:
    from multinotes.plugin_host import PluginHost

log = structlog.get_logger(__name__)

#: The objects an action can be offered on. An "answer" is one model's reply in the workspace; a
#: "prompt" is one of the user's prompts there, with its models' answers (a comparison).
TargetKind = Literal["note", "answer", "prompt", "conversation", "folder"]
TARGET_KINDS: frozenset[str] = frozenset({"note", "answer", "prompt", "conversation", "folder"})
NavArea = Literal["main", "admin"]
PanelArea = Literal["account", "admin", "integrations"]

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ICON = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
LABEL_LIMIT = 80


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{what} id must be 1-64 of a-z, 0-9, '_', '.', '-', got {value!r}")


def _check_label(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > LABEL_LIMIT:
        raise ValueError(f"{what} label must be 1-{LABEL_LIMIT} characters of text")


def _check_icon(value: object) -> None:
    if value is not None and (not isinstance(value, str) or not _ICON.fullmatch(value)):
        raise ValueError(f"icon must be an icon name like 'send' (a-z, 0-9, '-'), got {value!r}")


def check_url(value: object, what: str = "url") -> str:
    """A same-site path (``/...``, not ``//...``) or an ``http(s)://`` address; anything else
    (``javascript:``, ``data:``, a relative path) is refused."""
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"{what} must be a path starting with '/' or an http(s) URL")
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    if re.match(r"https?://[^/\s]", value):
        return value
    raise ValueError(f"{what} must be a path starting with '/' or an http(s) URL, got {value!r}")


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the page: the signed-in user's id and whether they are an admin."""

    id: str
    is_admin: bool = False


@dataclass(frozen=True)
class ActionTarget:
    """The object an action is offered on. ``kind`` is ``"note"``, ``"answer"``, ``"prompt"``
    (its id is the prompt message's), ``"conversation"`` or ``"folder"``; ``owner_id`` is the id
    of the user it belongs to (a shared note's viewer is not its owner); ``title`` is its title
    (an answer's: the model's name; a prompt's: its first words)."""

    kind: str
    id: str
    owner_id: str
    title: str = ""


@dataclass(frozen=True)
class NavLink:
    """A link in the main navigation (``area="main"``, signed-in users) or in the admin console's
    navigation (``area="admin"``). ``visible(viewer)`` may hide it from some users."""

    id: str
    label: str
    href: str
    area: NavArea = "main"
    icon: str | None = None
    visible: Callable[[Viewer], bool] | None = None

    def __post_init__(self) -> None:
        _check_id(self.id, "a nav link")
        _check_label(self.label, "a nav link")
        check_url(self.href, "href")
        _check_icon(self.icon)
        if self.area not in ("main", "admin"):
            raise ValueError("a nav link's area is 'main' or 'admin'")


@dataclass(frozen=True)
class Action:
    """A menu item on a note, an answer, a prompt, a conversation or a folder.

    Give exactly one of ``url`` (a link: opens or downloads, must not change anything) and
    ``post`` (a form posted to that address, with the CSRF token; htmx posts it in place and puts
    the response's text in the menu's status line). In either, ``{id}`` is replaced by the
    object's id. ``on`` names the kinds of object it is offered on; ``applies(target, viewer)``
    may narrow that to some objects or users (e.g. only the owner). Actions with the same
    ``group`` (e.g. ``"Export"``) are listed together under that heading.
    """

    id: str
    label: str
    #: One kind or several (stored as a frozenset).
    on: Collection[str]
    url: str | None = None
    post: str | None = None
    icon: str | None = None
    applies: Callable[[ActionTarget, Viewer], bool] | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.id, "an action")
        _check_label(self.label, "an action")
        if self.group is not None:
            _check_label(self.group, "an action group")
        _check_icon(self.icon)
        kinds = frozenset([self.on] if isinstance(self.on, str) else self.on)
        if not kinds or not kinds <= TARGET_KINDS:
            raise ValueError(f"an action's 'on' is one or more of {sorted(TARGET_KINDS)}")
        object.__setattr__(self, "on", kinds)
        if (self.url is None) == (self.post is None):
            raise ValueError("an action has exactly one of url= or post=")
        check_url(self.url or self.post, "url" if self.url else "post")

    def href_for(self, target: ActionTarget) -> str:
        """The action's address for one object (its id URL-quoted in place of ``{id}``)."""
        address = self.url or self.post or ""
        return address.replace("{id}", quote(target.id, safe=""))


@dataclass(frozen=True)
class SettingsPanel:
    """A section of the account page (``area="account"``), of the plugin's page in the admin
    console (``area="admin"``) or of the ``/integrations`` page (``area="integrations"``: a chat
    app's install button and the user's links): a heading ``title`` over the plugin's
    ``template`` (from its ``register_templates`` folder), rendered with the page's context
    (``csrf_token``, ``actor``, ``request``, ``static``) plus what ``async context(request)``
    returns. Forms in it post to the plugin's own routes."""

    id: str
    title: str
    template: str
    area: PanelArea = "account"
    context: Callable[[web.Request], Awaitable[dict[str, Any]]] | None = None

    def __post_init__(self) -> None:
        _check_id(self.id, "a settings panel")
        _check_label(self.title, "a settings panel")
        if self.area not in ("account", "admin", "integrations"):
            raise ValueError("a settings panel's area is 'account', 'admin' or 'integrations'")
        if not isinstance(self.template, str) or not self.template.strip():
            raise ValueError("a settings panel needs a template name")


@dataclass(frozen=True)
class Asset:
    """A CSS or JS file from a plugin's static folder, included in every page."""

    plugin: str
    path: str

    @property
    def kind(self) -> Literal["css", "js"]:
        return "css" if self.path.endswith(".css") else "js"


def check_asset(path: object, folders: list[Path]) -> str:
    """An asset path: relative, ``.css`` or ``.js``, and a file in one of ``folders``."""
    if not isinstance(path, str) or not path.endswith((".css", ".js")):
        raise ValueError(f"an asset is a .css or .js file, got {path!r}")
    parts = Path(path).parts
    if path.startswith("/") or ".." in parts or "\\" in path:
        raise ValueError(f"an asset path is relative to the plugin's static folder: {path!r}")
    if not folders:
        raise ValueError("register a static folder (register_templates) before assets")
    if not any((folder / path).is_file() for folder in folders):
        raise ValueError(f"asset {path!r} is not in the plugin's static folder")
    return path


# -- serving ------------------------------------------------------------------------------------

#: The static route of each plugin (one per static folder), for versioned asset URLs.
PLUGIN_STATIC: web.AppKey[dict[str, list[web.AbstractResource]]] = web.AppKey("plugin_static", dict)


def setup_plugin_static(app: web.Application) -> None:
    """Serve each plugin's static folders under ``/static/plugins/<plugin>/`` (the first folder
    holding a file wins), with a content hash in asset URLs as for the core's files."""
    from multinotes.keys import PLUGINS

    resources: dict[str, list[web.AbstractResource]] = {}
    for record in app[PLUGINS].loaded():
        for index, folder in enumerate(record.static):
            prefix = f"/static/plugins/{record.name}/"
            if index:
                prefix += f"-{index}/"  # a second folder cannot share the first one's prefix
            resource = app.router.add_static(prefix, folder, append_version=True)
            resources.setdefault(record.name, []).append(resource)
    app[PLUGIN_STATIC] = resources


def asset_url(app: web.Application, asset: Asset) -> str | None:
    from multinotes.keys import PLUGINS

    record = app[PLUGINS].records.get(asset.plugin)
    if record is None:
        return None
    for folder, resource in zip(
        record.static, app[PLUGIN_STATIC].get(asset.plugin, []), strict=False
    ):
        if (folder / asset.path).is_file():
            return str(resource.url_for(filename=asset.path))
    return None


# -- templates ----------------------------------------------------------------------------------


class PluginTemplateLoader(jinja2.BaseLoader):
    """The template folders of the enabled plugins, in plugin name order: a disabled plugin's
    templates stop overriding the core's."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def _folders(self) -> Iterator[str]:
        for record in self.host.loaded():
            if record.enabled:
                yield from (str(folder) for folder in record.templates)

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        folders = list(self._folders())
        if not folders:
            raise jinja2.TemplateNotFound(template)
        return jinja2.FileSystemLoader(folders).get_source(environment, template)

    def list_templates(self) -> list[str]:
        return jinja2.FileSystemLoader(list(self._folders())).list_templates()


def template_loader(host: PluginHost, core: Path) -> jinja2.BaseLoader:
    """Plugin templates first, then the core's; ``default:<name>`` is always the core's own
    template, so a plugin's ``base.html`` can ``{% extends "default:base.html" %}`` and change a
    block instead of copying the page (as datasette does)."""
    core_loader = jinja2.FileSystemLoader(str(core))
    return jinja2.ChoiceLoader(
        [
            PluginTemplateLoader(host),
            core_loader,
            jinja2.PrefixLoader({"default": core_loader}, delimiter=":"),
        ]
    )


def forget_templates_on_change(host: PluginHost, env: jinja2.Environment) -> None:
    """Compiled templates are cached by name; after a plugin is switched on or off the same name
    may mean another file."""

    def clear() -> None:
        if env.cache is not None:
            env.cache.clear()

    host.on_change(clear)


# -- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownLink:
    id: str
    plugin: str
    label: str
    href: str
    icon: str | None


@dataclass(frozen=True)
class ShownAction:
    id: str
    plugin: str
    label: str
    href: str
    method: Literal["get", "post"]
    icon: str | None
    group: str | None = None


@dataclass(frozen=True)
class ShownPanel:
    id: str
    plugin: str
    title: str
    html: Markup


@dataclass
class PageExtensions:
    """What the enabled plugins add to one page, as templates see it (``ui`` in every
    template). A plugin whose ``visible``/``applies`` raises is left out of that page and the
    error logged: one plugin's bug does not break a page."""

    request: web.Request
    _viewer: Viewer | None = field(default=None, init=False)

    @property
    def viewer(self) -> Viewer | None:
        from multinotes.identity.actor import current_actor

        if self._viewer is None:
            actor = current_actor(self.request)
            if actor is not None:
                self._viewer = Viewer(actor.user_id, actor.is_admin)
        return self._viewer

    @property
    def _host(self) -> PluginHost:
        from multinotes.keys import PLUGINS

        return self.request.app[PLUGINS]

    def nav(self, area: str = "main") -> list[ShownLink]:
        viewer = self.viewer
        if viewer is None:
            return []
        shown = []
        for plugin, link in self._host.registries.nav_links.values():
            if link.area != area or not _asks(plugin, "visible", link.visible, viewer):
                continue
            shown.append(ShownLink(link.id, plugin, link.label, link.href, link.icon))
        return shown

    def actions(self, kind: str, id: str, owner_id: str, title: str = "") -> list[ShownAction]:
        viewer = self.viewer
        if viewer is None or not id:
            return []
        target = ActionTarget(kind, str(id), str(owner_id), str(title or ""))
        shown = []
        for plugin, action in self._host.registries.actions.values():
            if kind not in action.on:
                continue
            if not _asks(plugin, "applies", action.applies, target, viewer):
                continue
            method: Literal["get", "post"] = "get" if action.url else "post"
            href = action.href_for(target)
            shown.append(
                ShownAction(
                    action.id, plugin, action.label, href, method, action.icon, action.group
                )
            )
        # Ungrouped first, then each group together (in the order its first action came).
        groups = list(dict.fromkeys(a.group for a in shown if a.group))
        return [a for a in shown if not a.group] + [
            a for group in groups for a in shown if a.group == group
        ]

    def assets(self) -> list[tuple[str, str]]:
        """``(kind, url)`` of every enabled plugin's CSS and JS files."""
        found: list[tuple[str, str]] = []
        for record in self._host.loaded():
            if not record.enabled:
                continue
            for path in record.assets:
                url = asset_url(self.request.app, Asset(record.name, path))
                if url is not None:
                    found.append((Asset(record.name, path).kind, url))
        return found


def _asks(plugin: str, what: str, check: Callable[..., bool] | None, *args: Any) -> bool:
    if check is None:
        return True
    try:
        return bool(check(*args))
    except Exception as exc:
        log.error("plugin_ui_check_failed", plugin=plugin, check=what, error=repr(exc))
        return False


async def settings_panels(
    request: web.Request,
    area: str,
    *,
    plugin: str | None = None,
    core: Iterable[SettingsPanel] = (),
) -> list[ShownPanel]:
    """The enabled plugins' panels for ``area`` (only ``plugin``'s when given), rendered. A panel
    whose context or template fails is replaced by a notice naming its plugin, and logged.

    ``core`` panels (the console's settings form of a plugin) come first, owned by ``"core"``
    and rendered the same way, so a page shows its own sections and plugins' alike."""
    import aiohttp_jinja2

    from multinotes.identity.actor import current_actor
    from multinotes.keys import PLUGINS

    actor = current_actor(request)
    if actor is None:
        return []
    env = aiohttp_jinja2.get_env(request.app)
    base = {
        "actor": actor,
        "csrf_token": actor.csrf_token or "",
        "request": request,
    }
    shown = []
    panels = [("core", panel) for panel in core if panel.area == area]
    for owner, panel in request.app[PLUGINS].registries.settings_panels.values():
        if panel.area != area or (plugin is not None and owner != plugin):
            continue
        panels.append((owner, panel))
    for owner, panel in panels:
        try:
            extra = await panel.context(request) if panel.context else {}
            html = env.get_template(panel.template).render({**base, **extra})
        except Exception as exc:
            log.error("plugin_panel_failed", plugin=owner, panel=panel.id, error=repr(exc))
            notice = Markup('<p class="field-error">This panel could not be shown ({}).</p>')
            html = notice.format(owner)
        # The panel's template was rendered with autoescape on: its output is markup.
        shown.append(ShownPanel(panel.id, owner, panel.title, Markup(html)))  # noqa: S704
    return shown
