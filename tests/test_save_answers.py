"""Answers saved as notes in one action, with their provenance (prompt, model, provider,
options, tokens, cost, timing, conversation); a whole comparison saved as one note; and a saved
note re-run on the same or other models, charged like any generation and linked to the note."""

from __future__ import annotations

import pytest

from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.sse import by_model, parse_sse

A, B = "script/alpha", "script/beta"


@pytest.fixture
def scripts():
    return {A: Script(chunks=["Hello", " ", "from", " ", "alpha"]), B: Script(chunks=["Beta"])}


@pytest.fixture
def plugins(scripts):
    return scripted_plugins(scripts, context_window=1000, max_output=100)


async def ask(api: ApiClient, content: str = "Say hello", models=(A, B)) -> dict:
    """Send a prompt; return the conversation tree after both answers finished."""
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages",
        {
            "content": content,
            "models": list(models),
            "options": {A: {"temperature": 0.5}} if A in models else {},
        },
    )
    assert response.status == 200
    await response.text()
    return dict(await api.get_json(f"/api/conversations/{conversation}"))


def answer_of(tree: dict, model: str) -> dict:
    return next(m for m in tree["messages"] if m["model"] == model)


def prompt_of(tree: dict) -> dict:
    return next(m for m in tree["messages"] if m["role"] == "user")


async def save(api: ApiClient, message_id: str, **body) -> tuple[int, dict]:
    response = await api.post(f"/api/messages/{message_id}/save", body)
    return response.status, await response.json()


async def test_an_answer_is_saved_as_a_note_with_its_provenance(user: ApiClient):
    folder = (await (await user.post("/api/folders", {"name": "Keep"})).json())["id"]
    tree = await ask(user)
    answer = answer_of(tree, A)
    status, body = await save(user, answer["id"], folder_id=folder)
    assert status == 201 and set(body) >= {"document_id"}

    note = await user.get_json(f"/api/documents/{body['document_id']}")
    assert note["title"] == "Say hello" and note["content"] == "Hello from alpha"
    assert note["folder_id"] == folder and note["version"] == 1 and note["has_provenance"]
    provenance = note["provenance"]
    assert provenance["kind"] == "answer"
    assert provenance["conversation_id"] == tree["id"]
    assert provenance["prompt_message_id"] == prompt_of(tree)["id"]
    assert provenance["prompt"] == "Say hello"
    assert provenance["reruns"] == []
    (source,) = provenance["sources"]
    generation = answer["generation"]
    assert source == {
        **source,
        "message_id": answer["id"],
        "generation_id": generation["id"],
        "model": A,
        "provider": "script",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 20,
        "latency_ms": generation["latency_ms"],
        "duration_ms": generation["duration_ms"],
        "status": "complete",
        "created_at": answer["created_at"],
    }
    assert source["options"]["temperature"] == 0.5
    assert source["latency_ms"] is not None

    # The note is a note like any other: editable, and the provenance stays.
    response = await user.patch(
        f"/api/documents/{body['document_id']}", {"version": 1, "content": "Edited"}
    )
    edited = await response.json()
    assert edited["version"] == 2 and edited["provenance"] == provenance


async def test_only_answers_can_be_saved_and_into_live_folders(user: ApiClient):
    tree = await ask(user)
    assert (await save(user, prompt_of(tree)["id"]))[0] == 404
    assert (await save(user, "0" * 32))[0] == 404
    assert (await save(user, answer_of(tree, A)["id"], folder_id="0" * 32))[0] == 404
    assert (await user.get_json("/api/documents"))["documents"] == []


async def test_a_comparison_is_saved_as_one_note_with_a_section_per_model(user: ApiClient):
    tree = await ask(user, "Compare this\nplease")
    prompt = prompt_of(tree)
    response = await user.post(f"/api/messages/{prompt['id']}/save-comparison", {})
    assert response.status == 201
    note = await user.get_json(f"/api/documents/{(await response.json())['document_id']}")
    assert note["title"] == "Compare this please"
    assert note["content"] == (
        f"> Compare this\n> please\n\n## {A}\n\nHello from alpha\n\n## {B}\n\nBeta\n"
    )
    assert f"<h2>{A}</h2>" in note["html"]
    provenance = note["provenance"]
    assert provenance["kind"] == "comparison" and provenance["prompt"] == "Compare this\nplease"
    by = {s["model"]: s for s in provenance["sources"]}
    assert set(by) == {A, B}
    assert by[A]["message_id"] == answer_of(tree, A)["id"] and by[A]["cost"] == 20
    assert by[B]["output_tokens"] == 1 and by[B]["provider"] == "script"
    # An answer is not a prompt.
    answer = answer_of(tree, A)["id"]
    assert (await user.post(f"/api/messages/{answer}/save-comparison", {})).status == 404


