"""Every hook in hookspecs.py does what its docstring says. One test per hook, named
``test_hook_<name>``; the meta-test at the bottom fails when a hook has no test."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel, SecretStr

from multinotes import hookimpl, hookspecs
from multinotes.app import create_app
from multinotes.billing import BillingBackend, Checkout
from multinotes.exporters import ExportDocument, Exporter
from multinotes.integrations import Event, Integration
from multinotes.keys import PLUGINS, TASKS
from multinotes.providers import StaticProvider
from multinotes.testing import app_client, embedded_settings
from multinotes.ui import Action, NavLink, SettingsPanel


class Everything:
    """One plugin implementing every hook, recording what the core did with it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.calls: list[str] = []
        self.task_runs: list[dict[str, Any]] = []
        (tmp / "templates").mkdir(parents=True)
        (tmp / "templates" / "everything.html").write_text("<p>from the plugin</p>")
        (tmp / "templates" / "home.html").write_text("<p>overridden home {{ 1 + 1 }}</p>")
        (tmp / "static").mkdir()
        (tmp / "static" / "everything.txt").write_text("static from the plugin")
        (tmp / "static" / "everything.css").write_text(".everything { color: teal; }")
        (tmp / "templates" / "everything_panel.html").write_text(
            "<p id='everything-panel'>colour {{ colour }}</p>"
        )

    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(StaticProvider("everything-provider", "Everything", []))

    @hookimpl
    def register_exporters(self, register: Any) -> None:
        class Upper(Exporter):
            exporter_id = "upper"
            name = "Upper"
            media_type = "text/plain"
            extension = "txt"

            async def export(self, document: ExportDocument) -> bytes:
                return document.markdown.upper().encode()

        register(Upper())

    @hookimpl
    def register_integrations(self, register: Any) -> None:
        class Collect(Integration):
            integration_id = "collect"
            name = "Collect"
            received: list[Event] = []

            async def handle(self, event: Event, config: Any) -> None:
                self.received.append(event)

        register(Collect())

    @hookimpl
    def register_billing(self, register: Any) -> None:
        class Gratis(BillingBackend):
            backend_id = "gratis"
            name = "Gratis"

            async def create_checkout(self, **kwargs: Any) -> Checkout:
                return Checkout(url="/done", reference="gratis-1")

        register(Gratis())

    @hookimpl
    def register_routes(self, register: Any) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"hello": "from everything"})

        async def secret(request: web.Request) -> web.Response:
            return web.json_response({"admin": True})

        register("GET", "/api/plugins/everything/hello", hello, access="public")
        register("GET", "/api/plugins/everything/admin", secret, access="admin")

    @hookimpl
    def register_tasks(self, register: Any) -> None:
        async def remember(app: web.Application, **kwargs: Any) -> str:
            self.task_runs.append(kwargs)
            return "done"

        register("everything.remember", remember)
        register("everything.nightly", remember, schedule="0 3 * * *")

    @hookimpl
    def register_templates(self, register: Any) -> None:
        register(templates=self.tmp / "templates", static=self.tmp / "static")

    @hookimpl
    def register_nav_links(self, register: Any) -> None:
        register(NavLink("everything-home", "Everything", "/api/plugins/everything/hello"))

    @hookimpl
    def register_actions(self, register: Any) -> None:
        register(Action("everything-open", "Open everywhere", on={"note"}, url="/e/{id}"))

    @hookimpl
    def register_settings_panels(self, register: Any) -> None:
        async def context(request: web.Request) -> dict[str, Any]:
            return {"colour": "blue"}

        register(
            SettingsPanel(
                "everything-panel", "Everything", "everything_panel.html", context=context
            )
        )

    @hookimpl
    def register_assets(self, register: Any) -> None:
        register("everything.css")

    @hookimpl
    def register_settings(self, register: Any) -> None:
        class Config(BaseModel):
            colour: str = "blue"
            token: SecretStr | None = None

        register(Config)

    @hookimpl
    def default_enabled(self, mode: str) -> bool:
        self.calls.append(f"default_enabled:{mode}")
        return True

    @hookimpl
    def startup(self, app: web.Application) -> Any:
        async def started() -> None:
            self.calls.append("startup")

        return started()

    @hookimpl
    def shutdown(self, app: web.Application) -> None:
        self.calls.append("shutdown")


