"""Tracing aids for plugin authors: ``MULTINOTES_PLUGINS_TRACE`` logs every hook call, and the
console API shows which hooks a plugin implements."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from multinotes.logs import configure_logging
from multinotes.plugin import (
    PluginError,
    ProviderRegistrar,
    RouteRegistrar,
    SettingsRegistrar,
    StaticProvider,
    hookimpl,
)
from multinotes.plugin_host import PluginHost
from multinotes.testing import plugin_client


class TracedSettings(BaseModel):
    level: int = 1


class Traced:
    @hookimpl
    def register_providers(self, register: ProviderRegistrar) -> None:
        register(StaticProvider("traced", "Traced", []))

    @hookimpl
    def register_settings(self, register: SettingsRegistrar) -> None:
        register(TracedSettings)

    @hookimpl
    def default_enabled(self, mode: str) -> bool:
        return True


class Broken:
    @hookimpl
    def register_routes(self, register: RouteRegistrar) -> None:
        raise PluginError("no routes today", plugin="broken")


def _calls(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "plugin_hook_call"]


@pytest.mark.parametrize("trace", [True, False])
def test_trace_logs_every_hook_call_with_plugin_duration_and_result(trace):
    configure_logging("INFO")  # as an app would; an earlier test's app may have set WARNING
    with structlog.testing.capture_logs() as logs:
        host = PluginHost(trace=trace)
        host.load([("traced", Traced()), ("broken", Broken())])
    calls = _calls(logs)
    if not trace:
        assert calls == []
        return
    by_hook = {(c["plugin"], c["hook"]): c for c in calls}
    assert by_hook[("traced", "register_providers")]["registered"] == ["traced"]
    assert by_hook[("traced", "register_settings")]["registered"] == ["TracedSettings"]
    assert by_hook[("traced", "default_enabled")]["result"] == "True"
    assert by_hook[("broken", "register_routes")]["error"] == "PluginError: no routes today"
    assert all(c["duration_ms"] >= 0 for c in calls)
    json.dumps(calls)  # fit for the JSON log


async def test_the_trace_setting_reaches_the_app(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MULTINOTES_PLUGINS_TRACE", "1")
    from multinotes.settings import Settings

    assert Settings(_env_file=None).plugins_trace is True
    async with plugin_client(
        tmp_path, [("traced", Traced())], plugins_trace=True, log_level="INFO"
    ) as api:
        await api.register_admin()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "{" in line[:1]]
    hooks = {c["hook"] for c in _calls(lines) if c["plugin"] == "traced"}
    assert {"register_providers", "register_settings", "default_enabled"} <= hooks


async def test_admin_plugin_detail_lists_the_hooks_it_implements(tmp_path):
    async with plugin_client(tmp_path, [("traced", Traced()), ("broken", Broken())]) as api:
        await api.register_admin()
        detail = await api.get_json("/api/admin/plugins/traced")
        assert detail["hooks"] == ["default_enabled", "register_providers", "register_settings"]
        failed = await api.get_json("/api/admin/plugins/broken")
        assert (failed["status"], failed["hooks"]) == ("failed", ["register_routes"])

        api.client.session.cookie_jar.clear()
        await api.register_and_login("someone@example.com")
        response = await api.get("/api/admin/plugins/traced")
        assert response.status == 403
