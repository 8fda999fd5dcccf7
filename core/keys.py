"""Typed keys for everything the app keeps (``app[DB]``, never a module global)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from multinotes.bus import Bus
    from multinotes.catalog import Catalog
    from multinotes.db import Database
    from multinotes.flags.cache import FlagCache
    from multinotes.identity.key_cache import ApiKeyCache, SessionCache
    from multinotes.metrics import Metrics
    from multinotes.plugin_host import PluginHost
    from multinotes.plugin_settings import PluginSettingsStore
    from multinotes.ratelimit import RateLimits
    from multinotes.secretbox import SecretBox
    from multinotes.settings import Settings
    from multinotes.tasks import TaskQueue

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
#: What this process is for: "web", "worker" or "scheduler".
ROLE: web.AppKey[str] = web.AppKey("role", str)
DB: web.AppKey[Database] = web.AppKey("db")
#: ``redis.asyncio.Redis`` in production; None in embedded mode.
REDIS: web.AppKey[Any] = web.AppKey("redis")
BUS: web.AppKey[Bus] = web.AppKey("bus")
API_KEY_CACHE: web.AppKey[ApiKeyCache] = web.AppKey("api_key_cache")
SESSION_CACHE: web.AppKey[SessionCache] = web.AppKey("session_cache")
SECRETS: web.AppKey[SecretBox] = web.AppKey("secrets")
PLUGINS: web.AppKey[PluginHost] = web.AppKey("plugins")
PLUGIN_SETTINGS: web.AppKey[PluginSettingsStore] = web.AppKey("plugin_settings")
TASKS: web.AppKey[TaskQueue] = web.AppKey("tasks")
RATE_LIMITS: web.AppKey[RateLimits] = web.AppKey("rate_limits")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog")
#: Feature flags and running experiments, as this process knows them (``multinotes.flags``).
FLAGS: web.AppKey[FlagCache] = web.AppKey("flags")
