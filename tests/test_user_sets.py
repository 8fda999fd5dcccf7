"""After every answer, auto-reload looks at the user's balance and the integrations get the
event (issue #17). For a user with neither auto-reload nor a webhook endpoint that used to cost a
read of ``auto_reloads`` and a queued task that read ``webhook_endpoints``; now who has either is
answered from memory (``multinotes.user_sets``), and a user who switches one on, in this process
or another, is served as before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from multinotes import events, user_sets
from multinotes.app import create_app
from multinotes.billing import auto_reload
from multinotes.billing.models import Plan
from multinotes.billing.reload_models import AutoReload
from multinotes.domain_events import DomainEvent
from multinotes.keys import DB, TASKS
from multinotes.plugins.integrations.webhooks.tables import Endpoint
from multinotes.testing import ApiClient, app_client
from multinotes.wallet import service as wallet
from tests.support.statements import Statements, mentions

WATCHED = ("auto_reloads", "webhook_endpoints")


class Queued:
    """Tasks the app queues (recorded instead of sent)."""

    def __init__(self, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []

        async def enqueue(name: str, /, **kwargs: Any) -> None:
            self.names.append(name)

        monkeypatch.setattr(app[TASKS], "enqueue", enqueue)


def answered(user_id: str) -> DomainEvent:
    """What the wallet publishes after an answer that cost something."""
    return DomainEvent("generation.completed", 1, user_id, {"cost": 5})


async def after_an_answer(app: Any, user_id: str) -> None:
    """What runs after every answer: auto-reload's look and the hand-off to integrations."""
    done = answered(user_id)
    await auto_reload.on_credits_spent(app, done)
    await events.hand_to_integrations(app, done)


async def switch_auto_reload_on(app: Any, user_id: str) -> None:
    """Auto-reload on, with a threshold above any balance (the next answer is under it)."""
    await wallet.ensure_wallet(app[DB], user_id)
    async with app[DB].transaction() as session:
        plan = Plan(name="Top-up", kind="credits", credits=1000, price=500, currency="USD")
        session.add(plan)
        await session.flush()
        session.add(
            AutoReload(
                user_id=user_id, enabled=True, threshold=10**9, plan_id=plan.id, backend="stripe"
            )
        )


async def test_a_user_without_auto_reload_or_webhooks_costs_no_read_after_an_answer(
    api: ApiClient, monkeypatch
):
    await api.register_and_login("plain@example.com")
    queued = Queued(api.app, monkeypatch)
    await after_an_answer(api.app, api.user["id"])  # who has either: read once per process
    with Statements(api.app, mentions(*WATCHED)) as statements:
        for _ in range(3):
            await after_an_answer(api.app, api.user["id"])
    assert statements == []
    assert queued.names == []  # no integration wants this user's events: nothing queued


async def test_switching_auto_reload_on_is_seen_at_the_next_answer(api: ApiClient, monkeypatch):
    await api.register_and_login("reloader@example.com")
    queued = Queued(api.app, monkeypatch)
    await after_an_answer(api.app, api.user["id"])
    assert queued.names == []
    await switch_auto_reload_on(api.app, api.user["id"])
    await after_an_answer(api.app, api.user["id"])
    assert queued.names == [auto_reload.TASK]


async def test_a_new_webhook_endpoint_gets_the_next_event(api: ApiClient, monkeypatch):
    await api.register_and_login("hooked@example.com")
    queued = Queued(api.app, monkeypatch)
    await after_an_answer(api.app, api.user["id"])
    assert queued.names == []
    async with api.app[DB].transaction() as session:
        session.add(
            Endpoint(
                user_id=api.user["id"],
                url="https://example.com/hook",
                events=["generation.completed"],
                secret="x",
            )
        )
    await after_an_answer(api.app, api.user["id"])
    assert queued.names == [events.DISPATCH_TASK]


async def test_an_instance_wide_endpoint_gets_everyones_events(
    admin: ApiClient, make_client, monkeypatch
):
    member = await make_client()
    await member.register_and_login("someone@example.com")
    queued = Queued(admin.app, monkeypatch)
    async with admin.app[DB].transaction() as session:
        session.add(
            Endpoint(
                user_id=admin.user["id"],
                scope="instance",
                url="https://example.com/all",
                events=["generation.completed"],
                secret="x",
            )
        )
    await after_an_answer(admin.app, member.user["id"])
    assert queued.names == [events.DISPATCH_TASK]


async def test_an_answer_is_at_most_the_ttl_old(api: ApiClient):
    """What bounds a lost bus message or a write from outside the app."""
    await api.register_and_login("ttl@example.com")
    sets = user_sets.UserSets(api.app[DB], ttl=0.05)
    assert not await sets.contains(auto_reload.RELOADERS, api.user["id"])
    await sets.contains(auto_reload.RELOADERS, api.user["id"])
    assert sets.loads == 1
    await asyncio.sleep(0.06)
    await sets.contains(auto_reload.RELOADERS, api.user["id"])
    assert sets.loads == 2


@pytest.mark.parametrize("mode", ["production"])
async def test_auto_reload_switched_on_in_one_process_is_seen_in_another(
    api: ApiClient, settings: Any, monkeypatch
):
    """Two apps sharing MariaDB and Redis, as two web processes would: B knows the user has no
    auto-reload when A switches it on; B queues the reload once the pub/sub message arrived."""
    await api.register_and_login("twoprocs@example.com")
    other_app = create_app(settings)
    async with app_client(other_app):
        queued = Queued(other_app, monkeypatch)
        await after_an_answer(other_app, api.user["id"])
        assert queued.names == []
        await switch_auto_reload_on(api.app, api.user["id"])
        for _ in range(40):
            await after_an_answer(other_app, api.user["id"])
            if queued.names:
                break
            await asyncio.sleep(0.05)
        assert queued.names == [auto_reload.TASK]