@pytest.fixture
def everything(tmp_path: Path) -> Everything:
    return Everything(tmp_path / "plugin")


@pytest.fixture
def app(tmp_path: Path, everything: Everything) -> web.Application:
    return create_app(embedded_settings(tmp_path / "data"), plugins=[("everything", everything)])


async def test_hook_register_providers(app):
    async with app_client(app):
        plugin, provider = app[PLUGINS].registries.providers["everything-provider"]
    assert plugin == "everything" and provider.name == "Everything"


async def test_hook_register_exporters(app):
    async with app_client(app):
        _, exporter = app[PLUGINS].registries.exporters["upper"]
        assert await exporter.export(ExportDocument("t", "abc")) == b"ABC"


async def test_hook_register_integrations(app):
    async with app_client(app):
        _, integration = app[PLUGINS].registries.integrations["collect"]
        await integration.handle(Event("generation.completed", None, {"n": 1}), None)
        assert integration.received[-1].data == {"n": 1}


async def test_hook_register_connections(tmp_path):
    """A registered connection kind is offered on /api/connections (and on /account), with
    the form that starts connecting; the authorize URL comes from the plugin's endpoints."""
    from multinotes.connections import ConnectedAccount, ConnectionKind, OAuthEndpoints

    class Elsewhere(ConnectionKind):
        kind_id = "elsewhere"
        name = "Elsewhere"

        def endpoints(self, config: Any) -> OAuthEndpoints:
            return OAuthEndpoints("https://elsewhere.example/authorize", "https://x/t", "cid")

        async def account(self, tokens: dict[str, Any], config: Any) -> ConnectedAccount:
            return ConnectedAccount("a1", "Someone")

    class Connects:
        @hookimpl
        def register_connections(self, register: Any) -> None:
            register(Elsewhere())

    app = create_app(embedded_settings(tmp_path), plugins=[("connects", Connects())])
    async with app_client(app) as api:
        await api.register_and_login("connects@example.com")
        listed = await api.get_json("/api/connections")
        assert listed["connections"] == []
        assert listed["available"] == [
            {
                "kind": "elsewhere",
                "name": "Elsewhere",
                "connected": False,
                "connect_url": "/connections/elsewhere/connect",
            }
        ]
        page = await (await api.get("/account")).text()
        assert "Connect Elsewhere" in page


async def test_hook_register_billing(app):
    async with app_client(app):
        _, backend = app[PLUGINS].registries.billing["gratis"]
        assert (await backend.create_checkout()).reference == "gratis-1"


async def test_hook_register_routes(app):
    async with app_client(app) as api:
        assert await api.get_json("/api/plugins/everything/hello") == {"hello": "from everything"}
        # Access is enforced as the plugin declared it.
        assert (await api.get("/api/plugins/everything/admin")).status == 401
        await api.register_admin()
        assert await api.get_json("/api/plugins/everything/admin") == {"admin": True}


async def test_hook_register_tasks(app, everything):
    async with app_client(app):
        queue = app[TASKS]
        assert {"everything.remember", "everything.nightly"} <= set(queue.names())
        await queue.enqueue("everything.remember", note="hi")
        await queue.broker.wait_all()
    assert everything.task_runs == [{"note": "hi"}]


async def test_hook_register_templates(app):
    async with app_client(app) as api:
        home = await api.get("/")
        assert "overridden home 2" in await home.text()
        static = await api.get("/static/plugins/everything/everything.txt")
        assert await static.text() == "static from the plugin"


async def test_hook_register_nav_links(app):
    async with app_client(app) as api:
        await api.register_and_login("nav@example.com")
        page = await (await api.get("/notes")).text()
    assert '<a href="/api/plugins/everything/hello" data-plugin-link="everything-home"' in page


