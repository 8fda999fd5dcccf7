"""The plugin contract.

Every hook a plugin may implement, grouped by family:

* ``register_*`` (capability hooks) are **synchronous** and take a ``register`` callback. They run
  at startup and again whenever plugin state changes, so they must be cheap and side-effect free:
  build objects and hand them to ``register``. Runtime work belongs in ``async`` methods of the
  registered objects, never in a hook call (pluggy does not await coroutines).
* ``startup`` / ``shutdown`` may return an awaitable, which the core awaits.

The core validates what is registered and attributes it to the plugin: a duplicate id is a
startup error naming both plugins; an exception in a hook marks that plugin failed (with the
error) and the app still starts. Specs may gain arguments; they never lose or rename one.

A plugin's *kind* follows from the hooks it implements: ``register_providers`` → provider,
``register_exporters`` → exporter, ``register_integrations`` → integration,
``register_billing`` → billing.

Plugins type their implementations with the registrar protocols below, imported from
``multinotes.plugin`` (``def register_providers(register: ProviderRegistrar) -> None``).
With ``MULTINOTES_PLUGINS_TRACE=1`` the host logs every hook call (plugin, duration, what was
registered, result or error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from multinotes import hookspec

if TYPE_CHECKING:
    from pathlib import Path

    from aiohttp import web
    from pydantic import BaseModel
    from sqlalchemy import MetaData

    from multinotes.billing import BillingBackend
    from multinotes.connections import ConnectionKind
    from multinotes.domain_events import EventType
    from multinotes.exporters import Exporter
    from multinotes.integrations import Integration
    from multinotes.privacy.plugin_data import UserDataExport
    from multinotes.providers import Provider
    from multinotes.ui import Action, NavLink, SettingsPanel


class ProviderRegistrar(Protocol):
    def __call__(self, provider: Provider, /) -> None:
        """Add a provider (``multinotes.plugin.Provider``). Its id must be unique across
        plugins."""


class ExporterRegistrar(Protocol):
    def __call__(self, exporter: Exporter, /) -> None:
        """Add an exporter (``multinotes.plugin.Exporter``). Its id must be unique across
        plugins."""


class IntegrationRegistrar(Protocol):
    def __call__(self, integration: Integration, /) -> None:
        """Add an integration (``multinotes.plugin.Integration``). Its id must be unique across
        plugins."""


class BillingRegistrar(Protocol):
    def __call__(self, backend: BillingBackend, /) -> None:
        """Add a payment backend (``multinotes.plugin.BillingBackend``). Its id must be unique
        across plugins."""


class ConnectionRegistrar(Protocol):
    def __call__(self, kind: ConnectionKind, /) -> None:
        """Add a service users connect their account to (``multinotes.plugin.ConnectionKind``).
        Its ``kind_id`` must be unique across plugins."""


class EventRegistrar(Protocol):
    def __call__(self, event_type: EventType[Any], /) -> None:
        """Add an event type (``multinotes.plugin.EventType``) to the catalogue. Its name must
        not be taken by the core or another plugin."""


class SettingsRegistrar(Protocol):
    def __call__(self, model: type[BaseModel], /) -> None:
        """Declare the plugin's settings model (once)."""


class RouteRegistrar(Protocol):
    def __call__(
        self,
        method: str,
        path: str,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        *,
        access: str,
        name: str | None = None,
    ) -> None:
        """Add a route. ``access`` is ``"public"``, ``"user"`` or ``"admin"``. While the plugin is
        disabled the route answers 404."""


class TaskRegistrar(Protocol):
    def __call__(
        self,
        name: str,
        func: Callable[..., Awaitable[Any]],
        *,
        schedule: str | None = None,
    ) -> None:
        """Add a background task ``func(app, **kwargs)``; ``schedule`` is a cron expression for
        periodic tasks run by the scheduler. ``name`` must be unique across plugins."""


class TemplateRegistrar(Protocol):
    def __call__(self, *, templates: Path | None = None, static: Path | None = None) -> None:
        """Add a templates folder (searched before the core's, so it can override any page) and/or
        a static folder (served at ``/static/plugins/<plugin>/``; see ``register_assets``)."""


