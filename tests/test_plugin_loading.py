"""Plugins are found through the `multinotes` entry-point group, loaded, and contained."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from multinotes.plugin_host import PluginHost
from multinotes.settings import Settings
from multinotes.testing import embedded_settings
from tests.support.dists import ONE_OF_EACH_KIND, on_path, write_dist

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_plugins_load_like_third_party_ones():
    host = PluginHost()
    host.load_entrypoints()
    demo, markdown = host.records["demo"], host.records["markdown"]
    assert (demo.status, demo.kinds, demo.distribution) == ("loaded", ["provider"], "multinotes")
    assert (markdown.status, markdown.kinds) == ("loaded", ["exporter"])
    assert "demo" in host.registries.providers
    assert "markdown" in host.registries.exporters


def test_a_plugin_of_each_kind_loads_through_entry_points(tmp_path):
    write_dist(
        tmp_path,
        "mn-test-kinds",
        ONE_OF_EACH_KIND,
        {name.removeprefix("mn_test_"): name for name in ONE_OF_EACH_KIND},
    )
    with on_path(tmp_path):
        host = PluginHost()
        host.load_entrypoints()
    kinds = {
        name: host.records[name].kinds
        for name in ("provider", "exporter", "integration", "billing", "routes")
    }
    assert kinds == {
        "provider": ["provider"],
        "exporter": ["exporter"],
        "integration": ["integration"],
        "billing": ["billing"],
        "routes": [],
    }
    assert host.records["provider"].distribution == "mn-test-kinds"
    assert host.registries.providers["testprov"][0] == "provider"
    assert host.registries.exporters["plaintext"][0] == "exporter"
    assert host.registries.integrations["recorder"][0] == "integration"
    assert host.registries.billing["free"][0] == "billing"
    # (Built-in plugins, such as webhooks, register routes of their own.)
    ours = [(r.plugin, r.path) for r in host.routes if r.plugin in kinds]
    assert ours == [("routes", "/api/plugins/routes/ping")]


def test_a_plugin_that_fails_to_import_is_marked_failed_and_the_rest_load(tmp_path):
    write_dist(
        tmp_path,
        "mn-broken",
        {"mn_broken": "raise RuntimeError('boom at import')\n"},
        {"broken": "mn_broken"},
    )
    with on_path(tmp_path):
        host = PluginHost()
        host.load_entrypoints()
    broken = host.records["broken"]
    assert broken.status == "failed" and not broken.enabled
    assert "RuntimeError: boom at import" in (broken.error or "")
    assert host.records["demo"].status == "loaded"


def test_a_plugin_whose_register_hook_raises_is_contained(tmp_path):
    source = """
        from multinotes import hookimpl

        @hookimpl
        def register_providers(register):
            raise ValueError("no providers today")
    """
    write_dist(tmp_path, "mn-raises", {"mn_raises": source}, {"raises": "mn_raises"})
    with on_path(tmp_path):
        host = PluginHost()
        host.load_entrypoints()
    assert host.records["raises"].status == "failed"
    assert "no providers today" in (host.records["raises"].error or "")
    assert "demo" in host.registries.providers


def test_failed_plugin_is_reported_and_the_app_still_serves(tmp_path):
    write_dist(
        tmp_path, "mn-broken", {"mn_broken2": "import does_not_exist\n"}, {"broken2": "mn_broken2"}
    )
    env_path = f"{tmp_path}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "multinotes.cli",
            "plugins",
            "list",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": env_path, "MULTINOTES_LOG_LEVEL": "ERROR"},
    )
    assert result.returncode == 0, result.stderr
    assert "broken2" in result.stdout and "failed" in result.stdout
    assert "ModuleNotFoundError" in result.stdout
    assert "does_not_exist" in result.stderr  # logged with its error, too


def test_of_two_plugins_registering_the_same_id_the_second_fails_naming_both(tmp_path):
    provider = """
        from multinotes import hookimpl
        from multinotes.providers import StaticProvider

        @hookimpl
        def register_providers(register):
            register(StaticProvider("shared-id", "Same id", []))
    """
    write_dist(
        tmp_path,
        "mn-dupes",
        {"mn_dupe_a": provider, "mn_dupe_b": provider},
        {"dupe_a": "mn_dupe_a", "dupe_b": "mn_dupe_b"},
    )
    with on_path(tmp_path):
        host = PluginHost()
        host.load_entrypoints()
    first, second = host.records["dupe_a"], host.records["dupe_b"]
    assert (first.status, second.status) == ("loaded", "failed")
    assert "'dupe_a'" in (second.error or "") and "'dupe_b'" in (second.error or "")
    assert "shared-id" in (second.error or "")
    assert host.registries.providers["shared-id"][0] == "dupe_a"


def test_a_plugin_with_a_misspelled_hook_is_marked_failed(tmp_path):
    source = """
        from multinotes import hookimpl

        @hookimpl
        def register_provider(register):  # missing "s"
            pass
    """
    write_dist(tmp_path, "mn-typo", {"mn_typo": source}, {"typo": "mn_typo"})
    with on_path(tmp_path):
        host = PluginHost()
        host.load_entrypoints()
    typo = host.records["typo"]
    assert (typo.status, typo.enabled) == ("failed", False)
    assert "register_provider" in (typo.error or "")
    assert host.records["demo"].status == "loaded"


def test_two_plugins_with_one_name_are_both_left_out_naming_both(tmp_path):
    provider = """
        from multinotes import hookimpl
        from multinotes.providers import StaticProvider

        @hookimpl
        def register_providers(register):
            register(StaticProvider("named-" + __name__, "x", []))
    """
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_dist(tmp_path / "a", "mn-same-a", {"mn_same_a": provider}, {"same": "mn_same_a"})
    write_dist(tmp_path / "b", "mn-same-b", {"mn_same_b": provider}, {"same": "mn_same_b"})
    with on_path(tmp_path / "a"), on_path(tmp_path / "b"):
        host = PluginHost()
        host.load_entrypoints()
    same = host.records["same"]
    assert same.status == "failed"
    assert "mn_same_a" in (same.error or "") and "mn_same_b" in (same.error or "")
    assert not any(p.startswith("named-") for p in host.registries.providers)


def test_two_plugins_registering_the_same_task_the_second_fails(tmp_path):
    source = """
        from multinotes import hookimpl

        async def job(app):
            pass

        @hookimpl
        def register_tasks(register):
            register("shared.job", job)

        @hookimpl
        def register_routes(register):
            async def h(request):
                return None
            register("GET", "/api/plugins/" + __name__ + "/x", h, access="public")
    """
    write_dist(
        tmp_path,
        "mn-tasks",
        {"mn_task_a": source, "mn_task_b": source},
        {"task_a": "mn_task_a", "task_b": "mn_task_b"},
    )
    with on_path(tmp_path):
        host = PluginHost()
        host.load_entrypoints()
    assert host.records["task_b"].status == "failed"
    assert "'task_a'" in (host.records["task_b"].error or "")
    assert host.tasks["shared.job"].plugin == "task_a"
    # The failed one's route is gone too (built-in plugins' routes aside).
    assert [r.plugin for r in host.routes if r.plugin.startswith("task_")] == ["task_a"]


def test_a_route_without_access_is_refused(tmp_path):
    source = """
        from multinotes import hookimpl

        async def h(request):
            return None

        @hookimpl
        def register_routes(register):
            register("GET", "/x", h, access="everyone")
    """
    write_dist(tmp_path, "mn-noaccess", {"mn_noaccess": source}, {"noaccess": "mn_noaccess"})
    with on_path(tmp_path):
        host = PluginHost()
        host.load_entrypoints()
    assert host.records["noaccess"].status == "failed"
    assert "access" in (host.records["noaccess"].error or "")


def test_the_openai_plugins_load_and_start_enabled_in_production():
    host = PluginHost(mode="production")
    host.load_entrypoints()
    for name in ("openai", "openai_compatible"):
        record = host.records[name]
        assert (record.status, record.kinds, record.enabled) == ("loaded", ["provider"], True)
        assert record.settings_model is not None
        assert name in host.registries.providers
    # The core reads the OpenAI key from this settings field and passes it in.
    assert host.registries.providers["openai"][1].key_field == "api_key"


def test_built_in_plugin_settings_bootstrap_from_the_environment(monkeypatch, tmp_path):
    from multinotes.plugins.providers.openai import OpenAISettings
    from multinotes.plugins.providers.openai_compatible import CompatibleSettings

    monkeypatch.setenv("MULTINOTES_PLUGINS__OPENAI__API_KEY", "sk-from-env")
    monkeypatch.setenv("MULTINOTES_PLUGINS__OPENAI__BASE_URL", "http://127.0.0.1:9/v1")
    connections = [{"name": "ollama", "base_url": "http://127.0.0.1:11434/v1"}]
    monkeypatch.setenv(
        "MULTINOTES_PLUGINS__OPENAI_COMPATIBLE__CONNECTIONS", json.dumps(connections)
    )
    monkeypatch.setenv("MULTINOTES_PLUGINS__OPENAI_COMPATIBLE__API_KEYS", '{"ollama": "k-1"}')
    settings = Settings(_env_file=None, data_dir=tmp_path, secret_key=secrets.token_urlsafe(48))

    openai = OpenAISettings.model_validate(settings.plugin_values("openai"))
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "sk-from-env"
    assert openai.base_url == "http://127.0.0.1:9/v1"
    compatible = CompatibleSettings.model_validate(settings.plugin_values("openai_compatible"))
    assert [c.name for c in compatible.connection_list()] == ["ollama"]
    assert compatible.key_for("ollama") == "k-1"
    assert isinstance(compatible.connections, str)  # still text an admin can edit in the form


def test_demo_provider_is_on_by_default_only_in_embedded_mode():
    embedded, production = PluginHost("embedded"), PluginHost("production")
    embedded.load_entrypoints()
    production.load_entrypoints()
    embedded.apply_state({})
    production.apply_state({})
    assert embedded.is_enabled("demo") and not production.is_enabled("demo")
    assert "demo" not in production.registries.providers


@pytest.mark.slow
def test_documented_example_plugin_installs_with_pip_and_loads(tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "docs" / "example-plugin"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    with on_path(target):
        host = PluginHost()
        host.load_entrypoints()
        hello = host.records["hello"]
        assert (hello.status, hello.kinds, hello.distribution, hello.version) == (
            "loaded",
            ["provider"],
            "multinotes-hello",
            "0.1.0",
        )
        assert hello.settings_model is not None and "api_key" in hello.settings_model.model_fields
        assert "hello.count_models" in host.tasks
        # Its own test suite passes against the installed copy.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(ROOT / "docs" / "example-plugin" / "tests"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)},
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_create_app_uses_exactly_the_plugins_given(tmp_path):
    from multinotes.app import create_app
    from multinotes.keys import PLUGINS

    app = create_app(embedded_settings(tmp_path), plugins=[])
    assert app[PLUGINS].records == {}