async def test_rerun_answers_the_saved_prompt_again_charged_and_linked(user: ApiClient, scripts):
    tree = await ask(user)
    original = answer_of(tree, A)
    _, saved = await save(user, original["id"])
    note_id = saved["document_id"]
    before = (await user.get_json("/api/wallet"))["balance"]

    response = await user.post(f"/api/documents/{note_id}/rerun", {})
    assert response.status == 200 and response.content_type == "text/event-stream"
    events = parse_sse(await response.text())
    assert events[0] == (
        "prompt",
        {"message_id": prompt_of(tree)["id"], "conversation_id": tree["id"]},
    )
    grouped = by_model(events)
    assert set(grouped) == {A}  # the same model by default
    done = grouped[A][-1][1]
    assert done["status"] == "complete" and done["cost"] == 20
    assert (await user.get_json("/api/wallet"))["balance"] == before - 20
    assert scripts[A].calls == 2

    note = await user.get_json(f"/api/documents/{note_id}")
    (rerun,) = note["provenance"]["reruns"]
    assert rerun["prompt_message_id"] == prompt_of(tree)["id"]
    assert rerun["answers"] == [
        {"model": A, "message_id": done["message_id"], "generation_id": done["generation_id"]}
    ]
    assert note["content"] == "Hello from alpha"  # the note itself is unchanged
    # The new answer sits beside the old one in the conversation.
    after = await user.get_json(f"/api/conversations/{tree['id']}")
    new = next(m for m in after["messages"] if m["id"] == done["message_id"])
    assert new["parent_id"] == original["parent_id"] and new["content"] == "Hello from alpha"

    # Another model this time.
    response = await user.post(f"/api/documents/{note_id}/rerun", {"models": [B]})
    assert set(by_model(parse_sse(await response.text()))) == {B}
    reruns = (await user.get_json(f"/api/documents/{note_id}"))["provenance"]["reruns"]
    assert [r["answers"][0]["model"] for r in reruns] == [A, B]


async def test_rerun_needs_a_saved_answer_whose_conversation_still_exists(user: ApiClient):
    plain = (await (await user.post("/api/documents", {"title": "Mine"})).json())["id"]
    response = await user.post(f"/api/documents/{plain}/rerun", {})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "no_provenance"

    tree = await ask(user, models=(A,))
    _, saved = await save(user, answer_of(tree, A)["id"])
    assert (await user.delete(f"/api/conversations/{tree['id']}")).status == 204
    response = await user.post(f"/api/documents/{saved['document_id']}/rerun", {})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "source_gone"
    # The note itself survives its conversation.
    assert (await user.get(f"/api/documents/{saved['document_id']}")).status == 200


async def test_another_user_cannot_save_or_rerun_what_is_not_theirs(
    user: ApiClient, make_client, scripts
):
    tree = await ask(user)
    answer = answer_of(tree, A)
    folder = (await (await user.post("/api/folders", {"name": "A's"})).json())["id"]
    _, saved = await save(user, answer["id"], folder_id=folder)

    other = await make_client()
    await other.register_and_login("b@example.com")
    await other.mark_verified()
    assert (await save(other, answer["id"]))[0] == 404
    response = await other.post(f"/api/messages/{prompt_of(tree)['id']}/save-comparison", {})
    assert response.status == 404
    response = await other.post(f"/api/documents/{saved['document_id']}/rerun", {})
    assert response.status == 404
    # B's own answer cannot be put into A's folder either.
    their_tree = await ask(other, models=(B,))
    assert (await save(other, answer_of(their_tree, B)["id"], folder_id=folder))[0] == 404

    assert (await other.get_json("/api/documents"))["documents"] == []
    assert scripts[A].calls == 1  # no re-run happened
    note = await user.get_json(f"/api/documents/{saved['document_id']}")
    assert note["provenance"]["reruns"] == []
    assert [d["id"] for d in (await user.get_json("/api/documents"))["documents"]] == [
        saved["document_id"]
    ]


async def test_a_rerun_is_paid_like_any_generation_and_needs_a_verified_email(
    user: ApiClient, scripts
):
    from sqlalchemy import update

    from multinotes.keys import DB, SETTINGS
    from multinotes.models import User
    from multinotes.wallet import service as wallet

    tree = await ask(user, models=(A,))
    _, saved = await save(user, answer_of(tree, A)["id"])
    rerun = f"/api/documents/{saved['document_id']}/rerun"

    current = (await user.get_json("/api/wallet"))["balance"]
    await wallet.adjust(user.app[DB], user.user["id"], -current, "drain", by=None)
    response = await user.post(rerun, {})
    assert response.status == 402
    assert scripts[A].calls == 1
    note = await user.get_json(f"/api/documents/{saved['document_id']}")
    assert note["provenance"]["reruns"] == []  # nothing linked when nothing ran

    await wallet.adjust(user.app[DB], user.user["id"], current, "refill", by=None)
    async with user.app[DB].transaction() as session:
        await session.execute(
            update(User).where(User.id == user.user["id"]).values(email_verified_at=None)
        )
    response = await user.post(rerun, {})
    if user.app[SETTINGS].requires_email_verification:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "email_unverified"
        assert scripts[A].calls == 1
    else:  # embedded installs may run without mail verification
        assert response.status == 200
        await response.text()
