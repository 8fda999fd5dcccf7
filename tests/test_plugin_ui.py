"""UI extension points: what plugins add to the pages (nav links, actions on notes, answers,
conversations and folders, settings panels, CSS) shows while the plugin is enabled and vanishes
the moment an admin switches it off; plugin text is escaped; ``default:`` names the core's own
template; a plugin's mistakes are refused when it registers or contained when a page is drawn."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import pytest
from aiohttp.test_utils import make_mocked_request

import plugins.providers.demo as demo_plugin
from multinotes import hookimpl
from multinotes.app import create_app
from multinotes.identity.actor import ACTOR, Actor
from multinotes.keys import PLUGINS
from multinotes.plugin import Action, ActionTarget, NavLink, SettingsPanel, Viewer
from multinotes.testing import ApiClient, app_client, embedded_settings
from multinotes.ui import PageExtensions
from tests.support import demo_user
from tests.support import ui_plugin as uidemo

user = demo_user.user


@pytest.fixture
def plugins() -> list[tuple[str, Any]]:
    return [("demo", demo_plugin), ("uidemo", uidemo)]


async def text(api: ApiClient, path: str) -> str:
    response = await api.get(path)
    assert response.status == 200, (path, response.status)
    return str(await response.text())


async def switch(api: ApiClient, plugin: str, enabled: bool) -> None:
    response = await api.patch(f"/api/admin/plugins/{plugin}", {"enabled": enabled})
    assert response.status == 200, await response.text()


async def created(api: ApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, body)
    assert response.status in (200, 201), await response.text()
    return dict(await response.json())


async def a_chat_with_an_answer(api: ApiClient) -> tuple[str, str]:
    conversation = (await created(api, "/api/conversations", {}))["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "hi", "models": ["demo/echo"]}
    )
    assert response.status == 200, await response.text()
    [answer] = re.findall(r'"message_id": ?"([0-9a-f]+)"', await response.text())[-1:]
    return conversation, answer


def posts_to(page: str, object_id: str) -> bool:
    return f'action="/plugins/uidemo/send/{object_id}"' in page


# -- in the pages, while enabled and after -----------------------------------------------------


async def test_links_actions_panels_and_css_show_and_vanish_with_the_plugin(user: ApiClient):
    note = await created(user, "/api/documents", {"title": "Plan", "content": "# Plan"})
    folder = await created(user, "/api/folders", {"name": "Work"})
    conversation, answer = await a_chat_with_an_answer(user)
    tree = await user.get_json(f"/api/conversations/{conversation}")
    prompt = next(m["id"] for m in tree["messages"] if m["role"] == "user")

    async def pages() -> dict[str, str]:
        return {
            "note": await text(user, f"/notes/{note['id']}"),
            "folder": await text(user, f"/notes?folder={folder['id']}"),
            "chat": await text(user, f"/chat/{conversation}"),
            "account": await text(user, "/account"),
            "console": await text(user, "/admin/plugins"),
            "plugin": await text(user, "/admin/plugins/uidemo"),
        }

    shown = await pages()
    # Main nav on every page, the admin console's nav in the console.
    assert 'data-plugin-link="uidemo-board"' in shown["note"]
    assert 'data-plugin-link="uidemo-reports"' in shown["console"]
    # Actions: on the note (menu), the note's row and the folder's menu, the conversation, its
    # prompt and its answer; the "Export" group holds the link action.
    assert posts_to(shown["note"], note["id"])
    assert f'href="/plugins/uidemo/board?note={note["id"]}"' in shown["note"]
    assert 'role="group" aria-label="Export"' in shown["note"]
    assert posts_to(shown["folder"], folder["id"])
    assert posts_to(shown["chat"], conversation) and posts_to(shown["chat"], answer)
    assert posts_to(shown["chat"], prompt)
    # Panels, with the context the plugin computed and the page's CSRF token.
    assert 'id="panel-uidemo-account"' in shown["account"]
    assert "sent to <strong>#general</strong> for admin@example.com" in shown["account"]
    assert 'href="#panel-uidemo-account"' in shown["account"]  # in the section nav
    assert 'id="panel-uidemo-console"' in shown["plugin"]
    assert 'id="panel-uidemo-account"' not in shown["plugin"]  # each panel in its own area
    # The stylesheet, versioned by its content like the core's.
    [css] = re.findall(r'href="(/static/plugins/uidemo/uidemo\.css\?v=[^"]+)"', shown["note"])
    assert "teal" in await text(user, css)

    await switch(user, "uidemo", False)
    hidden = await pages()
    marks = ('data-plugin-link="uidemo', "/plugins/uidemo/send", "panel-uidemo", "uidemo.css")
    for name, page in hidden.items():
        for mark in marks:
            assert mark not in page, (name, mark)
    assert (await user.get("/plugins/uidemo/board")).status == 404

    await switch(user, "uidemo", True)
    again = await pages()
    assert posts_to(again["note"], note["id"]) and 'id="panel-uidemo-account"' in again["account"]


async def test_the_console_settings_form_is_the_first_panel_of_a_plugins_page(user: ApiClient):
    """The core's settings form of a plugin goes through the settings-panel path, as the
    plugin's own console panels do: same markup, shown first, a failed save shown in it."""
    page = await text(user, "/admin/plugins/demo")
    form = page.index('<section class="plugin-panel" id="panel-plugin-settings"')
    assert 'data-plugin="core"' in page[form : form + 200]
    assert '<h2 id="panel-plugin-settings-heading">Settings</h2>' in page
    assert 'name="delay_ms"' in page[form:] and "Save settings" in page[form:]

    uidemo_page = await text(user, "/admin/plugins/uidemo")
    settings_at = uidemo_page.index('id="panel-plugin-settings"')
    assert settings_at < uidemo_page.index('id="panel-uidemo-console"')  # then the plugin's

    token = re.findall(r'name="csrf_token" value="([^"]+)"', page)[0]
    refused = await user.client.post(
        "/admin/plugins/demo/settings", data={"csrf_token": token, "delay_ms": "-5"}
    )
    again = await refused.text()
    assert refused.status == 422
    form = again.index('id="panel-plugin-settings"')
    assert 'role="alert"' in again[form:] and 'id="setting-delay_ms-error"' in again[form:]
    assert 'value="-5"' in again[form:]  # what was typed, next to its error


