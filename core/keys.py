"""Typed keys for everything the app keeps (``app[DB]``, never a module global)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from limits.aio.strategies import RateLimiter
    from prometheus_client import CollectorRegistry

    from multinotes.bus import Bus
    from multinotes.db import Database
    from multinotes.metrics import Metrics
    from multinotes.plugin_host import PluginHost
    from multinotes.plugin_settings import PluginSettingsStore
    from multinotes.ratelimit import RateLimits
    from multinotes.secretbox import SecretBox
    from multinotes.settings import Settings
    from multinotes.tasks import TaskQueue

SETTINGS = web.AppKey("settings", "Settings")
DB = web.AppKey("db", "Database")
REDIS = web.AppKey("redis", Any)  # redis.asyncio.Redis in production, None embedded
BUS = web.AppKey("bus", "Bus")
SECRETS = web.AppKey("secrets", "SecretBox")
PLUGINS = web.AppKey("plugins", "PluginHost")
PLUGIN_SETTINGS = web.AppKey("plugin_settings", "PluginSettingsStore")
TASKS = web.AppKey("tasks", "TaskQueue")
RATE_LIMITS = web.AppKey("rate_limits", "RateLimits")
METRICS = web.AppKey("metrics", "Metrics")

__all__ = [
    "BUS", "DB", "METRICS", "PLUGINS", "PLUGIN_SETTINGS", "RATE_LIMITS", "REDIS", "SECRETS",
    "SETTINGS", "TASKS",
]
if TYPE_CHECKING:
    _unused = (RateLimiter, CollectorRegistry, Bus, Database, Metrics, PluginHost,
               PluginSettingsStore, RateLimits, SecretBox, Settings, TaskQueue)