class NavLinkRegistrar(Protocol):
    def __call__(self, link: NavLink, /) -> None:
        """Add a navigation link (``multinotes.plugin.NavLink``). Its id must be unique across
        plugins."""


class ActionRegistrar(Protocol):
    def __call__(self, action: Action, /) -> None:
        """Add an action on notes, answers, conversations or folders
        (``multinotes.plugin.Action``). Its id must be unique across plugins."""


class SettingsPanelRegistrar(Protocol):
    def __call__(self, panel: SettingsPanel, /) -> None:
        """Add a settings panel (``multinotes.plugin.SettingsPanel``). Its id must be unique
        across plugins."""


class AssetRegistrar(Protocol):
    def __call__(self, path: str, /) -> None:
        """Include a ``.css`` or ``.js`` file of the plugin's static folder (registered with
        ``register_templates``) in every page; ``path`` is relative to that folder."""


class MigrationsRegistrar(Protocol):
    def __call__(self, versions: Path, /, *, metadata: MetaData | None = None) -> None:
        """Add the plugin's folder of Alembic revision files (see ``register_migrations``);
        ``metadata`` is the ``MetaData`` its tables are declared on (``plugin_metadata()``)."""


class UserDataRegistrar(Protocol):
    def __call__(self, export: UserDataExport, /) -> None:
        """Add a file to every user's data export (``multinotes.plugin.UserDataExport``). Its
        name must be unique within the plugin."""


# -- capabilities -------------------------------------------------------------------------------


@hookspec
def register_providers(register: ProviderRegistrar) -> None:
    """Register LLM providers (``multinotes.plugin.Provider``), each with its models.

    :param register: call once per provider. Provider ids must be unique across plugins.
    """


@hookspec
def register_exporters(register: ExporterRegistrar) -> None:
    """Register export formats (``multinotes.plugin.Exporter``) for notes.

    :param register: call once per exporter. Exporter ids must be unique across plugins.
    """


@hookspec
def register_integrations(register: IntegrationRegistrar) -> None:
    """Register integrations (``multinotes.plugin.Integration``) that receive app events.

    :param register: call once per integration. Ids must be unique across plugins.
    """


@hookspec
def register_billing(register: BillingRegistrar) -> None:
    """Register payment backends (``multinotes.plugin.BillingBackend``).

    :param register: call once per backend. Ids must be unique across plugins.
    """


@hookspec
def register_connections(register: ConnectionRegistrar) -> None:
    """Register services users connect their accounts to through OAuth 2.0
    (``multinotes.plugin.ConnectionKind``: authorize and token endpoints from the plugin's
    settings, PKCE, how to name the account). The core runs the flow, keeps the tokens encrypted,
    refreshes them and lists the accounts on ``/account``. An exporter that acts on such an
    account names its kind (``Exporter.connection``) and receives a ``Connection`` when it runs.

    :param register: call once per kind. Kind ids must be unique across plugins.
    """


# -- app surface --------------------------------------------------------------------------------


@hookspec
def register_routes(register: RouteRegistrar) -> None:
    """Register HTTP routes. Called once at startup for every plugin that loaded (the router is
    frozen afterwards); the core answers 404 for them while the plugin is disabled.

    :param register: see ``RouteRegistrar``; every route must state its ``access``.
    """


@hookspec
def register_tasks(register: TaskRegistrar) -> None:
    """Register background tasks and periodic jobs. Called once at startup; a disabled plugin's
    tasks are skipped when they come due.

    :param register: see ``TaskRegistrar``.
    """


@hookspec
def register_templates(register: TemplateRegistrar) -> None:
    """Register template and static folders. Called once at startup. The templates are found
    before the core's while the plugin is enabled; ``"default:<name>"`` always loads the core's
    own template, so a plugin's ``base.html`` can ``{% extends "default:base.html" %}``.

    :param register: see ``TemplateRegistrar``.
    """


@hookspec
def register_events(register: EventRegistrar) -> None:
    """Add domain event types to the catalogue (``GET /api/events/catalog``), e.g. a billing
    plugin's ``gift.redeemed``. Called once at startup. A name the core or another plugin already
    defines marks this plugin failed. Publish them with ``PluginContext.emit``; integrations
    receive them like the core's events.

    :param register: call once per ``multinotes.plugin.EventType`` (a dotted ``name``, a payload
        schema ``version``, a ``description`` and a pydantic ``payload`` model).
    """


