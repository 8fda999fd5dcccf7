"""Smart assistance (issue #18 item 7): tags and a one-line summary suggested for saved notes by a
cheap model (in the background, charged through the wallet, never changing the note until the
owner accepts), model recommendations for a prompt, and the catalogue's p50 latency and
availability from real traffic."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from multinotes.assist.stats import MODEL_STATS
from multinotes.errors import ProviderUnavailable
from multinotes.keys import DB
from multinotes.providers import Pricing
from multinotes.testing import ApiClient
from multinotes.wallet.models import LedgerEntry
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.sse import by_model, parse_sse

CHEAP = "script/cheap"
CODER = "script/coder"
PAINTER = "script/painter"
FLAKY = "script/flaky"
SUGGESTION = {"tags": ["Python", "#Testing", "python"], "summary": "How to test a function."}
ANSWER = ["def add(a, b):\n", "    return a + b\n"]


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {
        CHEAP: Script(chunks=["```json\n", json.dumps(SUGGESTION), "\n```"]),
        CODER: Script(chunks=ANSWER),
        PAINTER: Script(chunks=[]),
        FLAKY: Script(failures=[ProviderUnavailable("down")] * 50),
    }


@pytest.fixture
def plugins(scripts):
    models = [
        ScriptedModel(
            CHEAP,
            scripts[CHEAP],
            name="Cheap Labeller",
            context_window=4000,
            max_output=200,
            pricing=Pricing(input_per_million=100_000, output_per_million=200_000),
        ),
        ScriptedModel(
            CODER,
            scripts[CODER],
            name="Coder",
            capabilities=frozenset({"text", "code"}),
            context_window=4000,
            max_output=100,
            pricing=Pricing(input_per_million=1_000_000, output_per_million=2_000_000),
        ),
        ScriptedModel(
            PAINTER,
            scripts[PAINTER],
            name="Painter",
            capabilities=frozenset({"image_generation"}),
            pricing=Pricing(per_image=400),
        ),
        ScriptedModel(
            FLAKY,
            scripts[FLAKY],
            name="Flaky",
            context_window=4000,
            max_output=100,
            pricing=Pricing(input_per_million=5_000_000, output_per_million=5_000_000),
        ),
    ]
    return [("script", ScriptedPlugin(*models))]


async def ask(api: ApiClient, content: str, models: list[str]) -> list:
    response = await api.post("/api/messages", {"content": content, "models": models})
    assert response.status == 200, await response.text()
    return parse_sse(await response.text())


async def save_answer(
    api: ApiClient, content: str = "Write a Python add function", *, automatic: bool = True
) -> str:
    """An answer saved as a note, by someone who switched automatic suggestions on (they are
    off by default: each is paid for)."""
    if automatic:
        response = await api.patch("/api/me/assist", {"note_suggestions": True})
        assert response.status == 200, await response.text()
    events = await ask(api, content, [CODER])
    answer = by_model(events)[CODER][-1][1]["message_id"]
    response = await api.post(f"/api/messages/{answer}/save", {})
    body = await response.json()
    assert response.status in (200, 201), body
    return body["document_id"]


async def settled(api: ApiClient, note_id: str) -> dict:
    """The note's suggestion once it is no longer pending."""
    for _ in range(200):
        suggestion = await api.get_json(f"/api/documents/{note_id}/suggestion")
        if suggestion["status"] != "pending":
            return suggestion
        await asyncio.sleep(0.05)
    raise AssertionError("the suggestion stayed pending")


async def charges(api: ApiClient, prefix: str) -> list[LedgerEntry]:
    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(LedgerEntry).where(LedgerEntry.reference.like(f"{prefix}%"))
        )
        return list(rows)


# -- tags and summaries -------------------------------------------------------------------------


