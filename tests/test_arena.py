"""Blind comparisons: answers labelled A, B, C with the models hidden until the owner's one vote,
and the Bradley-Terry leaderboard their votes make."""

from __future__ import annotations

import json
import math

import pytest

from multinotes.arena.rating import fit, games_of, leaderboard
from multinotes.keys import DB
from multinotes.providers import Pricing
from multinotes.testing import ApiClient
from multinotes.wallet import service as wallet
from tests.support.pages import get_page
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.sse import parse_sse

#: Ids and names that must not appear in anything the client gets before the vote.
MODELS = {
    "script/zephyrine": ("Zephyrine Large", ["Answer", " one"], 1_000_000),
    "script/quokkatron": ("Quokkatron Mini", ["Answer", " two"], 3_000_000),
    "script/marmoset": ("Marmoset Pro", ["Answer", " three"], 7_000_000),
}
SECRETS = [s for model_id, (name, _, _) in MODELS.items() for s in (model_id, name)] + [
    "zephyrine",
    "quokkatron",
    "marmoset",
    "Scripted",
]


@pytest.fixture
def plugins():
    models = [
        ScriptedModel(
            model_id,
            Script(chunks=chunks),
            name=name,
            context_window=1000,
            max_output=100,
            # Different prices: a cost per answer would give the model away.
            pricing=Pricing(input_per_million=price, output_per_million=price),
        )
        for model_id, (name, chunks, price) in MODELS.items()
    ]
    return [("script", ScriptedPlugin(*models))]


async def post_json(api: ApiClient, path: str, body: dict) -> dict:
    response = await api.post(path, body)
    payload = await response.json()
    assert response.status == 200, payload
    return payload


def assert_blind(body: str) -> None:
    lowered = body.lower()
    for secret in SECRETS:
        assert secret.lower() not in lowered, f"{secret!r} leaked before the vote"


async def run_blind(api: ApiClient, **body) -> tuple[str, list]:
    response = await api.post("/api/comparisons", {"prompt": "Say something", **body})
    assert response.status == 200, await response.text()
    text = await response.text()
    assert_blind(text)
    events = parse_sse(text)
    assert events[0][0] == "comparison" and events[-1][0] == "end"
    return events[0][1]["id"], events


async def test_a_blind_run_streams_labels_only_and_the_vote_reveals_the_models(user: ApiClient):
    before = (await user.get_json("/api/wallet"))["balance"]
    comparison, events = await run_blind(user, models=list(MODELS))
    assert events[0][1]["labels"] == ["A", "B", "C"]
    texts: dict[str, str] = {}
    for name, data in events[1:-1]:
        assert set(data) <= {"label", "text", "status", "html", "message"}, (name, data)
        if name == "delta":
            texts[data["label"]] = texts.get(data["label"], "") + data["text"]
    assert sorted(texts.values()) == ["Answer one", "Answer three", "Answer two"]
    dones = {d["label"]: d for n, d in events if n == "done"}
    assert set(dones) == {"A", "B", "C"} and all(d["status"] == "complete" for d in dones.values())

    # Every page of it before the vote is blind too.
    response = await user.get(f"/api/comparisons/{comparison}")
    body = await response.text()
    assert response.status == 200
    assert_blind(body)
    seen = json.loads(body)
    assert [a["model"] for a in seen["answers"]] == [None, None, None]
    assert seen["revealed"] is False

    # The vote: B is best; the answer names every model, each with the text it wrote.
    voted = await post_json(
        user, f"/api/comparisons/{comparison}/vote", {"best": "B", "category": "writing"}
    )
    assert voted["revealed"] is True and voted["category"] == "writing"
    by_label = {a["label"]: a for a in voted["answers"]}
    assert {a["model"] for a in voted["answers"]} == set(MODELS)
    for label, answer in by_label.items():
        assert answer["rank"] == (1 if label == "B" else 2)
        chunks = MODELS[answer["model"]][1]
        assert "".join(chunks) in answer["html"] and texts[label] == "".join(chunks)

    # Paid like any generation: every hold settled, the ledger adds up.
    after = await user.get_json("/api/wallet")
    assert after["reserved"] == 0 and after["balance"] < before
    assert await wallet.ledger_sum(user.app[DB], user.user["id"]) == after["balance"]

    # The leaderboard has the winner first.
    board = await user.get_json("/api/leaderboard?scope=mine")
    assert board["votes"] == 1
    assert board["models"][0]["model"] == by_label["B"]["model"]
    assert board["models"][0]["low"] <= board["models"][0]["rating"] <= board["models"][0]["high"]