# -- user interface -----------------------------------------------------------------------------


@hookspec
def register_nav_links(register: NavLinkRegistrar) -> None:
    """Register links in the main navigation or the admin console's navigation
    (``multinotes.plugin.NavLink``). Called like the capability hooks; a disabled plugin's links
    vanish from the next page. Labels are text (escaped), never HTML.

    :param register: call once per link. Link ids must be unique across plugins.
    """


@hookspec
def register_actions(register: ActionRegistrar) -> None:
    """Register actions offered in the menus of notes, answers, conversations and folders
    (``multinotes.plugin.Action``): a link (``url``) or a form posted with the CSRF token
    (``post``), optionally only where ``applies(target, viewer)`` says so. Called like the
    capability hooks; a disabled plugin's actions vanish from the next page.

    :param register: call once per action. Action ids must be unique across plugins.
    """


@hookspec
def register_settings_panels(register: SettingsPanelRegistrar) -> None:
    """Register panels on the account page (``area="account"``) or on the plugin's page in the
    admin console (``area="admin"``) (``multinotes.plugin.SettingsPanel``): a title over one of
    the plugin's templates, rendered with ``await context(request)``. Called like the capability
    hooks; a disabled plugin's panels vanish from the next page.

    :param register: call once per panel. Panel ids must be unique across plugins.
    """


@hookspec
def register_assets(register: AssetRegistrar) -> None:
    """Register CSS and JS files of the plugin's static folder, included in every page (after
    the core's) with a content hash in their URL. Called once at startup; left out of pages
    while the plugin is disabled.

    :param register: call once per file (``"app.css"``, ``"js/app.js"``).
    """


@hookspec
def register_settings(register: SettingsRegistrar) -> None:
    """Declare the plugin's settings as one pydantic model (call ``register`` once).

    Every field can be bootstrapped from ``MULTINOTES_PLUGINS__<PLUGIN>__<FIELD>`` and edited by an
    admin. Fields typed ``pydantic.SecretStr`` are stored encrypted and never returned by any API
    or page (only their last four characters are shown). Fields should have defaults, so a plugin
    loads before an admin configures it.
    """


@hookspec
def register_migrations(register: MigrationsRegistrar) -> None:
    """Declare the plugin's own tables: a folder of Alembic revision files (call ``register``
    once), applied with the core's by ``multinotes migrate`` and at start in embedded mode.

    The revisions are one branch of the core's tree: ids start with ``<plugin>_`` (at most 32
    characters), the first has ``down_revision = None``, ``branch_labels = ("<plugin>",)`` and
    ``depends_on`` the core revision whose tables it references (``"0001_core"`` for
    ``users``). A folder breaking these rules marks the plugin failed at load. An installed
    plugin's revisions run whether or not it is enabled (switching it on needs no migration);
    an uninstalled plugin's tables stay, and reinstalling it resumes its branch.

    :param register: see ``MigrationsRegistrar``.
    """


@hookspec
def register_user_data(register: UserDataRegistrar) -> None:
    """Add the user's rows of the plugin's tables to their data export (``POST /api/me/export``):
    every table with a user's rows must be in it, minus secrets.

    The core calls each ``UserDataExport.collect(app, user_id)`` while it builds the zip and
    writes the result as ``plugins/<plugin>/<name>``; it does so for every loaded plugin,
    enabled or not (the rows are the user's either way). An exception fails that export.

    :param register: call once per file.
    """


@hookspec
def default_enabled(mode: str) -> bool | None:
    """Whether this plugin starts enabled before an admin decides (``None``: enabled).

    :param mode: ``"embedded"`` or ``"production"``.
    """


# -- lifecycle ----------------------------------------------------------------------------------


@hookspec
def startup(app: web.Application) -> Awaitable[None] | None:
    """Called once when a web or worker process has started and the database is ready. May return
    an awaitable, which is awaited. Raising marks the plugin failed; the process still starts."""


@hookspec
def shutdown(app: web.Application) -> Awaitable[None] | None:
    """Called once when the process stops. May return an awaitable. Errors are logged."""
