"""A plugin that breaks startup does not stop the app: it is marked failed with its error and
the rest keep serving. Operators can keep a plugin from even being imported
(``MULTINOTES_DISABLE_PLUGINS``) and switch one off from the CLI while it is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from multinotes import hookimpl
from multinotes.app import create_app
from multinotes.keys import PLUGINS
from multinotes.providers import StaticProvider
from multinotes.testing import ApiClient, app_client
from tests.conftest import BUILTIN, worker_for
from tests.support.dists import ONE_OF_EACH_KIND, on_path, write_dist

MISSPELLED_HOOK = """
    from multinotes import hookimpl
    from multinotes.providers import StaticProvider

    @hookimpl
    def register_provider(register):  # missing "s"
        register(StaticProvider("typo", "Typo", []))
"""
SHARED_ID_PROVIDER = """
    from multinotes import hookimpl
    from multinotes.providers import StaticProvider

    @hookimpl
    def register_providers(register):
        register(StaticProvider("shared-id", "Same id", []))
"""
BROKEN = {
    "mn_typo": MISSPELLED_HOOK,
    "mn_boom": "import does_not_exist\n",
    "mn_dupe_a": SHARED_ID_PROVIDER,
    "mn_dupe_b": SHARED_ID_PROVIDER,
    "mn_test_routes": ONE_OF_EACH_KIND["mn_test_routes"],
}
ENTRY_POINTS = {
    "typo": "mn_typo",
    "boom": "mn_boom",
    "dupe_a": "mn_dupe_a",
    "dupe_b": "mn_dupe_b",
    "routes": "mn_test_routes",
}


def install_broken_plugins(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_dist(root, "mn-broken-set", BROKEN, ENTRY_POINTS)


@pytest.fixture
def plugins(tmp_path: Path) -> Iterator[object]:
    """The built-in plugins plus the broken set, installed as distributions."""
    site = tmp_path / "site"
    install_broken_plugins(site)
    with on_path(site):
        yield BUILTIN


def by_name(listed: list[dict]) -> dict[str, dict]:
    return {p["name"]: p for p in listed}


async def test_broken_plugins_are_marked_failed_and_the_app_serves(admin: ApiClient):
    listed = by_name(await admin.get_json("/api/admin/plugins"))

    typo = listed["typo"]
    assert (typo["status"], typo["enabled"]) == ("failed", False)
    assert "unknown hook 'register_provider'" in typo["error"]

    boom = listed["boom"]
    assert (boom["status"], boom["enabled"]) == ("failed", False)
    assert "ModuleNotFoundError" in boom["error"] and "does_not_exist" in boom["error"]

    # Of two plugins registering one id, the second is failed with an error naming both;
    # the first keeps the id and works.
    dupe_b = listed["dupe_b"]
    assert dupe_b["status"] == "failed"
    assert "'dupe_a'" in dupe_b["error"] and "'dupe_b'" in dupe_b["error"]
    assert "'shared-id'" in dupe_b["error"]
    assert listed["dupe_a"]["status"] == "loaded"

    # Everyone else loaded and works.
    assert listed["demo"]["status"] == listed["routes"]["status"] == "loaded"
    assert await admin.get_json("/api/plugins/routes/ping") == {"pong": True}


async def test_a_failed_plugin_cannot_be_enabled(admin: ApiClient):
    response = await admin.patch("/api/admin/plugins/typo", {"enabled": True})
    assert response.status == 409
    body = await response.json()
    assert body["error"]["code"] == "plugin_failed"
    assert "register_provider" in body["error"]["message"]


async def test_the_console_shows_each_failure_with_its_error(admin: ApiClient):
    response = await admin.get("/admin/plugins")
    assert response.status == 200
    page = await response.text()
    assert "unknown hook &#39;register_provider&#39;" in page
    assert "does_not_exist" in page
    assert "both register the provider id &#39;shared-id&#39;" in page


async def test_only_loaded_plugins_contribute(admin: ApiClient):
    providers = admin.app[PLUGINS].registries.providers
    assert providers["shared-id"][0] == "dupe_a"
    assert "typo" not in providers


async def test_the_kill_switch_keeps_a_plugin_from_being_imported(make_settings, plugins):
    app = create_app(make_settings(disable_plugins="routes , boom"), plugins=None)
    async with app_client(app) as admin, worker_for(app):
        await admin.register_admin()
        listed = by_name(await admin.get_json("/api/admin/plugins"))
        for name in ("routes", "boom"):
            assert listed[name]["status"] == "blocked"
            assert listed[name]["enabled"] is False
            assert "MULTINOTES_DISABLE_PLUGINS" in listed[name]["error"]
        assert "mn_test_routes" not in sys.modules
        assert (await admin.get("/api/plugins/routes/ping")).status == 404
        refused = await admin.patch("/api/admin/plugins/routes", {"enabled": True})
        assert refused.status == 409

        page = await (await admin.get("/admin/plugins")).text()
        assert "blocked" in page and "MULTINOTES_DISABLE_PLUGINS" in page


def multinotes_cli(site: Path, data: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "multinotes.cli", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=site,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(site),
            "MULTINOTES_LOG_LEVEL": "ERROR",
            **env,
        },
    )


def test_the_cli_lists_and_disables_plugins_while_one_is_broken(tmp_path: Path):
    site, data = tmp_path / "site", tmp_path / "data"
    install_broken_plugins(site)

    disabled = multinotes_cli(site, data, "plugins", "disable", "typo")
    assert disabled.returncode == 0, disabled.stderr
    assert "Plugin typo disabled." in disabled.stdout

    listed = multinotes_cli(site, data, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = by_name(json.loads(listed.stdout))
    assert rows["typo"]["status"] == "failed"
    assert rows["routes"]["status"] == "loaded" and rows["routes"]["enabled"] is True

    # Once fixed, the plugin loads but stays off until someone enables it.
    (site / "mn_typo.py").write_text(
        textwrap.dedent(MISSPELLED_HOOK).replace(
            "def register_provider(", "def register_providers("
        )
    )
    rows = by_name(json.loads(multinotes_cli(site, data, "plugins", "list", "--json").stdout))
    assert (rows["typo"]["status"], rows["typo"]["enabled"]) == ("loaded", False)


def test_the_cli_honours_the_kill_switch(tmp_path: Path):
    site, data = tmp_path / "site", tmp_path / "data"
    install_broken_plugins(site)
    listed = multinotes_cli(site, data, "plugins", "list", MULTINOTES_DISABLE_PLUGINS="typo,dupe_b")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line[:1].strip()}
    assert lines["typo"].split()[1] == "blocked"
    assert lines["dupe_b"].split()[1] == "blocked"
    # With dupe_b never loaded, dupe_a has its id to itself.
    assert lines["dupe_a"].split()[1] == "enabled"


class Pinger:
    @hookimpl
    def register_routes(self, register: Any) -> None:
        async def ping(request: web.Request) -> web.Response:
            return web.json_response({"pong": True})

        register("GET", "/api/plugins/pinger/ping", ping, access="public")


class FailsAtStartup:
    """Registers a provider and a route, then raises in its startup hook."""

    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(StaticProvider("doomed", "Doomed", []))

    @hookimpl
    def register_routes(self, register: Any) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"hello": True})

        register("GET", "/api/plugins/doomed/hello", hello, access="public")

    @hookimpl
    def startup(self, app: web.Application) -> None:
        raise RuntimeError("cannot reach the licence server")


async def test_a_plugin_that_fails_in_its_startup_hook_is_left_out(make_settings):
    app = create_app(
        make_settings(),
        plugins=[("doomed", FailsAtStartup()), ("pinger", Pinger())],
    )
    async with app_client(app) as admin, worker_for(app):
        await admin.register_admin()
        listed = by_name(await admin.get_json("/api/admin/plugins"))
        assert listed["doomed"]["status"] == "failed"
        assert "cannot reach the licence server" in listed["doomed"]["error"]
        assert "doomed" not in admin.app[PLUGINS].registries.providers
        assert (await admin.get("/api/plugins/doomed/hello")).status == 404
        assert await admin.get_json("/api/plugins/pinger/ping") == {"pong": True}
