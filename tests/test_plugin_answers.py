"""``PluginContext.ask`` and ``save_answer``: a plugin (a chat app) sends a prompt on a user's
behalf through the workspace's own pipeline (reserved, stored, settled, charged exactly), and
keeps an answer as a note in a named folder. Both runtime modes."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.plugin import Invalid, PaymentRequired, plugin_context
from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin

A, B = "script/alpha", "script/beta"


class Asker:
    """A plugin with nothing of its own: the test drives its context."""


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {A: Script(chunks=["Hello", " ", "there"]), B: Script(chunks=["Beta"])}


@pytest.fixture
def plugins(scripts: dict[str, Script]) -> Any:
    models = [
        ScriptedModel(model_id, script, context_window=1000, max_output=100)
        for model_id, script in scripts.items()
    ]
    return [("script", ScriptedPlugin(*models)), ("asker", Asker())]


async def balance(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["balance"])


async def test_ask_answers_through_the_pipeline_and_charges_what_it_cost(user: ApiClient) -> None:
    ctx = plugin_context(user.app, "asker")
    before = await balance(user)
    answers = await ctx.ask(user.user["id"], "Say hello", models=[A, B])

    assert [a.model for a in answers] == [A, B]
    first, second = answers
    assert (first.text, first.status, second.text) == ("Hello there", "complete", "Beta")
    # Scripted prices: 1 credit per input token (10), 2 per output token (one per chunk).
    assert (first.cost, second.cost) == (10 + 3 * 2, 10 + 1 * 2)
    assert await balance(user) == before - first.cost - second.cost

    # The conversation is the user's, like one from the workspace.
    tree = await user.get_json(f"/api/conversations/{first.conversation_id}")
    assert [m["content"] for m in tree["messages"] if m["role"] == "user"] == ["Say hello"]
    assert {m["id"] for m in tree["messages"] if m["role"] == "assistant"} == {
        first.message_id,
        second.message_id,
    }
    assert await ctx.models() == [A, B]


async def test_ask_refuses_before_charging_anything(user: ApiClient) -> None:
    ctx = plugin_context(user.app, "asker")
    user_id = user.user["id"]
    with pytest.raises(Invalid) as unknown:
        await ctx.ask(user_id, "Hi", models=["script/nope"])
    assert "models.0" in unknown.value.fields
    with pytest.raises(Invalid):
        await ctx.ask(user_id, "   ", models=[A])

    await ctx.debit(user_id, await balance(user), reason="Spent", reference="drain")
    with pytest.raises(PaymentRequired) as broke:
        await ctx.ask(user_id, "Hi", models=[A])
    assert broke.value.error_code == "insufficient_credits"
    assert await balance(user) == 0
    assert (await user.get_json("/api/conversations"))["conversations"] == []


async def test_save_answer_files_the_note_in_a_named_folder_made_once(user: ApiClient) -> None:
    ctx = plugin_context(user.app, "asker")
    user_id = user.user["id"]
    [answer] = await ctx.ask(user_id, "Say hello", models=[A])
    first = await ctx.save_answer(user_id, answer.message_id, folder="Slack")
    second = await ctx.save_answer(user_id, answer.message_id, folder="Slack")

    folders = (await user.get_json("/api/folders"))["folders"]
    assert [f["name"] for f in folders] == ["Slack"]
    for note_id in (first, second):
        note = await user.get_json(f"/api/documents/{note_id}")
        assert note["content"] == "Hello there" and note["folder_id"] == folders[0]["id"]
        assert note["provenance"]["sources"][0]["message_id"] == answer.message_id


async def test_save_answer_keeps_to_the_users_own_answers(user: ApiClient, make_client) -> None:
    ctx = plugin_context(user.app, "asker")
    [answer] = await ctx.ask(user.user["id"], "Mine", models=[A])
    other: ApiClient = await make_client()
    await other.register_and_login("other@example.com", name="Other")
    from multinotes.plugin import NotFound

    with pytest.raises(NotFound):
        await ctx.save_answer(other.user["id"], answer.message_id, folder="Slack")
    assert (await other.get_json("/api/folders"))["folders"] == []


async def test_save_note_keeps_text_from_elsewhere_as_a_note_in_the_folder(user: ApiClient) -> None:
    ctx = plugin_context(user.app, "asker")
    user_id = user.user["id"]
    note_id = await ctx.save_note(
        user_id, title="  From   the chat ", content="Remember *this*", folder="Slack"
    )
    again = await ctx.save_note(user_id, title="", content="Second", folder="Slack")
    note = await user.get_json(f"/api/documents/{note_id}")
    assert (note["title"], note["content"]) == ("From the chat", "Remember *this*")
    assert (await user.get_json(f"/api/documents/{again}"))["title"] == "Untitled note"
    [folder] = (await user.get_json("/api/folders"))["folders"]
    assert folder["name"] == "Slack" and note["folder_id"] == folder["id"]
    with pytest.raises(Invalid):
        await ctx.save_note(user_id, title="Big", content="x" * 1_000_001, folder=None)
