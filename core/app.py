"""The app factory: ``create_app(settings)`` composed of ``setup_*`` functions.

Each resource lives in its own ``cleanup_ctx`` generator (its cleanup runs only if its startup
finished); every piece of state is under a ``web.AppKey``. Nothing is global, so a test builds an
app with exactly the settings and plugins it wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import warnings
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning

from multinotes import __version__, outgoing, plugin_control, ui
from multinotes.abuse import watch as abuse_watch
from multinotes.bus import Bus, LocalBus, RedisBus
from multinotes.db import Database, create_engine
from multinotes.error_tracking import setup_error_tracking
from multinotes.errors import ConfigError
from multinotes.events import setup_events
from multinotes.files.service import setup_files
from multinotes.http import middleware as mw
from multinotes.http.endpoint import Access, EndpointSpec, check_routes, spec_of
from multinotes.http.unavailable import redis_unavailable
from multinotes.identity import passwords
from multinotes.identity.actor import current_actor
from multinotes.identity.oauth import setup_oauth
from multinotes.keys import (
    API_KEY_CACHE,
    BUS,
    CATALOG,
    DB,
    METRICS,
    PLUGIN_SETTINGS,
    PLUGINS,
    RATE_LIMITS,
    REDIS,
    ROLE,
    SECRETS,
    SESSION_CACHE,
    SETTINGS,
    TASKS,
)
from multinotes.logs import configure_logging
from multinotes.metrics import Metrics
from multinotes.plugin_host import PluginHost, PluginSource, RouteDef
from multinotes.plugin_settings import PluginSettingsStore
from multinotes.ratelimit import RateLimits, make_storage
from multinotes.search import setup_search
from multinotes.secretbox import SecretBox
from multinotes.settings import Settings
from multinotes.sharing.audit_trail import setup_audit_trail
from multinotes.sharing.notifier import setup_notifications
from multinotes.storage.lifecycle import setup_storage
from multinotes.tasks import (
    IN_PROCESS_TASKS_GRACE_SECONDS,
    TaskQueue,
    embedded_scheduler,
    finish_in_process_tasks,
    make_broker,
)
from multinotes.webui import STATIC_DIR, TEMPLATES_DIR

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    plugins: Iterable[PluginSource] | None = None,
    role: str = "web",
) -> web.Application:
    """Build the application.

    :param plugins: exactly these ``(name, module)`` plugins instead of the entry points.
    :param role: ``"web"`` serves HTTP; ``"worker"``/``"scheduler"`` only start resources.
    """
    settings = settings or Settings()
    validate_settings(settings)
    passwords.use_cost(settings.password_hash_cost)
    outgoing.install(outgoing.OutgoingPolicy.from_settings(settings))
    configure_logging(settings.log_level, settings.log_format)
    app = web.Application(
        middlewares=[
            mw.request_context,
            mw.errors,
            redis_unavailable,
            mw.make_proxy_middleware(settings),
            mw.make_host_middleware(settings),
            mw.make_cors_middleware(settings),
            mw.make_size_middleware(settings),
            # Counts an API key's networks and its 403 / 429 answers (abuse detection).
            abuse_watch.key_middleware,
            mw.auth,
            # Refuses the generation requests of an account abuse detection throttled.
            abuse_watch.throttle_middleware,
            mw.rate_limit,
        ],
        client_max_size=settings.max_request_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[SECRETS] = SecretBox(settings.master_keys())
    app[ROLE] = role
    setup_database(app)
    setup_redis(app)
    setup_bus(app)
    setup_api_key_cache(app)
    setup_plugins(app, plugins)
    setup_events(app)
    setup_workspace(app)
    setup_tasks(app)
    setup_rate_limits(app)
    setup_storage(app)
    setup_files(app)
    setup_notifications(app)
    setup_audit_trail(app)
    setup_search(app)
    setup_templates(app)
    setup_oauth(app)
    setup_routes(app)
    setup_plugin_lifecycle(app)
    setup_error_tracking(app)
    # Last registered, so first torn down: every resource is still there while answers settle.
    app.cleanup_ctx.append(running_generations)
    app.on_response_prepare.append(mw.security_headers)
    app.on_cleanup.append(forget_middleware_chains)
    return app


async def forget_middleware_chains(app: web.Application) -> None:
    """aiohttp memoises each handler's middleware chain per application in a module-level LRU
    cache of 1,024 entries keyed by the app, so a stopped app stayed reachable with all its
    routes, caches and plugins. One app per process costs nothing; a process that makes many
    (a test suite, a plugin's own included) kept every one: a test worker passed two million
    objects within 160 tests, and its full garbage collections froze it for seconds. Live
    apps only rebuild their chains on their next request."""
    from aiohttp import web_app

    cache = getattr(web_app, "_cached_build_middleware", None)  # private: may go in aiohttp 4
    if cache is not None:
        cache.cache_clear()


def validate_settings(settings: Settings) -> None:
    from multinotes.readiness import fatal_problems

    problems = fatal_problems(settings)
    if problems:
        raise ConfigError("Refusing to start in production: " + " ".join(problems))
    if settings.is_production:
        if settings.is_sqlite:
            raise ConfigError("Production mode needs MULTINOTES_DATABASE_URL (MySQL or MariaDB).")
        if not settings.redis_url:
            raise ConfigError("Production mode needs MULTINOTES_REDIS_URL.")


# -- resources ----------------------------------------------------------------------------------


def setup_database(app: web.Application) -> None:
    async def database(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(create_engine(settings.effective_database_url))
        if not settings.is_production:
            from multinotes.migrations import upgrade

            # The core's revisions and those of this app's plugins (enabled or not).
            await upgrade(db.engine, plugins=app[PLUGINS].migrations())
        app[DB] = db
        yield
        await db.close()

    app.cleanup_ctx.append(database)


def setup_redis(app: web.Application) -> None:
    async def redis_client(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.is_production:
            app[REDIS] = None
            yield
            return
        import redis.asyncio as aioredis

        from multinotes.tasks import redis_options

        # Short timeouts: a dead Redis fails a request fast (503), it does not hang it.
        if settings.redis_url is None:  # refused at startup already (create_app)
            raise ConfigError("Production mode needs MULTINOTES_REDIS_URL.")
        client = aioredis.from_url(
            settings.redis_url, decode_responses=True, **redis_options(settings)
        )
        app[REDIS] = client
        yield
        await client.aclose()

    app.cleanup_ctx.append(redis_client)


def setup_bus(app: web.Application) -> None:
    async def bus(app: web.Application) -> AsyncIterator[None]:
        instance: Bus = (
            RedisBus(app[REDIS], app[SETTINGS].redis_prefix)
            if app[REDIS] is not None
            else LocalBus()
        )
        instance.subscribe(
            plugin_control.CHANNEL,
            lambda message: plugin_control.on_bus_message(app, message),
        )
        from multinotes.chat import pipeline

        instance.subscribe(
            pipeline.CANCEL_CHANNEL, lambda message: pipeline.on_cancel_message(app, message)
        )
        await instance.start()
        app[BUS] = instance
        yield
        await instance.stop()

    app.cleanup_ctx.append(bus)


def setup_api_key_cache(app: web.Application) -> None:
    """API keys and session cookies resolved from memory, dropped when their rows change
    (``identity.key_cache``)."""

    async def api_key_cache(app: web.Application) -> AsyncIterator[None]:
        from multinotes.identity import key_cache

        cache, sessions = key_cache.ApiKeyCache(), key_cache.SessionCache()
        key_cache.install(app[DB], cache, app[BUS], sessions)
        app[API_KEY_CACHE] = cache
        app[SESSION_CACHE] = sessions
        yield

    app.cleanup_ctx.append(api_key_cache)


def setup_plugins(app: web.Application, plugins: Iterable[PluginSource] | None) -> None:
    settings = app[SETTINGS]
    host = PluginHost(
        mode=settings.mode, blocked=settings.disable_plugins, trace=settings.plugins_trace
    )
    if plugins is None:
        host.load_entrypoints()
    else:
        host.load(plugins)
    app[PLUGINS] = host

    async def plugin_state(app: web.Application) -> AsyncIterator[None]:
        app[PLUGIN_SETTINGS] = PluginSettingsStore(app[DB], app[SECRETS], settings, host)
        await plugin_control.reload_state(app, force=True)
        if app[ROLE] not in ("web", "worker"):
            yield
            return
        # A safety net under the bus: converge even if a message was lost, or was published by
        # a CLI command in another process while in embedded mode (no shared bus there).
        poller = asyncio.create_task(_poll_plugin_state(app), name="plugin-state-poll")
        yield
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller

    app.cleanup_ctx.append(plugin_state)


async def _poll_plugin_state(app: web.Application) -> None:
    while True:
        await asyncio.sleep(app[SETTINGS].plugin_refresh_seconds)
        try:
            await plugin_control.reload_state(app)
        except Exception:
            log.exception("plugin_state_poll_failed")


def setup_workspace(app: web.Application) -> None:
    """The model catalog and the registry of answers streaming in this process."""
    from multinotes.catalog import Catalog
    from multinotes.chat.partials import PARTIALS, PartialSaver
    from multinotes.chat.pipeline import RUNNING, RunningGenerations, note_stopping

    app[CATALOG] = Catalog(app)
    app[RUNNING] = RunningGenerations()
    app[PARTIALS] = PartialSaver(app)
    app.on_shutdown.append(note_stopping)


async def running_generations(app: web.Application) -> AsyncIterator[None]:
    """Answers belong to the server, not to requests: stop and settle what still streams
    before the database closes. At cleanup, after the web server's graceful shutdown let open
    streams finish (``MULTINOTES_SHUTDOWN_TIMEOUT``); on_shutdown comes before that drain and
    would cut every answer at SIGTERM."""
    from multinotes.chat.partials import PARTIALS
    from multinotes.chat.pipeline import stop_running

    yield
    await stop_running(app)
    await app[PARTIALS].close()


def setup_plugin_lifecycle(app: web.Application) -> None:
    """Plugins' ``startup``/``shutdown`` hooks, after every core resource is ready."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        host = app[PLUGINS]
        failed = False
        for record in host.loaded():
            if not record.enabled:
                continue
            try:
                result = host._call_one(record.name, "startup", app=app)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                host._fail(record, exc, "failed at startup")
                failed = True
        if failed:  # what the failed plugins registered goes with them
            host.apply_state({r.name: r.enabled for r in host.loaded()})
        yield
        for record in host.loaded():
            try:
                result = host._call_one(record.name, "shutdown", app=app)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("plugin_shutdown_failed", plugin=record.name)

    app.cleanup_ctx.append(lifecycle)


def setup_tasks(app: web.Application) -> None:
    settings = app[SETTINGS]
    broker = make_broker(settings)
    queue = TaskQueue(app, broker)
    host = app[PLUGINS]
    queue.gate(host.is_enabled)
    from multinotes.core_tasks import core_tasks

    for task in [*core_tasks(), *host.tasks.values()]:
        queue.register(task)
    app[TASKS] = queue

    async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
        # Embedded: the in-memory broker runs tasks in this process and the scheduler runs
        # beside the web server. Production: `multinotes worker` and `multinotes scheduler`.
        await broker.startup()
        in_process = not settings.is_production and app[ROLE] == "web"
        scheduling = in_process and settings.embedded_scheduler
        scheduler: Any = embedded_scheduler(queue) if scheduling else contextlib.nullcontext()
        async with scheduler:
            yield
        await finish_in_process_tasks(broker, IN_PROCESS_TASKS_GRACE_SECONDS)
        try:
            await asyncio.wait_for(broker.shutdown(), timeout=10)
        except TimeoutError:  # never let a stuck broker connection block process exit
            log.warning("broker_shutdown_timed_out")

    app.cleanup_ctx.append(broker_ctx)


def setup_rate_limits(app: web.Application) -> None:
    async def limits_ctx(app: web.Application) -> AsyncIterator[None]:
        app[RATE_LIMITS] = RateLimits(app[SETTINGS], make_storage(app[SETTINGS]))
        yield

    app.cleanup_ctx.append(limits_ctx)


def setup_templates(app: web.Application) -> None:
    # aiohttp-jinja2 keeps its per-request context under a plain string key; that is its
    # business, not a mistake of ours worth a warning in every process's log.
    warnings.filterwarnings("ignore", category=NotAppKeyWarning, module="aiohttp_jinja2")
    host = app[PLUGINS]
    # Enabled plugins' folders come first so a plugin can override any core template;
    # "default:<name>" is always the core's (multinotes.ui).
    env = aiohttp_jinja2.setup(
        app,
        loader=ui.template_loader(host, TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        context_processors=[_template_context],
    )
    env.globals["app_version"] = __version__
    env.globals["static"] = _static_url(app)
    ui.forget_templates_on_change(host, env)


def _static_url(app: web.Application) -> Any:
    def static(path: str) -> str:
        # append_version adds a content hash, so browsers may cache static files for long.
        return str(app.router["static"].url_for(filename=path))

    return static


async def _template_context(request: web.Request) -> dict[str, Any]:
    actor = current_actor(request)
    return {
        "actor": actor,
        "csrf_token": actor.csrf_token if actor else "",
        "settings": request.app[SETTINGS],
        "request": request,
        # What enabled plugins add to the page: nav links, actions, assets (multinotes.ui).
        "ui": ui.PageExtensions(request),
    }


def setup_routes(app: web.Application) -> None:
    from multinotes import features

    features.setup(app)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    ui.setup_plugin_static(app)
    host = app[PLUGINS]
    for route in host.routes:
        app.router.add_route(route.method, route.path, _gated(app, route), name=route.name)
    check_routes(app)


def _gated(app: web.Application, route: RouteDef) -> Any:
    """A plugin route answers 404 while its plugin is disabled; access is checked as declared."""
    from multinotes.errors import NotFound
    from multinotes.identity.actor import require_admin, require_user

    async def handler(request: web.Request) -> web.StreamResponse:
        if not app[PLUGINS].is_enabled(route.plugin):
            raise NotFound()
        if route.access == "user":
            require_user(request)
        elif route.access == "admin":
            require_admin(request)
        result: web.StreamResponse = await route.handler(request)
        return result

    inner = spec_of(route.handler)
    handler.__endpoint__ = inner or EndpointSpec(  # type: ignore[attr-defined]
        access=cast(Access, route.access),  # checked against ACCESS_LEVELS when registered
        # A plugin's page (HTML, outside /api/) stays out of the OpenAPI document, as the
        # core's pages do; its /api/ routes are listed there.
        kind="raw" if route.path.startswith("/api/") else "page",
        summary=f"Route of plugin {route.plugin}",
        tags=[route.plugin],
    )
    return handler