async def test_a_posted_action_runs_with_the_pages_csrf_token(user: ApiClient):
    note = await created(user, "/api/documents", {"title": "Plan", "content": "x"})
    page = await text(user, f"/notes/{note['id']}")
    [token] = re.findall(r'name="csrf_token" value="([^"]+)"', page)[:1]
    uidemo.SENT.clear()
    response = await user.client.post(
        f"/plugins/uidemo/send/{note['id']}", data={"csrf_token": token}
    )
    assert response.status == 200 and await response.text() == "Sent to #general."
    assert user.user is not None
    assert [(note["id"], user.user["id"])] == uidemo.SENT
    refused = await user.client.post(f"/plugins/uidemo/send/{note['id']}", data={})
    assert refused.status == 403 and len(uidemo.SENT) == 1


async def test_plugin_text_is_escaped_and_a_plugin_page_extends_the_core_page(user: ApiClient):
    page = await text(user, "/plugins/uidemo/board")
    assert "Board &amp; &lt;Co&gt;</a>" in page and "<Co>" not in page
    assert "<li>&lt;second&gt;</li>" in page
    # {% extends "default:base.html" %}: the core's page around the plugin's block.
    assert 'id="topnav"' in page and '<h1 id="uidemo-board">Demo board</h1>' in page
    assert "<title>Demo board · MultinotesAI</title>" in page
    assert 'aria-current="page">Board &amp; &lt;Co&gt;' in page  # the link marks where we are


async def test_nothing_is_offered_to_someone_signed_out(api: ApiClient):
    page = await text(api, "/login")
    assert "data-plugin-link" not in page
    # Assets are part of the page for everyone (a plugin may style the login page).
    assert "/static/plugins/uidemo/uidemo.css?v=" in page


