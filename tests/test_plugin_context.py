"""``PluginContext``: what a plugin may do at run time, each scoped to that plugin."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel

from multinotes.plugin import (
    Conflict,
    Event,
    Integration,
    IntegrationRegistrar,
    PluginError,
    SettingsRegistrar,
    TaskRegistrar,
    TemplateRegistrar,
    hookimpl,
    plugin_context,
)
from multinotes.testing import plugin_client


class PerkSettings(BaseModel):
    bonus: int = 7


class OtherSettings(BaseModel):
    unrelated: str = ""


class Perks:
    """A plugin that uses every part of its context."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ran: list[dict[str, Any]] = []
        self.events: list[Event] = []
        (folder / "templates" / "perks").mkdir(parents=True)
        (folder / "templates" / "perks" / "note.txt").write_text("Hi {{ name }}, {{ 2 * 3 }}")

    @hookimpl
    def register_settings(self, register: SettingsRegistrar) -> None:
        register(PerkSettings)

    @hookimpl
    def register_tasks(self, register: TaskRegistrar) -> None:
        async def remember(app: web.Application, **kwargs: Any) -> None:
            self.ran.append(kwargs)

        register("perks.remember", remember)

    @hookimpl
    def register_templates(self, register: TemplateRegistrar) -> None:
        register(templates=self.folder / "templates")

    @hookimpl
    def register_integrations(self, register: IntegrationRegistrar) -> None:
        events = self.events

        class Inbox(Integration):
            integration_id = "perks-inbox"
            name = "Inbox"

            async def handle(self, event: Event, config: Any) -> None:
                events.append(event)

        register(Inbox())


class Neighbour:
    @hookimpl
    def register_tasks(self, register: TaskRegistrar) -> None:
        async def theirs(app: web.Application) -> None:
            return None

        register("neighbour.theirs", theirs)


async def _eventually(check: Any) -> None:
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("did not happen")


@pytest.fixture
async def perks(tmp_path: Path) -> Any:
    plugin = Perks(tmp_path / "perks")
    async with plugin_client(
        tmp_path / "data",
        [("perks", plugin), ("neighbour", Neighbour())],
        public_url="https://notes.example.com/",
    ) as api:
        await api.register_admin()
        yield api, plugin


async def test_context_reads_the_plugins_own_settings(perks):
    api, _ = perks
    context = plugin_context(api.app, "perks")
    assert (await context.settings(PerkSettings)).bonus == 7
    await api.patch("/api/admin/plugins/perks", {"settings": {"bonus": 9}})
    assert (await context.settings(PerkSettings)).bonus == 9
    with pytest.raises(PluginError):
        await context.settings(OtherSettings)
    with pytest.raises(PluginError):
        plugin_context(api.app, "nobody")


async def test_context_enqueues_only_the_plugins_own_tasks(perks):
    api, plugin = perks
    context = plugin_context(api.app, "perks")
    await context.enqueue("perks.remember", note="hi")
    await _eventually(lambda: plugin.ran == [{"note": "hi"}])
    with pytest.raises(PluginError):
        await context.enqueue("neighbour.theirs")


async def test_context_emits_events_to_integrations(perks):
    api, plugin = perks
    await plugin_context(api.app, "perks").emit("perks.granted", user_id="u1", data={"n": 1})
    await _eventually(lambda: len(plugin.events) == 1)
    assert plugin.events[0] == Event("perks.granted", "u1", {"n": 1})


async def test_context_credits_and_debits_a_wallet_once_per_reference(perks):
    api, _ = perks
    context = plugin_context(api.app, "perks")
    user_id = api.user["id"]
    before = (await api.get_json("/api/wallet"))["balance"]

    first = await context.credit(user_id, 500, reason="Paid order 42", reference="order-42")
    again = await context.credit(user_id, 500, reason="Paid order 42", reference="order-42")
    assert first == again and (first.amount, first.reference) == (500, "order-42")
    assert (await api.get_json("/api/wallet"))["balance"] == before + 500

    debit = await context.debit(user_id, 200, reason="Refund of order 42", reference="order-42")
    assert debit.amount == -200  # a debit has its own reference space (kind)
    assert (await api.get_json("/api/wallet"))["balance"] == before + 300
    with pytest.raises(Conflict):
        await context.debit(user_id, 10**9, reason="Too much", reference="order-43")
    assert (await api.get_json("/api/wallet"))["balance"] == before + 300
    with pytest.raises(ValueError):
        await context.credit(user_id, -5, reason="negative", reference="x")


async def test_context_renders_templates_and_builds_absolute_urls(perks):
    api, _ = perks
    context = plugin_context(api.app, "perks")
    assert context.render("perks/note.txt", name="Ada") == "Hi Ada, 6"
    assert context.url("/notes/1") == "https://notes.example.com/notes/1"
    with pytest.raises(ValueError):
        context.url("notes/1")


class Keeper:
    """A plugin with state: a route that asks who is calling, an integration that asks for its
    context."""

    def __init__(self) -> None:
        self.contexts: list[Any] = []

    @hookimpl
    def register_routes(self, register: Any) -> None:
        async def whoami(request: web.Request) -> web.Response:
            caller = plugin_context(request.app, "keeper").caller(request)
            return web.json_response(
                {"user_id": caller.user_id, "name": caller.name, "is_admin": caller.is_admin}
            )

        register("GET", "/api/keeper/whoami", whoami, access="user")

    @hookimpl
    def register_integrations(self, register: IntegrationRegistrar) -> None:
        contexts = self.contexts

        class Stateful(Integration):
            integration_id = "keeper"
            name = "Keeper"

            async def handle(self, event: Event, config: Any, *, context: Any = None) -> None:
                contexts.append(context)

        register(Stateful())


