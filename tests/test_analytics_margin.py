"""Analytics (issue #19 item 8), end to end through a real answer: a generation records what
the provider's list prices make of its usage (its AI cost) beside what the user was charged,
markup included, and the margin dashboard sets one against the other."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from multinotes.chat.models import Generation
from multinotes.keys import DB
from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.sse import by_model, parse_sse
from tests.support.waiting import eventually

A = "script/alpha"


@pytest.fixture
def plugins() -> Any:
    return scripted_plugins(
        {A: Script(chunks=["a", "b", "c"])}, context_window=1000, max_output=100
    )


async def test_an_answer_records_its_provider_cost_and_the_dashboard_its_margin(user: ApiClient):
    # List prices: 1 credit per input token, 2 per output token; the admin adds 50%.
    response = await user.patch(f"/api/admin/models/{A}", {"markup_percent": 50})
    assert response.status == 200, await response.text()
    conversation = (await (await user.post("/api/conversations", {})).json())["id"]
    answered = await user.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [A]}
    )
    assert answered.status == 200
    done = by_model(parse_sse(await answered.text()))[A][-1][1]
    # "Hi" is 10 input tokens as scripted, the answer 3: 10 + 2 * 3 = 16 at list prices.
    assert done["cost"] == 24
    async with user.app[DB].read() as session:
        generation = (await session.execute(select(Generation))).scalar_one()
    assert (generation.cost, generation.provider_cost) == (24, 16)

    assert (await user.post("/api/admin/analytics/rollup")).status == 202
    await eventually(_rolled_up(user), timeout=60)
    margin = await user.get_json("/api/admin/analytics/margin")
    assert margin["by_model"] == [
        {
            "model_id": A,
            "provider_id": "script",
            "generations": 1,
            "revenue": 24,
            "cost": 16,
            "margin": 8,
            "margin_percent": 33.33,
        }
    ]
    assert margin["by_plan"][0]["plan_name"] == "No plan bought"


def _rolled_up(client: ApiClient) -> Any:
    async def check() -> bool:
        status = await client.get_json("/api/admin/analytics/rollup")
        return not status["running"] and status["rolled_up_at"] is not None

    return check