# -- the rules, one by one -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Action("x", "X", on={"note"}, url="javascript:alert(1)"), "url must be"),
        (lambda: Action("x", "X", on={"note"}, url="//evil.example/"), "url must be"),
        (lambda: Action("x", "X", on={"note"}, url="/a", post="/b"), "exactly one"),
        (lambda: Action("x", "X", on={"page"}, url="/a"), "'on' is"),
        (lambda: Action("x", "X" * 81, on={"note"}, url="/a"), "label must be"),
        (lambda: Action("X Y", "X", on={"note"}, url="/a"), "id must be"),
        (lambda: Action("x", "X", on={"note"}, url="/a", icon='a" onload="'), "icon must be"),
        (lambda: NavLink("x", "X", "data:text/html,hi"), "href must be"),
        (lambda: NavLink("x", "X", "/a", area="footer"), "area is"),  # type: ignore[arg-type]
        (lambda: SettingsPanel("x", "X", ""), "needs a template"),
    ],
)
def test_what_a_plugin_registers_is_checked(build: Any, message: str):
    with pytest.raises(ValueError, match=message):
        build()


def test_an_action_address_gets_the_objects_id_quoted():
    action = Action("x", "X", on="note", url="/x/{id}/y?id={id}")
    assert action.on == frozenset({"note"})
    target = ActionTarget("note", "a/b c", "u1")
    assert action.href_for(target) == "/x/a%2Fb%20c/y?id=a%2Fb%20c"


class Registers:
    """A plugin registering exactly what it is given."""

    def __init__(self, **hooks: list[Any]) -> None:
        self.hooks = hooks

    @hookimpl
    def register_actions(self, register: Any) -> None:
        for obj in self.hooks.get("actions", []):
            register(obj)

    @hookimpl
    def register_templates(self, register: Any) -> None:
        for folders in self.hooks.get("templates", []):
            register(**folders)

    @hookimpl
    def register_assets(self, register: Any) -> None:
        for path in self.hooks.get("assets", []):
            register(path)


def test_a_wrong_registration_fails_that_plugin_only(tmp_path: Path):
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "ok.css").write_text("p{}")
    good = Action("shared-id", "Good", on={"note"}, url="/a")
    app = create_app(
        embedded_settings(tmp_path / "data"),
        plugins=[
            ("a_good", Registers(actions=[good])),
            ("b_same_id", Registers(actions=[Action("shared-id", "Twin", on={"note"}, url="/b")])),
            ("c_not_an_action", Registers(actions=[{"id": "dict", "label": "X"}])),
            (
                "d_missing_asset",
                Registers(templates=[{"static": tmp_path / "static"}], assets=["nope.css"]),
            ),
            (
                "e_escaping_asset",
                Registers(templates=[{"static": tmp_path / "static"}], assets=["../static/ok.css"]),
            ),
            ("f_asset", Registers(templates=[{"static": tmp_path / "static"}], assets=["ok.css"])),
        ],
    )
    host = app[PLUGINS]
    errors = {name: record.error for name, record in host.records.items()}
    assert errors["a_good"] is None and errors["f_asset"] is None
    assert "'a_good' and 'b_same_id' both register the action id 'shared-id'" in str(
        errors["b_same_id"]
    )
    assert "takes a multinotes.plugin.Action, got dict" in str(errors["c_not_an_action"])
    assert "not in the plugin's static folder" in str(errors["d_missing_asset"])
    assert "relative to the plugin's static folder" in str(errors["e_escaping_asset"])
    assert host.registries.actions["shared-id"].plugin == "a_good"
    assert host.records["f_asset"].assets == ["ok.css"]