@pytest.fixture
async def keeper(tmp_path: Path) -> Any:
    plugin = Keeper()
    async with plugin_client(tmp_path / "data", [("keeper", plugin)]) as api:
        await api.register_admin()
        yield api, plugin


async def test_context_tells_a_route_who_is_calling(keeper):
    api, _ = keeper
    me = await api.get_json("/api/keeper/whoami")
    assert me == {"user_id": api.user["id"], "name": "Admin", "is_admin": True}


async def test_an_integration_that_asks_for_its_context_gets_it(keeper):
    api, plugin = keeper
    await plugin_context(api.app, "keeper").emit("keeper.kept", user_id=None, data={})
    await _eventually(lambda: len(plugin.contexts) == 1)
    assert plugin.contexts[0].plugin == "keeper"


async def test_context_opens_database_sessions_encrypts_and_notifies(keeper):
    from sqlalchemy import text

    api, _ = keeper
    context = plugin_context(api.app, "keeper")
    async with context.transaction() as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
    async with context.read() as session:
        assert (await session.execute(text("SELECT 2"))).scalar() == 2

    sealed = context.encrypt("whsec_not-in-the-database")
    assert "not-in-the-database" not in sealed
    assert context.decrypt(sealed) == "whsec_not-in-the-database"

    await context.notify(api.user["id"], title="Your export is ready", url="/notes")
    [note] = (await api.get_json("/api/notifications"))["notifications"]
    assert (note["title"], note["url"], note["kind"]) == (
        "Your export is ready",
        "/notes",
        "plugin",
    )
    with pytest.raises(ValueError):
        await context.notify(api.user["id"], title="x", url="https://elsewhere.example/")


async def test_context_says_whether_the_plugin_is_switched_on(keeper):
    api, _ = keeper
    context = plugin_context(api.app, "keeper")
    assert context.is_enabled()
    assert (await api.patch("/api/admin/plugins/keeper", {"enabled": False})).status == 200
    assert not context.is_enabled()


class Postman:
    """Mails its users from its own templates."""

    def __init__(self, folder: Path) -> None:
        mail = folder / "mail" / "postman"
        mail.mkdir(parents=True)
        (mail / "hello.txt").write_text(
            '{%- set subject = "Hello from the postman" -%}\nHi {{ name }}, {{ news }}.\n'
        )
        (mail / "hello.html").write_text(
            '{% extends "mail/_layout.html" %}{% set subject = "Hello from the postman" %}'
            "{% block body %}<p>Hi {{ name }}, {{ news }}.</p>{% endblock %}"
        )
        self.folder = folder

    @hookimpl
    def register_templates(self, register: TemplateRegistrar) -> None:
        register(templates=self.folder)


async def test_context_mails_a_user_from_the_plugins_templates(tmp_path):
    from multinotes.keys import SETTINGS
    from tests.support.mail import html_of, read_outbox, text_of

    async with plugin_client(tmp_path / "data", [("postman", Postman(tmp_path / "t"))]) as api:
        user = await api.register_and_login("pat@example.com", name="Pat")
        context = plugin_context(api.app, "postman")
        with pytest.raises(ValueError):
            await context.mail(user["id"], template="../secrets", context={})
        await context.mail(user["id"], template="hello", context={"news": "the parcel came"})
        await context.mail("0" * 32, template="hello", context={"news": "nobody"})  # no one

        def mailed() -> list[Any]:
            return [
                m for m in read_outbox(api.app[SETTINGS].outbox_dir) if "postman" in m["Subject"]
            ]

        await _eventually(lambda: len(mailed()) == 1)
        [mail] = mailed()
    assert mail["To"] == "pat@example.com" and mail["Subject"] == "Hello from the postman"
    assert "Hi Pat, the parcel came." in text_of(mail)
    assert "<p>Hi Pat, the parcel came.</p>" in html_of(mail)


async def test_context_reads_feature_flags_and_experiment_variants(perks):
    api, _ = perks
    context = plugin_context(api.app, "perks")
    user_id = api.user["id"]
    assert not await context.flag_enabled(user_id, "perks_beta")  # unknown: off
    created = await api.post(
        "/api/admin/flags", {"name": "perks_beta", "enabled": True, "allow_list": [user_id]}
    )
    assert created.status == 201
    assert await context.flag_enabled(user_id, "perks_beta")
    experiment = await api.post(
        "/api/admin/experiments",
        {
            "name": "perks_offer",
            "variants": [{"name": "plain"}, {"name": "shiny"}],
            "conversion_event": "note.created",
        },
    )
    experiment_id = (await experiment.json())["id"]
    assert await context.variant(user_id, "perks_offer") is None  # a draft: the default
    assert (await api.post(f"/api/admin/experiments/{experiment_id}/start")).status == 200
    variant = await context.variant(user_id, "perks_offer")
    assert variant in ("plain", "shiny")
    results = await api.get_json(f"/api/admin/experiments/{experiment_id}/results")
    assert {v["name"]: v["exposed"] for v in results["variants"]}[variant] == 1