async def test_labels_are_shuffled_over_runs(user: ApiClient):
    firsts = set()
    for _ in range(8):
        comparison, _ = await run_blind(user, models=list(MODELS)[:2])
        shown = await post_json(
            user, f"/api/comparisons/{comparison}/vote", {"tie": True, "category": "other"}
        )
        firsts.add(shown["answers"][0]["model"])
    # 8 fair coin flips all landing the same way: 1 in 128.
    assert len(firsts) == 2


async def test_models_are_drawn_at_random_when_not_chosen(user: ApiClient):
    comparison, events = await run_blind(user, count=3)
    assert events[0][1]["labels"] == ["A", "B", "C"]
    voted = await post_json(
        user,
        f"/api/comparisons/{comparison}/vote",
        {"ranks": {"A": 1, "B": 1, "C": 3}, "category": "code"},
    )
    assert {a["model"] for a in voted["answers"]} == set(MODELS)
    assert [a["rank"] for a in voted["answers"]] == [1, 1, 3]


async def test_one_vote_per_comparison_and_only_its_owner_sees_or_votes(
    user: ApiClient, make_client
):
    comparison, _ = await run_blind(user, models=list(MODELS)[:2])
    other = await make_client()
    await other.register_and_login("other@example.com")
    await other.mark_verified()
    for response in (
        await other.get(f"/api/comparisons/{comparison}"),
        await other.post(f"/api/comparisons/{comparison}/vote", {"best": "A", "category": "code"}),
    ):
        assert response.status == 404
    first = await user.post(
        f"/api/comparisons/{comparison}/vote", {"best": "A", "category": "code"}
    )
    assert first.status == 200
    again = await user.post(
        f"/api/comparisons/{comparison}/vote", {"best": "B", "category": "writing"}
    )
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "already_voted"
    shown = await user.get_json(f"/api/comparisons/{comparison}")
    assert shown["category"] == "code"
    assert [a["rank"] for a in shown["answers"]] == [1, 2]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"best": "C", "category": "code"}, "best"),
        ({"best": "A", "category": "poetry"}, "category"),
        ({"ranks": {"A": 1}, "category": "code"}, "ranks"),
        ({"ranks": {"A": 1, "B": 7}, "category": "code"}, "ranks"),
        ({"best": "A", "tie": True, "category": "code"}, None),
    ],
)
async def test_bad_votes_are_refused_with_the_field_and_record_nothing(
    user: ApiClient, body, field
):
    comparison, _ = await run_blind(user, models=list(MODELS)[:2])
    response = await user.post(f"/api/comparisons/{comparison}/vote", body)
    assert response.status == 422
    error = (await response.json())["error"]
    if field:
        assert field in str(error.get("fields"))
    shown = await user.get_json(f"/api/comparisons/{comparison}")
    assert shown["voted_at"] is None and shown["revealed"] is False


async def test_bad_starts_are_refused_before_anything_is_held(user: ApiClient):
    before = await user.get_json("/api/wallet")
    for body, status in (
        ({"prompt": "x", "models": ["script/zephyrine"]}, 422),
        ({"prompt": "x", "models": ["script/zephyrine", "nope/none"]}, 422),
        ({"prompt": "x", "count": 4}, 422),  # only three models exist
        ({"prompt": "", "count": 2}, 422),
    ):
        response = await user.post("/api/comparisons", body)
        assert response.status == status, (body, await response.text())
    assert await user.get_json("/api/wallet") == before