async def test_a_saved_answer_gets_tags_and_a_summary_charged_once(user: ApiClient, scripts):
    note_id = await save_answer(user)
    before = await user.get_json(f"/api/documents/{note_id}")
    suggestion = await settled(user, note_id)
    assert suggestion["status"] == "ready", suggestion
    assert suggestion["tags"] == ["python", "testing"]  # cleaned and deduplicated
    assert suggestion["summary"] == "How to test a function."
    assert suggestion["model"] == CHEAP  # the cheapest usable text model
    # The cheap model read the note and was asked for JSON.
    request = scripts[CHEAP].requests[-1]
    assert "def add" in request.messages[-1].content
    assert "JSON" in request.messages[0].content
    # Charged once, through the wallet, by its own reference; nothing held any more.
    entries = await charges(user, "note-suggestion:")
    assert len(entries) == 1 and -entries[0].amount == suggestion["cost"] > 0
    assert entries[0].model_id == CHEAP
    assert (await user.get_json("/api/wallet"))["reserved"] == 0
    # The note itself is unchanged until the owner accepts.
    after = await user.get_json(f"/api/documents/{note_id}")
    assert after["content"] == before["content"] and after["version"] == before["version"]
    assert await user.get_json(f"/api/documents/{note_id}/details") == {"tags": [], "summary": ""}

    # Accepted with an edit: stored with the note, shown in the list, the suggestion done.
    response = await user.request(
        "PUT",
        f"/api/documents/{note_id}/details",
        json={"tags": ["python", "Unit Tests"], "summary": "Adding two numbers in Python."},
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "tags": ["python", "unit tests"],
        "summary": "Adding two numbers in Python.",
    }
    assert (await settled(user, note_id))["status"] == "accepted"
    page = await (await user.get("/notes")).text()
    assert "Adding two numbers in Python." in page and "unit tests" in page


async def test_a_failing_model_leaves_the_note_unchanged_and_charges_nothing(user: ApiClient):
    response = await user.patch("/api/admin/assist", {"model": FLAKY})
    assert response.status == 200 and (await response.json())["model"] == FLAKY
    wallet_before = (await user.get_json("/api/wallet"))["balance"]
    note_id = await save_answer(user)
    after_answer = (await user.get_json("/api/wallet"))["balance"]
    assert after_answer < wallet_before  # the answer itself was paid
    suggestion = await settled(user, note_id)
    assert suggestion["status"] == "failed" and suggestion["error"], suggestion
    assert suggestion["tags"] == [] and suggestion["cost"] == 0
    assert await user.get_json(f"/api/documents/{note_id}/details") == {"tags": [], "summary": ""}
    wallet = await user.get_json("/api/wallet")
    assert wallet["balance"] == after_answer and wallet["reserved"] == 0
    assert [e.amount for e in await charges(user, "note-suggestion:")] == []


async def test_a_reply_that_is_not_json_fails_but_is_paid_for(user: ApiClient, scripts):
    scripts[CHEAP].chunks = ["I would tag this as python."]
    note_id = await save_answer(user)
    suggestion = await settled(user, note_id)
    assert suggestion["status"] == "failed" and "could not be read" in suggestion["error"]
    assert suggestion["cost"] > 0  # the model did the work
    assert len(await charges(user, "note-suggestion:")) == 1


async def test_switches_turn_suggestions_off(user: ApiClient, scripts):
    assert await user.get_json("/api/me/assist") == {
        "note_suggestions": False,  # opt-in: saving a note spends nothing unasked
        "instance_enabled": True,
    }
    response = await user.patch("/api/me/assist", {"note_suggestions": False})
    assert (await response.json())["note_suggestions"] is False
    note_id = await save_answer(user, automatic=False)
    await asyncio.sleep(0.2)
    assert (await user.get_json(f"/api/documents/{note_id}/suggestion"))["status"] == "none"
    assert scripts[CHEAP].calls == 0
    # On demand still works for the user who switched automatic ones off...
    response = await user.post(f"/api/documents/{note_id}/suggestion")
    assert response.status == 202 and (await response.json())["status"] == "pending"
    assert (await settled(user, note_id))["status"] == "ready"
    # ... but not once an administrator switched them off for everyone.
    response = await user.patch("/api/admin/assist", {"note_suggestions": False})
    assert (await response.json()) == {
        "note_suggestions": False,
        "model": None,
        "summariser_model": None,
    }
    response = await user.post(f"/api/documents/{note_id}/suggestion")
    body = await response.json()
    assert response.status == 409 and body["error"]["code"] == "suggestions_off"
    await user.patch("/api/me/assist", {"note_suggestions": True})
    calls = scripts[CHEAP].calls
    other = await save_answer(user)
    await asyncio.sleep(0.2)
    assert (await user.get_json(f"/api/documents/{other}/suggestion"))["status"] == "none"
    assert scripts[CHEAP].calls == calls


