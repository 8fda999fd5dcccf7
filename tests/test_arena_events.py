"""A blind comparison's answers publish their domain events (which the owner's webhooks and
other integrations are handed) and move the owner's wallet (the live channel, the ledger, the
usage chart) without naming a model: the events say ``blind`` with an empty model and, for a
failed answer, no provider wording; the ledger's reason and model say "Blind comparison answer"
and nothing. Answers of ordinary chats still name their model everywhere."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from multinotes.domain_events import EVENTS, DomainEvent
from multinotes.errors import ProviderError
from multinotes.live import HUB
from multinotes.providers import Pricing
from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.test_arena import MODELS, assert_blind, run_blind

FAILING = ("script/ocelot", "Ocelot Ultra")


@pytest.fixture
def plugins():
    models = [
        ScriptedModel(
            model_id,
            Script(chunks=chunks),
            name=name,
            context_window=1000,
            max_output=100,
            pricing=Pricing(input_per_million=price, output_per_million=price),
        )
        for model_id, (name, chunks, price) in MODELS.items()
    ]
    # A provider whose error message names the model.
    failure = ProviderError(f"{FAILING[1]} ({FAILING[0]}) is overloaded")
    models.append(
        ScriptedModel(
            FAILING[0],
            Script(failures=[failure] * 5),
            name=FAILING[1],
            context_window=1000,
            max_output=100,
        )
    )
    return [("script", ScriptedPlugin(*models))]


def assert_nothing_named(body: str) -> None:
    assert_blind(body)
    for secret in (*FAILING, "ocelot"):
        assert secret.lower() not in body.lower(), f"{secret!r} leaked before the vote"


class Heard:
    """The domain events the app publishes and the live channel's messages, as sent."""

    def __init__(self, app: Any) -> None:
        self.events: list[DomainEvent] = []
        self.live: list[tuple[str, str, dict[str, Any]]] = []
        app[EVENTS].subscribe_all(self._event)
        hub = app[HUB]
        original = hub.publish

        async def publish(user_id: str, type_: str, data: dict[str, Any]) -> None:
            self.live.append((user_id, type_, data))
            await original(user_id, type_, data)

        hub.publish = publish  # type: ignore[method-assign]

    async def _event(self, _app: Any, event: DomainEvent) -> None:
        self.events.append(event)

    def generations(self) -> list[DomainEvent]:
        return [e for e in self.events if e.name.startswith("generation.")]

    async def until(self, count: int) -> list[DomainEvent]:
        for _ in range(100):
            if len(self.generations()) >= count:
                break
            await asyncio.sleep(0.05)
        return self.generations()


async def test_a_blind_runs_events_live_updates_and_ledger_name_no_model(user: ApiClient):
    heard = Heard(user.app)
    comparison, _ = await run_blind(user, models=[*list(MODELS), FAILING[0]])
    generations = await heard.until(4)
    assert sorted(e.name for e in generations) == [
        "generation.completed",
        "generation.completed",
        "generation.completed",
        "generation.failed",
    ]
    for event in generations:
        assert event.payload["blind"] is True and event.payload["model"] == ""
    [failed] = [e for e in generations if e.name == "generation.failed"]
    assert failed.payload["error_message"] == "The answer failed."
    # Everything integrations and the live channel were handed, and the owner's ledger.
    assert_nothing_named(json.dumps([e.payload for e in heard.events]))
    assert any(type_ == "wallet.changed" for _, type_, _ in heard.live)
    assert_nothing_named(json.dumps([data for _, _, data in heard.live], default=str))
    ledger = await user.get("/api/wallet/ledger")
    text = await ledger.text()
    assert ledger.status == 200
    assert_nothing_named(text)
    assert "Blind comparison answer" in text
    usage = await user.get("/api/wallet/usage")
    assert_nothing_named(await usage.text())

    # After the vote the comparison names them (on its own page, not through old events).
    response = await user.post(
        f"/api/comparisons/{comparison}/vote",
        {"ranks": {"A": 1, "B": 2, "C": 3, "D": 4}, "category": "code"},
    )
    assert response.status == 200, await response.text()


async def test_an_ordinary_chat_answer_still_names_its_model(user: ApiClient):
    heard = Heard(user.app)
    model_id = next(iter(MODELS))
    response = await user.post("/api/conversations", {"title": "Plain"})
    conversation = (await response.json())["id"]
    response = await user.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "Hello", "models": [model_id]},
    )
    assert response.status == 200, await response.text()
    await response.text()
    [event] = await heard.until(1)
    assert event.payload["model"] == model_id and event.payload["blind"] is False
    ledger = await (await user.get("/api/wallet/ledger")).text()
    assert MODELS[model_id][0] in ledger