async def test_leaderboard_filters_by_scope_category_and_date(user: ApiClient, make_client):
    a, b, _ = list(MODELS)
    for category in ("code", "code", "writing"):
        comparison, _ = await run_blind(user, models=[a, b])
        shown = await post_json(
            user, f"/api/comparisons/{comparison}/vote", {"tie": True, "category": category}
        )
        winner = next(x["label"] for x in shown["answers"] if x["model"] == a)
        assert winner
    everyone = await user.get_json("/api/leaderboard")
    assert everyone["votes"] == 3 and {m["model"] for m in everyone["models"]} == {a, b}
    assert (await user.get_json("/api/leaderboard?category=code"))["votes"] == 2
    assert (await user.get_json("/api/leaderboard?category=reasoning"))["models"] == []
    assert (await user.get_json("/api/leaderboard?since=2999-01-01T00:00:00Z"))["votes"] == 0
    assert (await user.get_json("/api/leaderboard?until=2000-01-01T00:00:00Z"))["votes"] == 0
    other = await make_client()
    await other.register_and_login("someone@example.com")
    assert (await other.get_json("/api/leaderboard?scope=mine"))["votes"] == 0
    assert (await other.get_json("/api/leaderboard?scope=all"))["votes"] == 3
    bad = await user.get("/api/leaderboard?category=poetry")
    assert bad.status == 422


# -- the rating math on small known data ----------------------------------------------------
def test_a_vote_becomes_pairwise_games_with_ties_as_halves():
    vote = [("x", 1), ("y", 2), ("z", 2)]
    assert games_of([vote]) == [("x", "y", 1.0), ("x", "z", 1.0), ("y", "z", 0.5)]


def test_bradley_terry_matches_the_closed_form_for_two_models():
    # 3 wins to 1: the maximum-likelihood strength ratio is 3, i.e. 400*log10(3) Elo points.
    ratings = fit([("x", "y", 1.0)] * 3 + [("x", "y", 0.0)], prior=0)
    assert math.isclose(ratings["x"] - ratings["y"], 400 * math.log10(3), abs_tol=0.01)
    assert math.isclose((ratings["x"] + ratings["y"]) / 2, 1000, abs_tol=0.01)


def test_bradley_terry_on_a_consistent_three_model_set():
    # Strengths 4 : 2 : 1 with games in exactly those proportions recover them.
    games = (
        [("a", "b", 1.0)] * 2
        + [("a", "b", 0.0)]  # 4 vs 2: a wins 2 of 3
        + [("b", "c", 1.0)] * 2
        + [("b", "c", 0.0)]  # 2 vs 1
        + [("a", "c", 1.0)] * 4
        + [("a", "c", 0.0)]  # 4 vs 1
    )
    ratings = fit(games, prior=0)
    step = 400 * math.log10(2)
    assert math.isclose(ratings["a"] - ratings["b"], step, abs_tol=0.5)
    assert math.isclose(ratings["b"] - ratings["c"], step, abs_tol=0.5)


def test_the_leaderboard_orders_by_rating_with_intervals_around_it():
    votes = [[("x", 1), ("y", 2)]] * 6 + [[("y", 1), ("x", 2)]] * 2 + [[("x", 1), ("y", 1)]]
    table = leaderboard(votes, seed=1)
    assert [r.model_id for r in table] == ["x", "y"]
    x = table[0]
    assert x.low < x.rating < x.high and x.games == 9 and x.wins == 6.5
    # Reproducible: the same votes give the same table.
    assert leaderboard(votes, seed=1) == table
    # An unbeaten model stays finite (the prior).
    assert all(math.isfinite(r.rating) for r in leaderboard([[("x", 1), ("y", 2)]] * 5))