async def test_on_demand_for_a_written_note_and_refusals(user: ApiClient, make_client):
    response = await user.post(
        "/api/documents", {"title": "Garden plan", "content": "Tomatoes along the fence."}
    )
    note_id = (await response.json())["id"]
    assert (await user.get_json(f"/api/documents/{note_id}/suggestion"))["status"] == "none"
    response = await user.post(f"/api/documents/{note_id}/suggestion")
    assert response.status == 202
    suggestion = await settled(user, note_id)
    assert suggestion["status"] == "ready"
    dismissed = await (await user.delete(f"/api/documents/{note_id}/suggestion")).json()
    assert dismissed["status"] == "dismissed"

    # Someone else's note: 404 on every route, nothing queued.
    other = await make_client()
    await other.register_and_login("other@example.com")
    await other.mark_verified()
    for method, path, body in [
        ("GET", f"/api/documents/{note_id}/suggestion", None),
        ("POST", f"/api/documents/{note_id}/suggestion", None),
        ("DELETE", f"/api/documents/{note_id}/suggestion", None),
        ("GET", f"/api/documents/{note_id}/details", None),
        ("PUT", f"/api/documents/{note_id}/details", {"tags": ["x"], "summary": ""}),
        ("GET", f"/notes/{note_id}/assist", None),
    ]:
        response = await other.request(method, path, json=body)
        assert response.status == 404, (method, path, response.status)

    # Not enough credits: 402 before anything is queued or held.
    from multinotes.wallet import service as wallet

    balance = (await other.get_json("/api/wallet"))["balance"]
    await wallet.adjust(other.app[DB], other.user["id"], -balance, "test", by=None)
    response = await other.post("/api/documents", {"title": "Mine", "content": "x" * 4000})
    mine = (await response.json())["id"]
    response = await other.post(f"/api/documents/{mine}/suggestion")
    assert response.status == 402, await response.text()
    assert (await other.get_json(f"/api/documents/{mine}/suggestion"))["status"] == "none"
    assert (await other.get_json("/api/wallet"))["reserved"] == 0


