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