async def test_hook_register_actions(app):
    async with app_client(app) as api:
        await api.register_and_login("actions@example.com")
        note = await api.post("/api/documents", json={"title": "Plan", "content": "x"})
        document = await note.json()
        page = await (await api.get(f"/notes/{document['id']}")).text()
    assert f'href="/e/{document["id"]}"' in page and "Open everywhere" in page


async def test_hook_register_settings_panels(app):
    async with app_client(app) as api:
        await api.register_and_login("panels@example.com")
        page = await (await api.get("/account")).text()
    assert "<p id='everything-panel'>colour blue</p>" in page


async def test_hook_register_assets(app):
    async with app_client(app) as api:
        page = await (await api.get("/login")).text()
        [url] = re.findall(r'<link rel="stylesheet" href="([^"]+)" data-plugin-asset>', page)
        assert url.startswith("/static/plugins/everything/everything.css?v=")
        assert await (await api.get(url)).text() == ".everything { color: teal; }"


async def test_hook_register_settings(app):
    async with app_client(app) as api:
        await api.register_admin()
        detail = await api.get_json("/api/admin/plugins/everything")
    fields = {f["name"]: f for f in detail["settings"]}
    assert fields["colour"]["value"] == "blue" and not fields["colour"]["secret"]
    assert fields["token"]["secret"] and fields["token"]["is_set"] is False


async def test_hook_default_enabled(app, everything):
    async with app_client(app):
        assert app[PLUGINS].is_enabled("everything")
    assert "default_enabled:embedded" in everything.calls


async def test_hook_startup(app, everything):
    async with app_client(app):
        assert everything.calls.count("startup") == 1


async def test_hook_shutdown(app, everything):
    async with app_client(app):
        assert "shutdown" not in everything.calls
    assert everything.calls.count("shutdown") == 1


class Billing:
    """Adds an event to the catalogue (the core has its own order.paid), and one plugin tries to
    take a core event's name."""

    @hookimpl
    def register_events(self, register: Any) -> None:
        from multinotes.plugin import EventPayload, EventType

        class GiftRedeemed(EventPayload):
            order_id: str
            credits: int

        register(EventType("gift.redeemed", 1, "A gift card was redeemed.", GiftRedeemed))


class Usurper:
    @hookimpl
    def register_events(self, register: Any) -> None:
        from multinotes.plugin import NOTE_CREATED, EventType

        register(EventType("note.created", 2, "Mine now.", NOTE_CREATED.payload))


async def test_hook_register_events(tmp_path: Path):
    from multinotes.domain_events import DomainEvent
    from multinotes.plugin import plugin_context

    plugins = [("billing", Billing()), ("usurper", Usurper())]
    app = create_app(embedded_settings(tmp_path / "data"), plugins=plugins)
    async with app_client(app) as api:
        usurper = app[PLUGINS].records["usurper"]
        assert usurper.status == "failed" and "'note.created'" in (usurper.error or "")
        await api.register_admin("events@example.com")
        catalog = {e["name"]: e for e in (await api.get_json("/api/events/catalog"))["events"]}
        paid = catalog["gift.redeemed"]
        assert (paid["source"], paid["version"], paid["description"]) == (
            "billing",
            1,
            "A gift card was redeemed.",
        )
        assert set(paid["json_schema"]["required"]) == {"order_id", "credits"}
        assert (catalog["note.created"]["source"], catalog["note.created"]["version"]) == (
            "core",
            1,
        )
        context = plugin_context(app, "billing")
        heard: list[DomainEvent] = []

        async def on_paid(app: web.Application, event: DomainEvent) -> None:
            heard.append(event)

        context.subscribe("gift.redeemed", on_paid)
        await context.emit("gift.redeemed", user_id="u1", data={"order_id": "o1", "credits": 500})
        assert [(e.user_id, e.payload) for e in heard] == [
            ("u1", {"order_id": "o1", "credits": 500})
        ]
        with pytest.raises(ValueError, match="credits"):
            await context.emit("gift.redeemed", user_id="u1", data={"order_id": "o2"})
        # Switched off, the plugin's events leave the catalogue and its subscribers rest.
        response = await api.patch("/api/admin/plugins/billing", {"enabled": False})
        assert response.status == 200, await response.text()
        await context.emit("gift.redeemed", user_id="u1", data={"order_id": "o3", "credits": 1})
        assert len(heard) == 1
        catalog = await api.get_json("/api/events/catalog")
        assert "gift.redeemed" not in {e["name"] for e in catalog["events"]}


