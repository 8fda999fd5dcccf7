"""Context window management (issue #18 item 6): a conversation that outgrows a model's window
either drops its oldest turns (the default) or, when its owner chose "summarise", sends a summary
of them written by the cheapest text model: charged once through the wallet (ledger reference
``summary:<id>``), stored, reused until more turns overflow, and shown in the conversation as a
collapsible marker. Each answer says which policy applied."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from multinotes.chat.models import ContextSummary
from multinotes.errors import ProviderUnavailable
from multinotes.keys import DB
from multinotes.providers import Pricing
from multinotes.testing import ApiClient
from multinotes.wallet.models import Reservation
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.sse import parse_sse

SMALL, CHEAP, WRITER = "script/small", "script/cheap", "script/writer"
SUMMARY_TEXT = "The user is planning an otter sanctuary named Riverbend."


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {
        SMALL: Script(chunks=["Noted", "."]),
        CHEAP: Script(chunks=[SUMMARY_TEXT]),
        WRITER: Script(chunks=["Written by the chosen summariser."]),
    }


@pytest.fixture
def plugins(scripts: dict[str, Script]):
    small = ScriptedModel(
        SMALL,
        scripts[SMALL],
        capabilities=frozenset({"text"}),
        context_window=1200,
        max_output=100,
    )
    # The cheapest text model: the summariser unless an admin names another.
    cheap = ScriptedModel(
        CHEAP,
        scripts[CHEAP],
        capabilities=frozenset({"text"}),
        context_window=100_000,
        max_output=1000,
        pricing=Pricing(input_per_million=100_000, output_per_million=200_000),
    )
    writer = ScriptedModel(
        WRITER, scripts[WRITER], capabilities=frozenset({"text"}), context_window=100_000
    )
    return [("script", ScriptedPlugin(small, cheap, writer))]


def long_turn(index: int) -> str:
    """About 150 tokens, with a word that names the turn."""
    return f"Turn{index}marker. " + "otters " * 150


async def ask(api: ApiClient, conversation: str, content: str) -> dict[str, Any]:
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": content, "models": [SMALL]}
    )
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    start = next(d for n, d in events if n == "start")
    done = next(d for n, d in events if n == "done")
    assert done["status"] == "complete", events
    return {"start": start, "done": done}


async def new_conversation(api: ApiClient, policy: str | None = None) -> str:
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    if policy is not None:
        response = await api.patch(f"/api/conversations/{conversation}", {"context_policy": policy})
        assert response.status == 200, await response.text()
        assert (await response.json())["context_policy"] == policy
    return conversation


def sent_text(script: Script) -> str:
    return "\n".join(m.content for m in script.requests[-1].messages)


async def summary_charges(api: ApiClient) -> list[dict[str, Any]]:
    entries = (await api.get_json("/api/wallet/ledger?limit=200"))["entries"]
    return [e for e in entries if e["reason"] == "Summary of earlier turns"]


async def test_a_long_conversation_is_summarised_instead_of_truncated(
    user: ApiClient, scripts: dict[str, Script]
):
    conversation = await new_conversation(user, "summarise")
    answers = [await ask(user, conversation, long_turn(i)) for i in range(1, 8)]
    fitted = [a for a in answers if a["done"]["context_policy"] is not None]
    assert fitted, "the conversation never outgrew the window"
    first = fitted[0]
    assert first["done"]["context_policy"] == "summarise"
    assert first["start"]["context_policy"] == "summarise"
    summary = first["start"]["summary"]
    assert summary["content"] == SUMMARY_TEXT and summary["model"] == CHEAP
    assert first["start"]["dropped_turns"] == summary["turns"] > 0

    # The summariser read the old turns; the model got the summary and the recent turns.
    summariser = scripts[CHEAP]
    assert summariser.calls >= 1
    assert "Turn1marker" in "\n".join(m.content for m in summariser.requests[0].messages)
    small = scripts[SMALL]
    sent = sent_text(small)
    assert SUMMARY_TEXT in sent and "Turn1marker" not in sent
    assert small.requests[-1].messages[-1].content.startswith("Turn7marker")
    assert small.requests[-1].messages[0].content.startswith("[Summary of the")

    # Charged once per summary made, under its own reference, and reused in between.
    async with user.app[DB].read() as session:
        rows = list(await session.scalars(select(ContextSummary)))
        held = list(
            await session.scalars(
                select(Reservation).where(Reservation.reference.like("summary:%"))
            )
        )
    assert len(rows) == summariser.calls < len(fitted)
    assert {r.reference for r in held} == {f"summary:{row.id}" for row in rows}
    charges = await summary_charges(user)
    assert len(charges) == len(rows)
    assert sorted(-c["amount"] for c in charges) == sorted(row.cost for row in rows)
    assert all(c["model"] == CHEAP and c["amount"] < 0 for c in charges)

    # The conversation shows it: in its JSON, and as a collapsible marker on its page.
    tree = await user.get_json(f"/api/conversations/{conversation}")
    generations = [m["generation"] for m in tree["messages"] if m["role"] == "assistant"]
    summarised = [g for g in generations if g["context_policy"] == "summarise"]
    assert summarised and all(g["summary"]["content"] == SUMMARY_TEXT for g in summarised)
    assert tree["context_policy"] == "summarise"
    page = await (await user.get(f"/chat/{conversation}")).text()
    assert "<details" in page and "Earlier turns summarised" in page
    assert SUMMARY_TEXT in page


async def test_the_default_drops_the_oldest_turns_and_says_so(
    user: ApiClient, scripts: dict[str, Script]
):
    conversation = await new_conversation(user)
    answers = [await ask(user, conversation, long_turn(i)) for i in range(1, 8)]
    assert answers[0]["done"]["context_policy"] is None  # it all fitted
    last = answers[-1]
    assert last["done"]["context_policy"] == "drop" and last["start"]["dropped_turns"] > 0
    assert last["start"]["summary"] is None
    assert "Turn1marker" not in sent_text(scripts[SMALL])
    assert scripts[CHEAP].calls == 0
    assert await summary_charges(user) == []


async def test_a_failed_summary_falls_back_to_dropping_and_says_so(
    user: ApiClient, scripts: dict[str, Script]
):
    scripts[CHEAP].failures = [ProviderUnavailable("The summariser is down.")] * 20
    before = (await user.get_json("/api/wallet"))["balance"]
    conversation = await new_conversation(user, "summarise")
    answers = [await ask(user, conversation, long_turn(i)) for i in range(1, 8)]
    last = answers[-1]
    assert last["done"]["context_policy"] == "summarise_failed"
    assert last["start"]["dropped_turns"] > 0 and last["start"]["summary"] is None
    assert "Turn1marker" not in sent_text(scripts[SMALL])
    assert await summary_charges(user) == []
    spent = sum(a["done"]["cost"] for a in answers)
    assert (await user.get_json("/api/wallet"))["balance"] == before - spent
    page = await (await user.get(f"/chat/{conversation}")).text()
    assert "could not be summarised" in page


async def test_the_policy_is_checked_and_only_the_owner_may_set_it(user: ApiClient, make_client):
    conversation = await new_conversation(user)
    response = await user.patch(f"/api/conversations/{conversation}", {"context_policy": "squash"})
    assert response.status == 422
    assert "context_policy" in (await response.json())["error"]["fields"]
    assert (await user.get_json(f"/api/conversations/{conversation}"))["context_policy"] == "drop"

    other = await make_client()
    await other.register_and_login("other@example.com")
    response = await other.patch(
        f"/api/conversations/{conversation}", {"context_policy": "summarise"}
    )
    assert response.status == 404
    assert (await user.get_json(f"/api/conversations/{conversation}"))["context_policy"] == "drop"


async def test_an_admin_names_the_summariser(user: ApiClient, scripts: dict[str, Script]):
    response = await user.patch("/api/admin/assist", {"summariser_model": "script/nope"})
    assert response.status == 422
    assert "summariser_model" in (await response.json())["error"]["fields"]
    response = await user.patch("/api/admin/assist", {"summariser_model": WRITER})
    assert response.status == 200 and (await response.json())["summariser_model"] == WRITER

    conversation = await new_conversation(user, "summarise")
    answers = [await ask(user, conversation, long_turn(i)) for i in range(1, 6)]
    summary = next(a["start"]["summary"] for a in answers if a["start"]["summary"])
    assert summary["model"] == WRITER
    assert summary["content"] == "Written by the chosen summariser."
    assert scripts[CHEAP].calls == 0