async def test_a_check_that_raises_hides_that_action_and_the_page_still_draws(tmp_path: Path):
    def broken(target: ActionTarget, viewer: Viewer) -> bool:
        raise RuntimeError("plugin bug")

    def owner_only(target: ActionTarget, viewer: Viewer) -> bool:
        return target.owner_id == viewer.id

    app = create_app(
        embedded_settings(tmp_path / "data"),
        plugins=[
            (
                "p",
                Registers(
                    actions=[
                        Action("broken", "Broken", on={"note"}, url="/b", applies=broken),
                        Action("mine", "Mine", on={"note"}, url="/m", applies=owner_only),
                        Action("any", "Any", on={"note", "folder"}, post="/p/{id}"),
                    ]
                ),
            )
        ],
    )
    request = make_mocked_request("GET", "/", app=app)
    request[ACTOR] = Actor("u1", "u1@example.com", "U", "user", "session")
    ui = PageExtensions(request)
    assert [a.id for a in ui.actions("note", "n1", "u1")] == ["mine", "any"]
    assert [a.id for a in ui.actions("note", "n2", "someone-else")] == ["any"]
    assert [(a.id, a.method, a.href) for a in ui.actions("folder", "f1", "u1")] == [
        ("any", "post", "/p/f1")
    ]
    assert ui.actions("conversation", "c1", "u1") == []


async def test_default_prefix_is_the_core_template_and_overrides_follow_the_plugin_state(
    tmp_path: Path,
):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "base.html").write_text(
        '{% extends "default:base.html" %}'
        "{% block footer %}<p id='branded'>by the plugin</p>{{ super() }}{% endblock %}"
    )
    app = create_app(
        embedded_settings(tmp_path / "data"),
        plugins=[("brand", Registers(templates=[{"templates": templates}]))],
    )
    async with app_client(app) as api:
        env = aiohttp_jinja2.get_env(app)
        assert env.get_template("default:base.html").filename.endswith("webui/templates/base.html")
        assert env.get_template("base.html").filename == str(templates / "base.html")
        login = await text(api, "/login")
        assert "<p id='branded'>by the plugin</p>" in login
        # The core page, extended: its nav, the login form and the core's footer are all there.
        assert 'id="topnav"' in login and 'name="email"' in login and "/legal/terms" in login
        await api.register_admin()
        await switch(api, "brand", False)
        assert "branded" not in await text(api, "/login")
        await switch(api, "brand", True)
        assert "branded" in await text(api, "/login")


# -- docs/plugins/ui.md ------------------------------------------------------------------------


async def test_the_pinboard_example_in_the_ui_docs_works_as_written(tmp_path: Path):
    """Every block of docs/plugins/ui.md: the module, its two templates and its stylesheet, put
    where their first line says, loaded as a third party's plugin."""
    from tests.test_plugin_api import _core_imports, _load_module
    from tests.test_plugin_docs import blocks

    [(python, source), *files] = blocks("ui.md")
    assert python == "python" and [language for language, _ in files] == ["html", "html", "css"]
    assert _core_imports(source, None) == []
    for _, content in files:
        first = content.partition("\n")[0]
        name = first.strip("{}#/* ").strip()
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    module = _load_module("multinotes_pinboard", source, tmp_path)
    try:
        settings = embedded_settings(tmp_path / "data")
        async with app_client(create_app(settings, plugins=[("pinboard", module)])) as api:
            await api.register_admin()
            note = await created(api, "/api/documents", {"title": "Keep", "content": "x"})
            page = await text(api, f"/notes/{note['id']}")
            assert '<a href="/pinboard" data-plugin-link="pinboard"' in page
            assert 'class="icon icon-pin"' in page
            assert f'action="/pinboard/pins/{note["id"]}"' in page
            assert re.search(r'href="/static/plugins/pinboard/pinboard\.css\?v=[^"]+"', page)
            assert (await api.post(f"/pinboard/pins/{note['id']}")).status == 200
            board = await text(api, "/pinboard")
            assert f'<a href="/notes/{note["id"]}">' in board and 'id="topnav"' in board
            account = await text(api, "/account")
            assert "You have pinned 1 item." in account and 'id="panel-pinboard"' in account

            await switch(api, "pinboard", False)
            page = await text(api, f"/notes/{note['id']}")
            assert "pinboard" not in page
            assert 'id="panel-pinboard"' not in await text(api, "/account")
    finally:
        sys.modules.pop("multinotes_pinboard", None)
