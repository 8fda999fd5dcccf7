"""The admin plugin console API: list, switch at runtime, and configure plugins."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

import plugins.exports.markdown as markdown_plugin
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS, SECRETS
from multinotes.models import PluginSetting, Secret
from multinotes.testing import ApiClient
from tests.support import sample_plugin

SECRET = "sk-live-0123456789abcdefWXYZ"


@pytest.fixture
def plugins():
    return [("sample", sample_plugin), ("markdown", markdown_plugin)]


@pytest.fixture
def settings(make_settings):
    return make_settings(plugins={"sample": {"base_url": "http://from-env.test/v1"}})


async def test_admin_lists_every_plugin(admin: ApiClient):
    listed = await admin.get_json("/api/admin/plugins")
    assert listed == [
        {
            "name": "markdown",
            "kinds": ["exporter"],
            "version": markdown_plugin.__version__,
            "module": "plugins.exports.markdown",
            "enabled": True,
            "status": "loaded",
            "error": None,
            "has_settings": False,
        },
        {
            "name": "sample",
            "kinds": ["provider"],
            "version": "2.3.4",
            "module": "tests.support.sample_plugin",
            "enabled": True,
            "status": "loaded",
            "error": None,
            "has_settings": True,
        },
    ]


async def test_console_is_for_admins_only(admin: ApiClient, make_client):
    anonymous = await make_client()
    assert (await anonymous.get("/api/admin/plugins")).status == 401
    user = await make_client()
    await user.register_and_login("user@example.com")
    response = await user.get("/api/admin/plugins")
    assert response.status == 403
    patch = await user.patch("/api/admin/plugins/sample", {"enabled": False})
    assert patch.status == 403
    assert admin.app[PLUGINS].is_enabled("sample")


async def test_disabling_a_plugin_removes_it_at_once_and_enabling_restores_it(admin: ApiClient):
    assert (await admin.get("/api/plugins/sample/config")).status == 200
    response = await admin.patch("/api/admin/plugins/sample", {"enabled": False})
    assert response.status == 200
    assert (await response.json())["enabled"] is False
    assert "sample" not in admin.app[PLUGINS].registries.providers
    route = await admin.get("/api/plugins/sample/config")
    assert route.status == 404
    assert (await route.json())["error"]["code"] == "not_found"

    await admin.patch("/api/admin/plugins/sample", {"enabled": True})
    assert "sample" in admin.app[PLUGINS].registries.providers
    assert (await admin.get("/api/plugins/sample/config")).status == 200


async def test_unknown_plugin_is_404(admin: ApiClient):
    assert (await admin.patch("/api/admin/plugins/nope", {"enabled": True})).status == 404
    assert (await admin.get("/api/admin/plugins/nope")).status == 404


async def test_patch_rejects_unknown_fields(admin: ApiClient):
    response = await admin.patch("/api/admin/plugins/sample", {"enabled": True, "status": "ok"})
    assert response.status == 422
    assert "status" in (await response.json())["error"]["fields"]


async def test_settings_come_from_the_environment_until_an_admin_edits_them(admin: ApiClient):
    detail = await admin.get_json("/api/admin/plugins/sample")
    fields = {f["name"]: f for f in detail["settings"]}
    assert (fields["base_url"]["value"], fields["base_url"]["source"]) == (
        "http://from-env.test/v1",
        "env",
    )
    assert (fields["timeout"]["value"], fields["timeout"]["source"]) == (30.0, "default")

    await admin.patch(
        "/api/admin/plugins/sample",
        {"settings": {"base_url": "http://edited.test/v1", "verbose": True}},
    )
    fields = {f["name"]: f for f in (await admin.get_json("/api/admin/plugins/sample"))["settings"]}
    assert (fields["base_url"]["value"], fields["base_url"]["source"]) == (
        "http://edited.test/v1",
        "admin",
    )
    assert fields["verbose"]["value"] is True
    assert (await admin.get_json("/api/plugins/sample/config"))[
        "base_url"
    ] == "http://edited.test/v1"


async def test_secrets_are_encrypted_at_rest_and_never_returned(admin: ApiClient):
    response = await admin.patch("/api/admin/plugins/sample", {"settings": {"api_key": SECRET}})
    text = await response.text()
    assert response.status == 200 and SECRET not in text
    field = {f["name"]: f for f in (await response.json())["settings"]}["api_key"]
    assert field == {
        **field,
        "secret": True,
        "is_set": True,
        "masked": "••••WXYZ",
        "source": "admin",
        "value": None,
    }
    for path in ("/api/admin/plugins", "/api/admin/plugins/sample"):
        assert SECRET not in await (await admin.get(path)).text()

    async with admin.app[DB].read() as session:
        rows = list(await session.scalars(select(Secret)))
        plain = list(await session.scalars(select(PluginSetting)))
    assert len(rows) == 1 and SECRET not in rows[0].ciphertext and rows[0].last4 == "WXYZ"
    assert all(SECRET not in str(r.value) for r in plain)
    # The plugin itself receives the decrypted value.
    assert (await admin.get_json("/api/plugins/sample/config"))["key_len"] == len(SECRET)


async def test_empty_secret_keeps_the_stored_one_and_clear_removes_it(admin: ApiClient):
    await admin.patch("/api/admin/plugins/sample", {"settings": {"api_key": SECRET}})
    await admin.patch("/api/admin/plugins/sample", {"settings": {"api_key": ""}})
    assert (await admin.get_json("/api/plugins/sample/config"))["key_len"] == len(SECRET)
    await admin.patch("/api/admin/plugins/sample", {"settings": {"api_key": {"clear": True}}})
    assert (await admin.get_json("/api/plugins/sample/config"))["key_len"] == 0


async def test_invalid_settings_are_refused_whole(admin: ApiClient):
    response = await admin.patch(
        "/api/admin/plugins/sample",
        {"settings": {"base_url": "http://ok.test", "timeout": -1, "api_key": SECRET}},
    )
    assert response.status == 422
    body = await response.json()
    assert body["error"]["fields"] == {
        "settings.timeout": body["error"]["fields"]["settings.timeout"]
    }
    detail = {f["name"]: f for f in (await admin.get_json("/api/admin/plugins/sample"))["settings"]}
    assert detail["base_url"]["value"] == "http://from-env.test/v1"
    assert detail["api_key"]["is_set"] is False
    unknown = await admin.patch("/api/admin/plugins/sample", {"settings": {"colour": "red"}})
    assert unknown.status == 422
    assert "settings.colour" in (await unknown.json())["error"]["fields"]


async def test_plugin_without_settings_refuses_settings(admin: ApiClient):
    response = await admin.patch("/api/admin/plugins/markdown", {"settings": {"x": 1}})
    assert response.status == 422


async def test_a_database_dump_contains_no_plaintext_secret(admin: ApiClient, mode: str, settings):
    import subprocess

    await admin.patch("/api/admin/plugins/sample", {"settings": {"api_key": SECRET}})
    if mode == "embedded":
        import sqlite3

        with sqlite3.connect(settings.data_dir / "multinotes.db") as db:
            dump = "\n".join(db.iterdump())
    else:
        from tests.conftest import _mysql_parts

        parts = _mysql_parts()
        database = settings.effective_database_url.rsplit("/", 1)[1].split("?")[0]
        dump = subprocess.run(
            [
                "mysqldump",
                "-h",
                parts["host"],
                "-P",
                str(parts["port"]),
                "-u",
                parts["user"],
                *([f"-p{parts['password']}"] if parts["password"] else []),
                database,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    assert "INSERT INTO" in dump and "secrets" in dump
    assert SECRET not in dump and SECRET[-12:] not in dump


async def test_a_secret_bootstrapped_from_the_environment_is_masked(make_settings, plugins):
    from multinotes.app import create_app
    from multinotes.testing import app_client

    settings = make_settings(plugins={"sample": {"api_key": SECRET}})
    async with app_client(create_app(settings, plugins=plugins)) as api:
        await api.register_admin()
        response = await api.get("/api/admin/plugins/sample")
        assert SECRET not in await response.text()
        field = {f["name"]: f for f in (await response.json())["settings"]}["api_key"]
        assert (field["is_set"], field["masked"], field["source"]) == (True, "••••WXYZ", "env")
        assert (await api.get_json("/api/plugins/sample/config"))["key_len"] == len(SECRET)


async def test_settings_another_process_wrote_are_picked_up_by_the_next_refresh(admin: ApiClient):
    """A process whose bus message was lost (or a CLI command in embedded mode) still reaches
    every process at the next state refresh; a refresh that finds nothing changed keeps the
    settings already read, so requests after it do not read and decrypt them again."""
    from multinotes.plugin_control import reload_state
    from multinotes.plugin_settings import secret_scope

    app = admin.app
    store = app[PLUGIN_SETTINGS]
    await reload_state(app)
    cached = await store.config("sample")
    await reload_state(app)
    assert await store.config("sample") is cached

    async with app[DB].transaction() as session:  # as another process would, without a message
        session.add(PluginSetting(plugin="sample", field="base_url", value="http://other.test/v1"))
        session.add(
            Secret(
                scope=secret_scope("sample"),
                name="api_key",
                ciphertext=app[SECRETS].encrypt(SECRET),
                last4="WXYZ",
            )
        )
    assert await store.config("sample") is cached  # not before the refresh
    await reload_state(app)
    config = await store.config("sample")
    assert config.base_url == "http://other.test/v1"
    assert config.api_key.get_secret_value() == SECRET

    async with app[DB].transaction() as session:
        await session.execute(delete(Secret).where(Secret.scope == secret_scope("sample")))
    await reload_state(app)
    assert (await store.config("sample")).api_key is None