# -- the pages ------------------------------------------------------------------------------
async def test_the_comparison_page_is_blind_until_the_vote_form_is_sent(user: ApiClient):
    start = await user.get("/comparisons")
    assert start.status == 200 and 'id="arena-form"' in await start.text()
    comparison, _ = await run_blind(user, models=list(MODELS))
    page = await user.get(f"/comparisons/{comparison}")
    html = await page.text()
    assert page.status == 200
    assert_blind(html)
    assert 'id="arena-vote"' in html and "Answer A" in html and "Answer C" in html
    assert f'name="csrf_token" value="{user.csrf}"' in html
    voted = await user.client.post(
        f"/comparisons/{comparison}/vote",
        data={"csrf_token": user.csrf or "", "choice": "C", "category": "reasoning"},
        allow_redirects=False,
    )
    assert voted.status == 303 and voted.headers["Location"] == f"/comparisons/{comparison}"
    shown = await user.get_json(f"/api/comparisons/{comparison}")
    winner = next(a["model"] for a in shown["answers"] if a["label"] == "C")
    assert shown["category"] == "reasoning" and shown["answers"][2]["rank"] == 1
    revealed = await (await user.get(f"/comparisons/{comparison}")).text()
    assert MODELS[winner][0] in revealed and 'id="arena-vote"' not in revealed
    board = await (await user.get("/leaderboard?scope=mine&category=reasoning")).text()
    first_row = board.split("<tbody>")[1].split("</tr>")[0]
    assert MODELS[winner][0] in first_row
    # A second form vote changes nothing.
    again = await user.client.post(
        f"/comparisons/{comparison}/vote",
        data={"csrf_token": user.csrf or "", "choice": "A", "category": "code"},
        allow_redirects=False,
    )
    assert again.status == 303
    assert (await user.get_json(f"/api/comparisons/{comparison}"))["category"] == "reasoning"


async def test_the_leaderboard_page_names_a_bad_date(user: ApiClient):
    page = await user.get("/leaderboard?from=yesterday&category=poetry")
    html = await page.text()
    assert page.status == 200
    assert 'aria-invalid="true"' in html and "Use a date like" in html


# -- the blind conversation is no chat conversation -----------------------------------------
async def _conversation_and_answers(api: ApiClient, comparison_id: str) -> tuple[str, list[str]]:
    """What the client is never told: the comparison's conversation and its answers' ids."""
    from sqlalchemy import select

    from multinotes.arena.models import ArenaComparison, ArenaEntry

    async with api.app[DB].read() as session:
        conversation = await session.scalar(
            select(ArenaComparison.conversation_id).where(ArenaComparison.id == comparison_id)
        )
        answers = list(
            await session.scalars(
                select(ArenaEntry.message_id).where(ArenaEntry.comparison_id == comparison_id)
            )
        )
    assert conversation and answers
    return conversation, answers