class Tally:
    """Ships one table through its own revision; ``off`` switches it off before the start."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "tally_0001_counts.py").write_text(
            "import sqlalchemy as sa\n"
            "from alembic import op\n"
            "revision, down_revision = 'tally_0001', None\n"
            "branch_labels, depends_on = ('tally',), '0001_core'\n"
            "def upgrade() -> None:\n"
            "    op.create_table('tally_counts', sa.Column('id', sa.Integer, primary_key=True))\n"
            "def downgrade() -> None:\n"
            "    op.drop_table('tally_counts')\n"
        )
        self.folder = folder

    @hookimpl
    def register_migrations(self, register: Any) -> None:
        register(self.folder)

    @hookimpl
    def default_enabled(self, mode: str) -> bool:
        return False  # its tables are made all the same, so switching it on needs no migration


async def test_hook_register_migrations(tmp_path: Path):
    from sqlalchemy import inspect as inspect_db

    from multinotes.keys import DB
    from multinotes.migrations import current_revision

    app = create_app(
        embedded_settings(tmp_path / "data"), plugins=[("tally", Tally(tmp_path / "revisions"))]
    )
    async with app_client(app):
        assert not app[PLUGINS].is_enabled("tally")
        assert "tally_0001" in (await current_revision(app[DB].engine) or "").split(", ")
        async with app[DB].engine.connect() as connection:
            assert await connection.run_sync(lambda c: inspect_db(c).has_table("tally_counts"))


class Diary:
    """Keeps something about each user, and hands it to the data export."""

    @hookimpl
    def register_user_data(self, register: Any) -> None:
        from multinotes.plugin import UserDataExport

        async def collect(app: web.Application, user_id: str) -> dict[str, Any]:
            return {"user": user_id, "entries": ["Dear diary"]}

        register(UserDataExport("diary.json", collect, description="your diary"))

    @hookimpl
    def default_enabled(self, mode: str) -> bool:
        return False  # exported all the same: the rows are the user's


async def test_hook_register_user_data(tmp_path: Path):
    import io
    import json
    import zipfile

    from tests.support.waiting import eventually

    app = create_app(embedded_settings(tmp_path / "data"), plugins=[("diary", Diary())])
    async with app_client(app) as api:
        user = await api.register_and_login("diary@example.com")
        export = await (await api.post("/api/me/export")).json()

        async def done() -> bool:
            body = await api.get_json(f"/api/me/exports/{export['id']}")
            assert body["status"] != "failed", body
            export.update(body)
            return bool(body["status"] == "done")

        await eventually(done, timeout=20)
        archive = zipfile.ZipFile(io.BytesIO(await (await api.get(export["download_url"])).read()))
    assert json.loads(archive.read("plugins/diary/diary.json")) == {
        "user": user["id"],
        "entries": ["Dear diary"],
    }
    assert "plugins/diary/diary.json\n    your diary" in archive.read("README.txt").decode()


def test_every_hookspec_has_a_test():
    specs = {
        name
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(func, "multinotes_spec")
    }
    tested = {
        name.removeprefix("test_hook_")
        for name in dir(sys.modules[__name__])
        if name.startswith("test_hook_")
    }
    assert specs, "no hookspecs found"
    assert specs - tested == set(), f"hooks without a test: {sorted(specs - tested)}"
    assert tested - specs == set(), f"tests for hooks that do not exist: {sorted(tested - specs)}"


def test_every_hookspec_is_documented_and_typed():
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(func, "multinotes_spec"):
            continue
        assert (func.__doc__ or "").strip(), f"{name} has no docstring"
        signature = inspect.signature(func)
        assert signature.return_annotation is not inspect.Signature.empty, name
        for param in signature.parameters.values():
            assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name})"