async def test_bad_details_are_field_errors(user: ApiClient):
    response = await user.post("/api/documents", {"title": "Note", "content": "Text"})
    note_id = (await response.json())["id"]
    cases = [
        ({"tags": ["ok", "x" * 41]}, "tags.1"),
        ({"tags": ["ok", "   "]}, "tags.1"),
        ({"tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"summary": "s" * 201}, "summary"),
        ({"tags": "python"}, "tags"),
        ({"tags": [], "color": "red"}, "color"),
    ]
    for body, field in cases:
        response = await user.request("PUT", f"/api/documents/{note_id}/details", json=body)
        payload = await response.json()
        assert response.status == 422, (body, payload)
        assert field in payload["error"]["fields"], (body, payload)
    assert await user.get_json(f"/api/documents/{note_id}/details") == {"tags": [], "summary": ""}
    response = await user.patch("/api/admin/assist", {"model": "script/painter"})
    assert response.status == 422 and "model" in (await response.json())["error"]["fields"]
    response = await user.patch("/api/admin/assist", {"model": "nope/none"})
    assert response.status == 422


# -- recommendations ----------------------------------------------------------------------------


async def recommendations(api: ApiClient, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return await api.get_json(f"/api/models/recommendations?{query}")


async def test_recommendations_follow_capability_price_ratings_and_the_leaderboard(
    user: ApiClient,
):
    image = await recommendations(user, prompt="Draw a picture of a red fox in the snow")
    assert image["category"] == "image" and image["guessed"] is True
    assert [m["model"] for m in image["models"]] == [PAINTER]
    assert "Makes images" in image["models"][0]["reasons"]

    code = await recommendations(user, prompt="Fix the bug in this Python function", limit=5)
    assert code["category"] == "code"
    assert code["models"][0]["model"] == CODER
    assert "Strong at code" in code["models"][0]["reasons"]
    assert {m["model"] for m in code["models"]} == {CHEAP, CODER, FLAKY}  # text models only

    writing = await recommendations(user, prompt="Write a short poem about autumn")
    assert writing["category"] == "writing"
    cheapest = writing["models"][0]
    assert cheapest["model"] == CHEAP
    assert any(r.startswith("Cheapest here") for r in cheapest["reasons"])

    # The user's own ratings count: five stars for the coder's answer.
    events = await ask(user, "Write a story opening", [CODER])
    answer = by_model(events)[CODER][-1][1]["message_id"]
    assert (await user.post(f"/api/messages/{answer}/rating", {"stars": 5})).status == 200
    user.app[MODEL_STATS].invalidate()
    writing = await recommendations(user, prompt="Write a short poem about autumn", limit=5)
    coder = next(m for m in writing["models"] if m["model"] == CODER)
    assert "You rated it ★5.0 (1 answer)" in coder["reasons"]

    # The leaderboard in the category: a blind vote for the cheap model on writing.
    response = await user.post(
        "/api/comparisons", {"prompt": "Write a haiku", "models": [CHEAP, CODER]}
    )
    events = parse_sse(await response.text())
    comparison = events[0][1]["id"]
    texts: dict[str, str] = {}
    for name, data in events[1:-1]:
        if name == "delta":
            texts[data["label"]] = texts.get(data["label"], "") + data["text"]
    best = next(label for label, text in texts.items() if "tags" in text)  # the cheap one
    response = await user.post(
        f"/api/comparisons/{comparison}/vote", {"best": best, "category": "writing"}
    )
    assert response.status == 200, await response.text()
    writing = await recommendations(user, prompt="Write a short poem", category="writing")
    top = writing["models"][0]
    assert top["model"] == CHEAP and writing["guessed"] is False
    assert any(r.startswith("#1 on the leaderboard for writing") for r in top["reasons"])


async def test_recommendation_input_is_checked(user: ApiClient, make_client):
    for query, field in [
        ("", "prompt"),
        ("prompt=hi&category=poetry", "category"),
        ("prompt=hi&limit=0", "limit"),
        ("prompt=hi&limit=21", "limit"),
        ("prompt=hi&mine=1", "mine"),
        ("prompt=" + "a" * 2001, "prompt"),  # the first 2,000 characters are enough
    ]:
        response = await user.get(f"/api/models/recommendations?{query}")
        payload = await response.json()
        assert response.status == 422, (query, payload)
        assert field in payload["error"]["fields"], (query, payload)
    anonymous = await make_client()
    response = await anonymous.get("/api/models/recommendations?prompt=hello")
    assert response.status == 401


# -- latency and availability -------------------------------------------------------------------


async def test_the_catalogue_shows_latency_and_availability_from_real_traffic(user: ApiClient):
    models = {m["id"]: m for m in await user.get_json("/api/models")}
    assert models[CODER]["stats"] == {
        "requests": 0,
        "failures": 0,
        "availability": None,
        "p50_latency_ms": None,
        "p50_duration_ms": None,
    }
    for _ in range(3):
        await ask(user, "Write a Python add function", [CODER, FLAKY])
    user.app[MODEL_STATS].invalidate()
    models = {m["id"]: m for m in await user.get_json("/api/models")}
    coder, flaky = models[CODER]["stats"], models[FLAKY]["stats"]
    assert coder["requests"] == 3 and coder["failures"] == 0 and coder["availability"] == 1.0
    assert coder["p50_latency_ms"] is not None and coder["p50_duration_ms"] >= 0
    assert flaky == {**flaky, "requests": 3, "failures": 3, "availability": 0.0}
    assert flaky["p50_latency_ms"] is None

    page = await (await user.get("/models")).text()
    assert "Coder" in page and "100.0%" in page and "0.0%" in page

    # Recommendations weigh it: the failing model comes last, saying so.
    ranked = await recommendations(user, prompt="Explain why the sky is blue", limit=5)
    assert ranked["models"][-1]["model"] == FLAKY
    assert any(r.startswith("Failing often") for r in ranked["models"][-1]["reasons"])


async def test_composer_suggestions_are_a_fragment_that_changes_nothing(user: ApiClient):
    response = await user.get("/chat/model-suggestions?content=Fix+the+bug+in+my+Python+code")
    html = await response.text()
    assert response.status == 200
    assert f'data-apply-model="{CODER}"' in html and "Strong at code" in html
    short = await (await user.get("/chat/model-suggestions?content=hi")).text()
    assert "data-apply-model" not in short
    page = await (await user.get("/chat")).text()
    assert 'id="model-suggestions"' in page and "/chat/model-suggestions" in page
