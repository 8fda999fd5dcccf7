"""Loads plugins, keeps their state, and builds the registries from the enabled ones.

One ``PluginHost`` per app (``app[PLUGINS]``). Loading happens in ``create_app`` (synchronously,
because routes must exist before the router freezes); which plugins are enabled comes from the
database at startup and is re-applied whenever an admin flips a switch in any process.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar

import pluggy
import structlog
from pydantic import BaseModel

from multinotes import PROJECT, hookspecs
from multinotes.errors import PluginError
from multinotes.migrations import PluginMigrations, check_plugin_revisions
from multinotes.ui import Action, NavLink, SettingsPanel

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from multinotes.billing import BillingBackend
    from multinotes.connections import ConnectionKind
    from multinotes.domain_events import EventType
    from multinotes.exporters import Exporter
    from multinotes.integrations import Integration
    from multinotes.privacy.plugin_data import UserDataExport
    from multinotes.providers import Provider

log = structlog.get_logger(__name__)

KIND_HOOKS = {
    "register_providers": "provider",
    "register_exporters": "exporter",
    "register_integrations": "integration",
    "register_billing": "billing",
}
CAPABILITIES = {
    "register_providers": "providers",
    "register_exporters": "exporters",
    "register_integrations": "integrations",
    "register_billing": "billing",
    # Services users connect accounts to (no kind: an exporter or integration also registers).
    "register_connections": "connections",
    # UI extension points: kept like capabilities (per enabled plugin, ids unique), no kind.
    "register_nav_links": "nav_links",
    "register_actions": "actions",
    "register_settings_panels": "settings_panels",
}
#: What each UI registry holds, checked when a plugin registers (``multinotes.ui``).
UI_TYPES: dict[str, type] = {
    "nav_links": NavLink,
    "actions": Action,
    "settings_panels": SettingsPanel,
}
ACCESS_LEVELS = ("public", "user", "admin")


@dataclass
class RouteDef:
    plugin: str
    method: str
    path: str
    handler: Callable[..., Any]
    access: str
    name: str | None


@dataclass
class TaskDef:
    plugin: str
    name: str
    func: Callable[..., Any]
    schedule: str | None


@dataclass
class PluginRecord:
    """What the console shows about one plugin."""

    name: str
    module: str
    version: str | None = None
    distribution: str | None = None
    #: "blocked": named in ``MULTINOTES_DISABLE_PLUGINS``, so never imported.
    status: Literal["loaded", "failed", "blocked"] = "loaded"
    error: str | None = None
    kinds: list[str] = field(default_factory=list)
    #: The hooks it implements, sorted (empty when it failed to import).
    hooks: list[str] = field(default_factory=list)
    enabled: bool = True
    default_enabled: bool = True
    obj: Any = None
    settings_model: type[BaseModel] | None = None
    templates: list[Path] = field(default_factory=list)
    static: list[Path] = field(default_factory=list)
    #: CSS/JS files of its static folders included in every page (``register_assets``).
    assets: list[str] = field(default_factory=list)
    #: Its own Alembic revisions (``register_migrations``), checked when it loaded.
    migrations: PluginMigrations | None = None
    #: Files it adds to a user's data export (``register_user_data``).
    user_data: list[UserDataExport] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status == "loaded" and self.enabled


T = TypeVar("T")


class Registered(NamedTuple, Generic[T]):
    """One registered object and the plugin that registered it (unpacks as a pair)."""

    plugin: str
    obj: T


@dataclass
class Registries:
    """Objects contributed by enabled plugins, keyed by id: ``{id: Registered(plugin, obj)}``."""

    providers: dict[str, Registered[Provider]] = field(default_factory=dict)
    exporters: dict[str, Registered[Exporter]] = field(default_factory=dict)
    integrations: dict[str, Registered[Integration]] = field(default_factory=dict)
    billing: dict[str, Registered[BillingBackend]] = field(default_factory=dict)
    connections: dict[str, Registered[ConnectionKind]] = field(default_factory=dict)
    nav_links: dict[str, Registered[NavLink]] = field(default_factory=dict)
    actions: dict[str, Registered[Action]] = field(default_factory=dict)
    settings_panels: dict[str, Registered[SettingsPanel]] = field(default_factory=dict)


PluginSource = tuple[str, Any]
"""``(name, module-or-object)``: how tests hand a host exactly the plugins they want."""


class PluginHost:
    """Loads plugins so that no plugin can stop the app: one that fails to import, implements
    a hook that does not exist, reuses another's name, task or id, or raises while registering
    is marked failed with its error and left out; the rest load. ``blocked`` names (the
    operator's kill switch) are not even imported."""

    def __init__(
        self, mode: str = "embedded", blocked: Iterable[str] = (), *, trace: bool = False
    ) -> None:
        self.mode = mode
        #: Log every hook call (``MULTINOTES_PLUGINS_TRACE``).
        self.trace = trace
        self.blocked = {name.strip() for name in blocked if name.strip()}
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.routes: list[RouteDef] = []
        self.tasks: dict[str, TaskDef] = {}
        #: Event types plugins added (``register_events``): name -> (plugin, type).
        self.event_types: dict[str, tuple[str, EventType[Any]]] = {}
        self.registries = Registries()
        self._listeners: list[Callable[[], None]] = []

    # -- loading ------------------------------------------------------------------------------

    def load_entrypoints(self, group: str = PROJECT) -> None:
        # A distribution's name and version, read once: parsing its metadata file for each of
        # its entry points (the built-in plugins are one distribution) was most of the time.
        described: dict[object, tuple[str | None, str | None]] = {}
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            self._load_entrypoint(ep, described)
        self._finish_loading()

    def load(self, sources: Iterable[PluginSource]) -> None:
        for name, obj in sources:
            module = obj.__name__ if isinstance(obj, ModuleType) else type(obj).__module__
            record = PluginRecord(name=name, module=module)
            if self._is_blocked(record):
                continue
            self._register(record, obj)
        self._finish_loading()

    def _is_blocked(self, record: PluginRecord) -> bool:
        """Record a plugin the operator switched off (never imported); False for any other."""
        if record.name not in self.blocked or record.name in self.records:
            return False
        record.status = "blocked"
        record.enabled = False
        record.error = "not loaded: switched off by MULTINOTES_DISABLE_PLUGINS"
        self.records[record.name] = record
        log.warning("plugin_blocked", plugin=record.name)
        return True

    def _load_entrypoint(
        self, ep: EntryPoint, described: dict[object, tuple[str | None, str | None]]
    ) -> None:
        dist = getattr(ep, "dist", None)
        distribution = version = None
        if dist is not None:
            where = getattr(dist, "_path", None) or id(dist)
            if where not in described:
                metadata = dist.metadata
                described[where] = (metadata["Name"], metadata["Version"])
            distribution, version = described[where]
        record = PluginRecord(
            name=ep.name, module=ep.value, distribution=distribution, version=version
        )
        if ep.name in self.records:
            # Which of the two the name means depends on sys.path order: neither is used.
            other = self.records[ep.name]
            if other.status != "blocked":
                error = PluginError(
                    f"Two plugins are named {ep.name!r}: {other.module} and {ep.value}; "
                    "uninstall one of them",
                    plugin=ep.name,
                )
                self._fail(other, error, "not loaded")
            return
        if self._is_blocked(record):
            return
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not take the app down
            self._fail(record, exc, "failed to import")
            self.records[record.name] = record
            return
        self._register(record, obj)

    def _register(self, record: PluginRecord, obj: Any) -> None:
        if record.name in self.records:
            other = self.records[record.name]
            raise PluginError(
                f"Two plugins are named {record.name!r}: {other.module} and {record.module}.",
                plugin=record.name,
            )
        self.records[record.name] = record
        try:
            self.pm.register(obj, name=record.name)
        except Exception as exc:
            self._fail(record, exc, "failed to register")
            return
        record.obj = obj
        record.hooks = sorted(self._hooks_of(record.name))
        record.kinds = sorted({KIND_HOOKS[hook] for hook in record.hooks if hook in KIND_HOOKS})
        if record.version is None:
            record.version = getattr(obj, "__version__", None)

    def _hooks_of(self, plugin: str) -> list[str]:
        obj = self.pm.get_plugin(plugin)
        if obj is None:
            return []
        return [caller.name for caller in self.pm.get_hookcallers(obj) or []]

    def _fail(self, record: PluginRecord, exc: BaseException, what: str) -> None:
        record.status = "failed"
        record.error = f"{what}: {type(exc).__name__}: {exc}"
        record.enabled = False
        if self.pm.get_plugin(record.name) is not None:
            self.pm.unregister(name=record.name)
        # Whatever it contributed before failing goes with it.
        self.routes = [r for r in self.routes if r.plugin != record.name]
        self.tasks = {n: t for n, t in self.tasks.items() if t.plugin != record.name}
        self.event_types = {n: e for n, e in self.event_types.items() if e[0] != record.name}
        record.templates.clear()
        record.static.clear()
        record.assets.clear()
        record.migrations = None
        record.user_data = []
        log.error(
            "plugin_failed",
            plugin=record.name,
            error=record.error,
            traceback="".join(traceback.format_exception(exc)),
        )

    def _finish_loading(self) -> None:
        self._check_hook_names()
        for record in self.loaded():
            self._collect_static_contributions(record)
        self._build_registries()

    def _check_hook_names(self) -> None:
        """A misspelled hook name would silently never run: such a plugin is marked failed."""
        problems: dict[str, list[str]] = {}
        for name in dir(self.pm.hook):
            if name.startswith("_"):
                continue
            caller = getattr(self.pm.hook, name)
            if caller.spec is None:
                for impl in caller.get_hookimpls():
                    problems.setdefault(impl.plugin_name, []).append(name)
        for plugin, hooks in sorted(problems.items()):
            unknown = ", ".join(repr(h) for h in sorted(hooks))
            self._fail(
                self.records[plugin],
                PluginError(
                    f"implements unknown hook {unknown}; check the spelling against hookspecs.py",
                    plugin=plugin,
                ),
                "failed to register",
            )

    def _call_one(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on one plugin only, so whatever it registers is attributed to it."""
        caller = getattr(self.pm.hook, hook)
        for impl in caller.get_hookimpls():
            if impl.plugin_name == plugin:
                if self.trace:
                    return self._traced(plugin, hook, impl.function, impl.argnames, kwargs)
                return impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        return None

    def _traced(
        self,
        plugin: str,
        hook: str,
        function: Callable[..., Any],
        argnames: tuple[str, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """One hook call, logged with its plugin, duration and result: the return value, what
        it handed to ``register``, or the exception it raised."""
        registered: list[str] = []
        if "register" in kwargs:
            inner = kwargs["register"]

            def register(*args: Any, **kw: Any) -> Any:
                registered.append(_describe(args, kw))
                return inner(*args, **kw)

            kwargs = {**kwargs, "register": register}
        started = time.perf_counter()
        try:
            result = function(**{arg: kwargs[arg] for arg in argnames})
        except BaseException as exc:
            log.info(
                "plugin_hook_call",
                plugin=plugin,
                hook=hook,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                registered=registered,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        log.info(
            "plugin_hook_call",
            plugin=plugin,
            hook=hook,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            registered=registered,
            result=_short_repr(result),
        )
        return result

    def _collect_static_contributions(self, record: PluginRecord) -> None:
        name = record.name
        routes: list[RouteDef] = []
        tasks: list[TaskDef] = []
        models: list[type[BaseModel]] = []
        events: list[EventType[Any]] = []
        assets: list[str] = []
        migrations: list[PluginMigrations] = []
        user_data: list[UserDataExport] = []

        def register_route(
            method: str,
            path: str,
            handler: Callable[..., Any],
            *,
            access: str,
            name: str | None = None,
        ) -> None:
            if access not in ACCESS_LEVELS:
                raise PluginError(
                    f"route {path} needs access in {ACCESS_LEVELS}", plugin=record.name
                )
            if not path.startswith("/"):
                raise PluginError(f"route path {path!r} must start with '/'", plugin=record.name)
            routes.append(RouteDef(record.name, method.upper(), path, handler, access, name))

        def register_task(
            task_name: str, func: Callable[..., Any], *, schedule: str | None = None
        ) -> None:
            tasks.append(TaskDef(record.name, task_name, func, schedule))

        def register_templates(
            *, templates: Path | None = None, static: Path | None = None
        ) -> None:
            if templates is not None:
                record.templates.append(Path(templates))
            if static is not None:
                record.static.append(Path(static))

        def register_asset(path: str) -> None:
            from multinotes.ui import check_asset

            try:
                assets.append(check_asset(path, record.static))
            except ValueError as exc:
                raise PluginError(str(exc), plugin=name) from exc

        def register_event(event_type: EventType[Any]) -> None:
            from multinotes.domain_events import EventType

            if not isinstance(event_type, EventType):
                raise PluginError("register_events takes EventType objects", plugin=name)
            events.append(event_type)

        def register_migrations(versions: Path, *, metadata: MetaData | None = None) -> None:
            if migrations:
                raise PluginError("register_migrations may register one folder", plugin=name)
            try:
                check_plugin_revisions(name, Path(versions))
            except ValueError as exc:
                raise PluginError(f"its migrations: {exc}", plugin=name) from exc
            migrations.append(PluginMigrations(name, Path(versions), metadata))

        def register_user_data(export: UserDataExport) -> None:
            from multinotes.privacy.plugin_data import UserDataExport

            if not isinstance(export, UserDataExport):
                raise PluginError("register_user_data takes UserDataExport objects", plugin=name)
            if any(e.name == export.name for e in user_data):
                raise PluginError(f"two user data files named {export.name!r}", plugin=name)
            user_data.append(export)

        def register_settings(model: type[BaseModel]) -> None:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise PluginError("register_settings takes a pydantic model class", plugin=name)
            models.append(model)

        try:
            self._call_one(name, "register_routes", register=register_route)
            self._call_one(name, "register_tasks", register=register_task)
            self._call_one(name, "register_templates", register=register_templates)
            self._call_one(name, "register_assets", register=register_asset)
            self._call_one(name, "register_settings", register=register_settings)
            self._call_one(name, "register_events", register=register_event)
            self._call_one(name, "register_migrations", register=register_migrations)
            self._call_one(name, "register_user_data", register=register_user_data)
            if len(models) > 1:
                raise PluginError("register_settings may register one model", plugin=name)
            record.settings_model = models[0] if models else None
            default = self._call_one(name, "default_enabled", mode=self.mode)
            record.default_enabled = True if default is None else bool(default)
            record.enabled = record.default_enabled
        except Exception as exc:
            self._fail(record, exc, "failed to register")
            return
        for task in tasks:
            if task.name in self.tasks:
                other = self.tasks[task.name].plugin
                error = PluginError(
                    f"Plugins {other!r} and {name!r} both register the task {task.name!r}.",
                    plugin=name,
                )
                self._fail(record, error, "failed to register")
                return
        from multinotes.domain_events import CORE_EVENTS

        taken = {event.name: "the core" for event in CORE_EVENTS}
        taken.update({n: f"plugin {e[0]!r}" for n, e in self.event_types.items()})
        for event_type in events:
            owner = taken.get(event_type.name)
            taken[event_type.name] = "it"
            if owner is not None:
                error = PluginError(
                    f"Plugin {name!r} registers the event {event_type.name!r}, which {owner} "
                    "already defines.",
                    plugin=name,
                )
                self._fail(record, error, "failed to register")
                return
        for event_type in events:
            self.event_types[event_type.name] = (name, event_type)
        for task in tasks:
            self.tasks[task.name] = task
        self.routes.extend(routes)
        record.assets = assets
        record.migrations = migrations[0] if migrations else None
        record.user_data = user_data

    # -- state ---------------------------------------------------------------------------------

    def loaded(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status == "loaded"]

    def migrations(self) -> list[PluginMigrations]:
        """The revisions of every loaded plugin, enabled or not: switching a plugin on at run
        time must find its tables there."""
        return [r.migrations for r in self.loaded() if r.migrations is not None]

    def user_data_exports(self) -> list[tuple[str, UserDataExport]]:
        """``(plugin, file)`` for what every loaded plugin adds to a user's data export,
        enabled or not: a switched-off plugin's rows are still the user's."""
        return [(r.name, export) for r in self.loaded() for export in r.user_data]

    def is_enabled(self, plugin: str) -> bool:
        record = self.records.get(plugin)
        return record is not None and record.active

    def get(self, plugin: str) -> PluginRecord:
        record = self.records.get(plugin)
        if record is None:
            from multinotes.errors import NotFound

            raise NotFound(f"No plugin named {plugin!r}.")
        return record

    def apply_state(self, stored: dict[str, bool]) -> None:
        """Apply enabled flags (plugin name → enabled; missing names take their default) and
        rebuild the registries. Raises ``PluginError`` (changing nothing) on a duplicate id."""
        wanted = {r.name for r in self.loaded() if stored.get(r.name, r.default_enabled)}
        registries = self._collect_registries(wanted)
        for record in self.loaded():
            record.enabled = record.name in wanted
        self.registries = registries
        for listener in list(self._listeners):
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` runs after every ``apply_state`` (e.g. to drop caches)."""
        self._listeners.append(listener)

    def _build_registries(self) -> None:
        """The registries of every loaded plugin, enabled or not (two plugins with one id clash
        whichever is switched on). Of two plugins registering the same id, the one later in name
        order is marked failed with an error naming both; the first keeps working."""
        while True:
            try:
                self.registries = self._collect_registries({r.name for r in self.loaded()})
                return
            except PluginError as exc:
                assert exc.plugin is not None
                self._fail(self.records[exc.plugin], exc, "failed to register")

    def _collect_registries(self, plugins: set[str]) -> Registries:
        registries = Registries()
        for hook, attr in CAPABILITIES.items():
            target: dict[str, Registered[Any]] = getattr(registries, attr)
            for plugin in sorted(plugins):
                record = self.records[plugin]
                if record.status != "loaded":
                    continue

                def register(
                    obj: Any,
                    _plugin: str = plugin,
                    _target: dict[str, Registered[Any]] = target,
                    _kind: str = attr,
                ) -> None:
                    if _kind in UI_TYPES and not isinstance(obj, UI_TYPES[_kind]):
                        raise PluginError(
                            f"register takes a multinotes.plugin.{UI_TYPES[_kind].__name__}, "
                            f"got {type(obj).__name__}",
                            plugin=_plugin,
                        )
                    obj_id = getattr(obj, "id", None)
                    if not isinstance(obj_id, str) or not obj_id:
                        raise PluginError(f"{_kind} object without a string id", plugin=_plugin)
                    if obj_id in _target and _target[obj_id][0] != _plugin:
                        raise PluginError(
                            f"Plugins {_target[obj_id][0]!r} and {_plugin!r} both register the "
                            f"{_kind[:-1] if _kind.endswith('s') else _kind} id {obj_id!r}.",
                            plugin=_plugin,
                        )
                    _target[obj_id] = Registered(_plugin, obj)

                try:
                    self._call_one(plugin, hook, register=register)
                except PluginError as exc:
                    if "both register" in exc.message:
                        raise
                    self._fail(record, exc, "failed to register")
                except Exception as exc:
                    self._fail(record, exc, "failed to register")
        return registries


def _short_repr(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(args: tuple[Any, ...], kw: dict[str, Any]) -> str:
    """What a ``register`` call added: an object's id, a route's method and path, a task's
    name, a settings model's name, a template folder."""
    if not args:
        return ", ".join(f"{name}={value}" for name, value in kw.items() if value is not None)
    first = args[0]
    if isinstance(first, type):
        return first.__name__
    if isinstance(first, str):
        words = [a for a in args[:2] if isinstance(a, str)]
        return " ".join(words)
    obj_id = getattr(first, "id", None)
    return obj_id if isinstance(obj_id, str) else _short_repr(first, 80)