async def test_no_chat_path_lists_shows_or_continues_a_blind_comparison(
    user: ApiClient, make_client
):
    """Issue #18: the comparison runs as a conversation, but no chat path (sidebar, list,
    search, palette, page, tree, message stream, regenerate, export, share) knows it, before
    the vote or after; it lives under /comparisons only."""
    # An ordinary chat alongside it, to show the same paths do answer for one.
    chat = await user.post(
        "/api/messages",
        {"content": "Tell me about Xylophonic things", "models": [next(iter(MODELS))]},
    )
    assert chat.status == 200
    plain = parse_sse(await chat.text())[0][1]["conversation_id"]

    response = await user.post(
        "/api/comparisons",
        {"prompt": "Compare Xylophonic answers", "models": list(MODELS)},
    )
    assert response.status == 200
    comparison = parse_sse(await response.text())[0][1]["id"]
    conversation, answers = await _conversation_and_answers(user, comparison)
    bob = await make_client()
    await bob.register_and_login("bob@example.com")

    async def walk() -> None:
        # Lists: the API (plain, by tool, by title), the archive, the sidebar and its page.
        for query in ("", "?tool=arena", "?q=Xylophonic", "?archived=true", "?pinned=false"):
            listed = await user.get_json(f"/api/conversations{query}")
            assert conversation not in {c["id"] for c in listed["conversations"]}, query
            assert_blind(json.dumps(listed))
        assert plain in {
            c["id"] for c in (await user.get_json("/api/conversations"))["conversations"]
        }
        for path in ("/chat", "/chat?q=Xylophonic", f"/chat/{plain}"):
            page = await user.get(path)
            html = await page.text()
            assert page.status == 200, path
            assert conversation not in html and "Compare Xylophonic" not in html, path
        # Search (both kinds: titles and every answer) and the jump-to palette.
        for mode in ("text", "hybrid"):
            found = await user.get_json(f"/api/search?q=Xylophonic&record=false&mode={mode}")
            assert found["results"], mode  # the plain chat is found...
            assert all(r.get("conversation_id", r["id"]) != conversation for r in found["results"])
            assert all(r["id"] not in answers for r in found["results"])
            assert_blind(json.dumps([r for r in found["results"] if r["id"] != plain]))
        palette = await user.get_json("/api/palette?q=Compare")
        assert conversation not in json.dumps(palette)
        # Reading it: the page, the tree, each answer's stream, its exports.
        for path in (
            f"/chat/{conversation}",
            f"/api/conversations/{conversation}",
            f"/shared/conversations/{conversation}",
            f"/api/messages/{conversation}/export?format=markdown",
            *[f"/api/messages/{answer}/stream" for answer in answers],
            *[f"/api/messages/{answer}/export?format=markdown" for answer in answers],
        ):
            got = await user.get(path)
            body = await got.text()
            assert got.status == 404, (path, got.status, body[:300])
            assert_blind(body)
        exported = await user.post(
            "/api/exports", {"format": "html", "conversation_id": conversation}
        )
        assert exported.status == 404, await exported.text()
        # Writing in it: a prompt, a regenerated answer, a rename, a rating, a share.
        for method, path, body in (
            (
                "post",
                f"/api/conversations/{conversation}/messages",
                {"content": "Who are you?", "models": [next(iter(MODELS))]},
            ),
            ("post", f"/api/messages/{answers[0]}/regenerate", {}),
            ("patch", f"/api/conversations/{conversation}", {"title": "Peek"}),
            ("post", f"/api/messages/{answers[0]}/rating", {"stars": 5}),
            (
                "post",
                "/api/shares",
                {
                    "object_type": "conversation",
                    "object_id": conversation,
                    "email": "bob@example.com",
                },
            ),
            ("delete", f"/api/conversations/{conversation}", None),
        ):
            got = (
                await getattr(user, method)(path, body)
                if body is not None
                else await user.delete(path)
            )
            text = await got.text()
            assert got.status == 404, (method, path, got.status, text[:300])
            assert_blind(text)
        assert (await bob.get(f"/shared/conversations/{conversation}")).status == 404

    await walk()
    # The comparison itself is untouched by all that, and still blind.
    shown = await user.get_json(f"/api/comparisons/{comparison}")
    assert shown["revealed"] is False and len(shown["answers"]) == 3
    voted = await post_json(
        user, f"/api/comparisons/{comparison}/vote", {"best": "A", "category": "other"}
    )
    assert voted["revealed"] is True
    # After the vote it stays a comparison (its page names the models), never a chat.
    await walk()


async def test_a_blind_comparisons_tool_cannot_be_claimed_by_a_chat(user: ApiClient):
    for path, body in (
        ("/api/conversations", {"tool": "arena"}),
        ("/api/messages", {"content": "hi", "models": [next(iter(MODELS))], "tool": "arena"}),
    ):
        response = await user.post(path, body)
        assert response.status == 422, await response.text()
        assert "tool" in (await response.json())["error"]["fields"]
    assert (await user.get_json("/api/conversations"))["conversations"] == []


async def test_the_footer_and_the_palette_lead_to_comparisons_and_the_leaderboard(user: ApiClient):
    for path, current in (
        ("/notes", None),
        ("/comparisons", "Compare"),
        ("/leaderboard", "Leaderboard"),
    ):
        page = await get_page(user, path)
        links = {(e.attrs.get("href"), e.words) for e in page.find("a")}
        assert {("/comparisons", "Compare"), ("/leaderboard", "Leaderboard")} <= links, path
        marked = [e.words for e in page.find("a", aria_current="page")]
        if current:
            assert current in marked, path
        else:
            assert not {"Compare", "Leaderboard"} & set(marked)
    for typed, url in (("compare", "/comparisons"), ("leader", "/leaderboard")):
        items = (await user.get_json(f"/api/palette?q={typed}"))["items"]
        assert url in {i["url"] for i in items if i["kind"] == "action"}, typed
