"""Search: full text (SQLite FTS5 / InnoDB FULLTEXT) with ranking and highlighted snippets,
semantic search with offline embeddings computed in the background, hybrid ranking (the
default), filters by kind, folder, model and date, recent searches and the command palette.

Only what the user may see is ever found: their own items and what others shared with them,
never the trash. Every test runs in both runtime modes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from multinotes.app import create_app
from multinotes.db import new_id
from multinotes.keys import DB, TASKS
from multinotes.notes.models import Document
from multinotes.notes.service import create_document, purge_trash
from multinotes.search import service as search_service
from multinotes.search.tasks import embed_pending, search_embed, search_sweep
from multinotes.search.vectors import VECTORS
from multinotes.settings import Settings
from multinotes.testing import ApiClient, app_client
from tests.support.statements import Statements
from tests.support.waiting import eventually


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Searching as one types is many requests; rate limits have their own tests.
    return make_settings(rate_limits_enabled=False)


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    await api.mark_verified()
    # The demo models answer without a key (production mode starts with the plugin off).
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    return api


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def note(api: ApiClient, title: str, content: str = "", folder_id: str | None = None) -> str:
    body: dict[str, Any] = {"title": title, "content": content}
    if folder_id:
        body["folder_id"] = folder_id
    response = await api.post("/api/documents", body)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def folder(api: ApiClient, name: str, parent_id: str | None = None) -> str:
    response = await api.post("/api/folders", {"name": name, "parent_id": parent_id})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def ask(api: ApiClient, prompt: str, models: tuple[str, ...] = ("demo/echo",)) -> dict:
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": prompt, "models": list(models)}
    )
    assert response.status == 200
    await response.text()
    return dict(await api.get_json(f"/api/conversations/{conversation}"))


async def many_notes(api: ApiClient, notes: list[tuple[str, str]]) -> None:
    """Store (title, content) notes for the user at once (thousands take a moment this way)."""
    assert api.user is not None
    now = datetime.now(UTC)
    async with api.app[DB].transaction() as session:
        await session.execute(
            insert(Document),
            [
                {
                    "id": new_id(),
                    "user_id": api.user["id"],
                    "title": title,
                    "content": content,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for title, content in notes
            ],
        )


async def find(api: ApiClient, q: str, status: int = 200, **params: Any) -> Any:
    query = urlencode({"q": q, "record": "false", **params})
    return await api.get_json(f"/api/search?{query}", status=status)


async def titles(api: ApiClient, q: str, **params: Any) -> list[str]:
    return [r["title"] for r in (await find(api, q, **params))["results"]]


async def embedded(api: ApiClient) -> None:
    """Bring every embedding up to date now (what the periodic sweep does)."""
    await embed_pending(api.app)


# -- full text ----------------------------------------------------------------------------------


async def test_full_text_ranks_title_matches_first_and_marks_the_words(user: ApiClient):
    await note(user, "Groceries", "Buy flour, eggs and a sourdough loaf on the way home.")
    await note(user, "Sourdough starter", "Feed the sourdough starter with flour and water daily.")
    await note(user, "Holidays", "Pack sunscreen.")

    body = await find(user, "sourdough", mode="text")
    results = body["results"]
    assert [r["title"] for r in results] == ["Sourdough starter", "Groceries"]
    assert results[0]["score"] > results[1]["score"]
    assert "<mark>sourdough</mark>" in results[1]["snippet"].lower()
    first = results[0]
    assert first["kind"] == "note" and first["url"] == f"/notes/{first['id']}"
    assert first["shared"] is False and first["folder_id"] is None
    assert body["next_cursor"] is None and body["mode"] == "text"


async def test_on_mariadb_a_kinds_page_and_its_snippet_texts_are_one_read(
    user: ApiClient, mode: str
):
    """Issue #17: the rows of a kind's best hits carry the texts their snippets are cut from;
    no second read of the same rows by id."""
    if mode != "production":
        pytest.skip("SQLite cuts its snippets in the FTS5 query itself")
    await note(user, "Sourdough starter", "Feed the sourdough starter with flour and water.")
    await note(user, "Groceries", "Buy flour, eggs and a sourdough loaf.")
    with Statements(user.app) as statements:
        body = await find(user, "sourdough", mode="text", kind="note")
    assert [r["title"] for r in body["results"]] == ["Sourdough starter", "Groceries"]
    assert all("<mark>" in r["snippet"].lower() for r in body["results"])
    # The best matches' ids in the index's order, then their rows with the texts: two reads.
    reads = [s for s in statements if "FROM documents" in s]
    assert len(reads) == 2, reads


async def test_snippets_are_escaped_html_with_only_marks_as_markup(user: ApiClient):
    await note(
        user,
        "Escaping <em>titles</em>",
        'The pumpernickel <script>alert("x")</script> & rye <img src=x onerror=alert(1)>',
    )
    [result] = (await find(user, "pumpernickel", mode="text"))["results"]
    snippet = result["snippet"]
    assert "<mark>pumpernickel</mark>" in snippet
    assert "<script>" not in snippet and "<img" not in snippet
    assert "&lt;script&gt;" in snippet and "&amp; rye" in snippet
    # The title is plain text in JSON: whoever renders it escapes it.
    assert result["title"] == "Escaping <em>titles</em>"


async def test_query_syntax_phrases_exclusions_and_prefixes(user: ApiClient):
    await note(user, "Cats", "My cat loves to chase mice in the garden.")
    await note(user, "Dogs", "The dog would rather chase the mail carrier than mice.")
    await note(user, "Accents", "Un café crème au lait, s'il vous plaît.")

    assert await titles(user, '"chase mice"', mode="text") == ["Cats"]
    assert sorted(await titles(user, "chase mice", mode="text")) == ["Cats", "Dogs"]
    assert await titles(user, "chase -dog", mode="text") == ["Cats"]
    assert await titles(user, "garde*", mode="text") == ["Cats"]
    # Accents are folded both ways, and case does not matter.
    assert await titles(user, "CAFE creme", mode="text") == ["Accents"]
    assert await titles(user, "plaît", mode="text") == ["Accents"]


async def test_any_query_text_is_safe(user: ApiClient):
    await note(user, "Plain", "Some plain words about AND, OR and NOT in a note.")
    nasty = [
        '"',
        '"""',
        "*",
        "-",
        "--",
        "+",
        "-plain",
        "plain*",
        "NEAR(plain words)",
        "title:plain",
        "^plain",
        "(plain OR words",
        "AND OR NOT",
        "plain AND",
        "'; DROP TABLE documents; --",
        "\\",
        "%_%",
        "😀 plain",
        "日本語",
        "a" * 200,
        "x" * 65 + " plain",
        "@plain ~words <words >plain",
    ]
    for q in nasty:
        for mode in ("text", "semantic", "hybrid"):
            body = await find(user, q, mode=mode)
            assert isinstance(body["results"], list), (q, mode)
    assert await titles(user, "plain AND", mode="text") == ["Plain"]
    assert (await find(user, "-plain", mode="text"))["results"] == []
    assert (await find(user, "   ", mode="hybrid"))["results"] == []
    assert (await find(user, "", mode="text"))["results"] == []


async def test_short_words_and_common_words_are_found(user: ApiClient):
    # InnoDB never indexes words under three letters and skips stopwords: both still work.
    await note(user, "AI ethics", "What AI can and cannot decide for the people.")
    await note(user, "Ethics of gardening", "Compost and the care of soil.")
    assert await titles(user, "ai ethics", mode="text") == ["AI ethics"]
    assert await titles(user, "ai", mode="text") == ["AI ethics"]
    assert sorted(await titles(user, "the ethics", mode="text")) == [
        "AI ethics",
        "Ethics of gardening",
    ]


async def test_every_kind_is_searched_and_can_be_chosen(user: ApiClient):
    tree = await ask(user, "Explain photosynthesis to a child")
    prompt = next(m for m in tree["messages"] if m["role"] == "user")
    answer = next(m for m in tree["messages"] if m["role"] == "assistant")
    document = await note(user, "Photosynthesis", "Plants turn light into sugar.")

    results = (await find(user, "photosynthesis", mode="text"))["results"]
    by_id = {r["id"]: r for r in results}
    assert set(by_id) == {tree["id"], prompt["id"], answer["id"], document}
    assert by_id[tree["id"]]["kind"] == "conversation"
    assert by_id[tree["id"]]["url"] == f"/chat/{tree['id']}"
    message = by_id[answer["id"]]
    assert message["kind"] == "message" and message["model"] == "demo/echo"
    assert message["conversation_id"] == tree["id"]
    assert message["url"] == f"/chat/{tree['id']}?leaf={answer['id']}"
    assert message["title"] == tree["title"]
    assert "<mark>photosynthesis</mark>" in message["snippet"].lower()

    for kind, expected in (
        ("note", {document}),
        ("conversation", {tree["id"]}),
        ("message", {prompt["id"], answer["id"]}),
    ):
        found = (await find(user, "photosynthesis", mode="text", kind=kind))["results"]
        assert {r["id"] for r in found} == expected, kind


async def test_folder_filter_covers_subfolders(user: ApiClient):
    recipes = await folder(user, "Recipes")
    bread = await folder(user, "Bread", recipes)
    elsewhere = await folder(user, "Elsewhere")
    await note(user, "Rye loaf", "A dense rye loaf.", bread)
    await note(user, "Rye soup", "Rye bread soup.", recipes)
    await note(user, "Rye whiskey", "Not a loaf.", elsewhere)
    await note(user, "Rye at the root", "Root level rye.")

    assert sorted(await titles(user, "rye", mode="text", folder_id=recipes)) == [
        "Rye loaf",
        "Rye soup",
    ]
    assert await titles(user, "rye", mode="text", folder_id=bread) == ["Rye loaf"]
    assert len(await titles(user, "rye", mode="text")) == 4


async def test_model_filter(user: ApiClient):
    tree = await ask(user, "Compare quicksort and mergesort", ("demo/echo", "demo/reverse"))
    echo = next(m for m in tree["messages"] if m["model"] == "demo/echo")
    saved = await user.post(f"/api/messages/{echo['id']}/save", {})
    document = (await saved.json())["document_id"]
    await note(user, "Quicksort by hand", "quicksort notes typed by me")

    found = (await find(user, "quicksort", mode="text", model="demo/echo"))["results"]
    assert {(r["kind"], r.get("model")) for r in found} == {
        ("message", "demo/echo"),
        ("note", "demo/echo"),
        ("conversation", None),
    }
    assert document in {r["id"] for r in found}
    reverse = (await find(user, "quicksort", mode="text", model="demo/reverse"))["results"]
    assert {r["kind"] for r in reverse} == {"message", "conversation"}
    assert (await find(user, "quicksort", mode="text", model="nobody/none"))["results"] == []


async def test_date_filter(user: ApiClient):
    old = await note(user, "Old harvest", "harvest of last year")
    await note(user, "New harvest", "harvest of this year")
    async with user.app[DB].transaction() as session:
        await session.execute(
            update(Document)
            .where(Document.id == old)
            .values(updated_at=datetime(2020, 5, 17, 12, 0, tzinfo=UTC))
        )
    assert await titles(user, "harvest", mode="text", date_to="2020-05-17") == ["Old harvest"]
    assert await titles(user, "harvest", mode="text", date_from="2020-05-18") == ["New harvest"]
    assert await titles(
        user, "harvest", mode="text", date_from="2020-05-17T11:00:00", date_to="2020-05-17T13:00"
    ) == ["Old harvest"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert await titles(user, "harvest", mode="text", date_from=tomorrow) == []


async def test_trashed_notes_are_never_found(user: ApiClient):
    box = await folder(user, "Box")
    loose = await note(user, "Loose marmalade", "marmalade recipe")
    await note(user, "Boxed marmalade", "marmalade in a box", box)
    await embedded(user)
    assert len(await titles(user, "marmalade")) == 2

    assert (await user.delete(f"/api/documents/{loose}")).status == 204
    assert (await user.delete(f"/api/folders/{box}")).status == 204
    for mode in ("text", "semantic", "hybrid"):
        assert await titles(user, "marmalade", mode=mode) == [], mode
    palette = await user.get_json("/api/palette?q=marmalade")
    assert [i for i in palette["items"] if i["kind"] != "action"] == []

    assert (await user.post(f"/api/documents/{loose}/restore")).status == 200
    assert await titles(user, "marmalade", mode="text") == ["Loose marmalade"]


async def test_an_edit_is_searched_at_once(user: ApiClient):
    document = await note(user, "Draft", "about walruses")
    response = await user.patch(
        f"/api/documents/{document}", {"version": 1, "content": "about narwhals"}
    )
    assert response.status == 200
    assert await titles(user, "narwhals", mode="text") == ["Draft"]
    assert await titles(user, "walruses", mode="text") == []


async def test_a_lost_sqlite_index_is_rebuilt_when_the_app_starts(
    user: ApiClient, settings: Settings, mode: str
):
    if mode != "embedded":
        pytest.skip("InnoDB keeps its FULLTEXT indexes itself")
    # As a later migration that rebuilds the table in batch mode would: its triggers are gone.
    async with user.app[DB].transaction() as session:
        for trigger in ("documents_fts_ai", "documents_fts_au"):
            await session.execute(text(f"DROP TRIGGER {trigger}"))
    await note(user, "Medlar jelly", "medlar")
    assert await titles(user, "medlar", mode="text") == []

    async with app_client(create_app(settings)) as restarted:
        await restarted.login("admin@example.com")
        assert await titles(restarted, "medlar", mode="text") == ["Medlar jelly"]
        await note(restarted, "Quince paste", "quince")
        assert await titles(restarted, "quince", mode="text") == ["Quince paste"]


# -- who sees what ------------------------------------------------------------------------------


async def test_other_peoples_items_are_never_found(user: ApiClient, make_client: Any):
    await note(user, "Secret zeppelin plans", "zeppelin blueprint")
    await ask(user, "zeppelin history")
    await folder(user, "Zeppelin folder")
    await embedded(user)
    other = await person(make_client, "other@example.com")
    for mode in ("text", "semantic", "hybrid"):
        assert (await find(other, "zeppelin", mode=mode))["results"] == [], mode
    palette = await other.get_json("/api/palette?q=zeppelin")
    assert [i for i in palette["items"] if i["kind"] != "action"] == []
    # A folder id of someone else's is no filter: it is not found.
    owned = (await user.get_json("/api/folders"))["folders"][0]["id"]
    response = await other.get(f"/api/search?q=zeppelin&folder_id={owned}")
    assert response.status == 404


async def test_own_matches_are_found_however_many_better_ones_others_have(
    user: ApiClient, make_client: Any
):
    # Many notes that rank far higher (the word in the title, and over and over).
    await many_notes(user, [(f"Walnut {n}", "walnut " * 20) for n in range(300)])
    other = await person(make_client, "other@example.com")
    mine = await note(other, "Shopping", "Long list: apples, pears, bread, milk and one walnut.")
    assert [r["id"] for r in (await find(other, "walnut", mode="text"))["results"]] == [mine]
    assert len((await find(user, "walnut", mode="text", limit=50))["results"]) == 50


async def test_a_title_match_beyond_the_best_content_matches_still_comes_first(
    user: ApiClient, make_client: Any, monkeypatch: pytest.MonkeyPatch
):
    # MySQL reads a window of the best matches by relevance, then weighs titles in: a note
    # whose title holds the word but whose content barely does lies outside that window.
    monkeypatch.setattr("multinotes.search.fulltext.WINDOW", 10)
    # A third of the notes (so the word weighs something), three times each.
    await many_notes(
        user,
        [
            (
                f"Tree {n}",
                ("pecan " * 3 if n % 3 == 0 else "") + "orchard rows and harvest crates " * 10,
            )
            for n in range(300)
        ],
    )
    pie = await note(user, "Pecan pie", "Bake it slowly. One pecan on top.")
    tart = await note(user, "Pecan tart", "pecan pecan pecan")
    assert (await user.delete(f"/api/documents/{tart}")).status == 204
    other = await person(make_client, "other@example.com")
    await note(other, "Pecan praline", "pecan pecan")

    results = (await find(user, "pecan", mode="text", limit=5))["results"]
    assert [r["id"] for r in results][:1] == [pie]
    assert len(results) == 5
    assert all(r["title"].startswith("Tree") for r in results[1:])
    assert results[0]["score"] > results[1]["score"]
    # An exclusion the content holds leaves the title match out.
    results = (await find(user, "pecan -bake", mode="text", limit=5))["results"]
    assert pie not in [r["id"] for r in results] and len(results) == 5
    # A two-letter word alone (MySQL: REGEXP over titles): only what the user may see.
    await note(user, "UX notes", "")
    await note(user, "ux review", "")
    await note(other, "UX of others", "")
    assert sorted(await titles(user, "ux", mode="text")) == ["UX notes", "ux review"]


async def test_shared_notes_and_conversations_are_found(user: ApiClient, make_client: Any):
    colleague = await person(make_client, "colleague@example.com")
    shared_folder = await folder(user, "Team")
    in_folder = await note(user, "Quarterly kumquat report", "kumquat sales", shared_folder)
    direct = await note(user, "Kumquat jam", "kumquat jam recipe")
    await note(user, "Private kumquat diary", "kumquat thoughts")
    tree = await ask(user, "kumquat facts")
    await embedded(user)
    assert (await find(colleague, "kumquat"))["results"] == []

    shares = []
    for object_type, object_id in (
        ("folder", shared_folder),
        ("document", direct),
        ("conversation", tree["id"]),
    ):
        response = await user.post(
            "/api/shares",
            {
                "object_type": object_type,
                "object_id": object_id,
                "email": "colleague@example.com",
                "role": "viewer",
            },
        )
        assert response.status == 201, await response.text()
        shares.append((await response.json())["id"])

    for mode in ("text", "semantic", "hybrid"):
        results = (await find(colleague, "kumquat", mode=mode))["results"]
        found = {r["id"] for r in results}
        assert {in_folder, direct, tree["id"]} <= found, mode
        assert all(r["shared"] for r in results)
        urls = {r["id"]: r["url"] for r in results}
        assert urls[direct] == f"/notes/{direct}"
        assert urls[tree["id"]] == f"/shared/conversations/{tree['id']}"
        assert "Private kumquat diary" not in {r["title"] for r in results}
    palette = await colleague.get_json("/api/palette?q=kumquat")
    assert {i["id"] for i in palette["items"]} >= {in_folder, direct, tree["id"]}
    team = (await colleague.get_json("/api/palette?q=team"))["items"]
    assert [(i["id"], i["hint"], i["url"]) for i in team if i["kind"] == "folder"] == [
        (shared_folder, "Folder · shared", f"/shared/folders/{shared_folder}")
    ]
    later = await note(user, "Kumquat added later", "kumquat again", shared_folder)
    assert later in {r["id"] for r in (await find(colleague, "kumquat", mode="text"))["results"]}

    for share in shares:
        assert (await user.delete(f"/api/shares/{share}")).status == 204
    assert (await find(colleague, "kumquat"))["results"] == []


# -- semantic and hybrid --------------------------------------------------------------------------


async def test_semantic_search_finds_a_paraphrase_with_no_shared_word(user: ApiClient):
    await note(user, "Pets", "My cat loves to chase mice around the garden.")
    await note(user, "Finance", "Quarterly revenue grew by ten percent thanks to strong sales.")
    await note(user, "Travel", "The train to Paris leaves at noon from the main station.")
    await embedded(user)

    assert await titles(user, "feline hunting rodents", mode="text") == []
    found = (await find(user, "feline hunting rodents", mode="semantic"))["results"]
    assert found[0]["title"] == "Pets"
    assert found[0]["score"] > 0.25
    assert "Finance" not in [r["title"] for r in found]
    assert (await find(user, "company earnings increased", mode="semantic"))["results"][0][
        "title"
    ] == "Finance"
    # Hybrid (the default) finds it too, from the semantic ranking alone.
    assert (await find(user, "rail journey to France"))["results"][0]["title"] == "Travel"


async def test_semantic_search_sees_every_change_after_caching_vectors(user: ApiClient):
    pets = await note(user, "Pets", "My cat loves to chase mice around the garden.")
    await note(user, "Finance", "Quarterly revenue grew by ten percent thanks to strong sales.")
    await embedded(user)
    assert (await titles(user, "feline hunting rodents", mode="semantic"))[:1] == ["Pets"]

    # A new note, an edit that changes the meaning, a note deleted for good.
    await note(user, "Trains", "The train to Paris leaves at noon from the main station.")
    response = await user.patch(
        f"/api/documents/{pets}",
        {"version": 1, "content": "Sourdough bread needs flour, water and a hot oven."},
    )
    assert response.status == 200
    await embedded(user)
    assert (await titles(user, "rail journey to France", mode="semantic"))[:1] == ["Trains"]
    assert (await titles(user, "baking a loaf", mode="semantic"))[:1] == ["Pets"]
    assert "Pets" not in await titles(user, "feline hunting rodents", mode="semantic")

    assert (await user.delete(f"/api/documents/{pets}")).status == 204
    assert "Pets" not in await titles(user, "baking a loaf", mode="semantic")
    await purge_trash(user.app[DB], datetime.now(UTC) + timedelta(days=1))
    assert "Pets" not in await titles(user, "baking a loaf", mode="semantic")


async def test_semantic_search_without_room_to_cache_reads_the_database(user: ApiClient):
    await note(user, "Pets", "My cat loves to chase mice around the garden.")
    await embedded(user)
    user.app[VECTORS].budget = 0
    assert (await titles(user, "feline hunting rodents", mode="semantic"))[:1] == ["Pets"]


async def test_embeddings_are_computed_in_the_background(user: ApiClient):
    await note(user, "Orchard", "Apple trees need pruning in late winter.")

    async def found() -> bool:
        results = (await find(user, "cutting back fruit trees", mode="semantic"))["results"]
        return [r["title"] for r in results][:1] == ["Orchard"]

    await eventually(found, timeout=20)

    tree = await ask(user, "Which volcano erupted in Iceland?")

    async def answered() -> bool:
        results = await find(user, "Icelandic eruption", mode="semantic", kind="message")
        return tree["id"] in {r["conversation_id"] for r in results["results"]}

    await eventually(answered, timeout=20)


async def test_the_periodic_sweep_embeds_what_no_task_was_queued_for(user: ApiClient):
    assert user.user is not None
    # Written by a path that queues nothing (as a bulk import would be).
    await create_document(
        user.app[DB],
        user.user["id"],
        title="Orchard",
        content="Apple trees need pruning in late winter.",
        folder_id=None,
    )
    assert "core.search_sweep" in user.app[TASKS].names()  # scheduled every minute
    # (The scheduler may run it first at a minute's turn: either way it is this function.)
    await search_sweep(user.app)
    assert (await titles(user, "cutting back fruit trees", mode="semantic"))[:1] == ["Orchard"]
    assert await search_sweep(user.app) == 0  # nothing left to do


async def test_a_users_job_looks_only_at_recent_changes_and_the_sweep_at_everything(
    user: ApiClient,
):
    """A user's job runs after each burst of changes; it reads what changed in the last hour,
    not all the user has (thousands of notes and answers, once a second while they work)."""
    assert user.user is not None
    db = user.app[DB]
    old_note = await create_document(
        db, user.user["id"], title="Orchard", content="Apple trees need pruning.", folder_id=None
    )
    old_chat = await ask(user, "Which volcano erupted in Iceland?")
    await embed_pending(user.app)  # everything so far is embedded
    long_ago = datetime.now(UTC) - timedelta(days=2)
    async with db.transaction() as session:  # pretend a task was lost two days ago
        await session.execute(
            update(Document)
            .where(Document.id == old_note.id)
            .values(content="Pear trees too.", updated_at=long_ago)
        )
        await session.execute(
            text("UPDATE conversations SET updated_at = :t WHERE id = :id"),
            {"t": long_ago.replace(tzinfo=None), "id": old_chat["id"]},
        )
        await session.execute(
            text("UPDATE search_embeddings SET source_updated_at = :t WHERE document_id = :id"),
            {"t": (long_ago - timedelta(days=1)).replace(tzinfo=None), "id": old_note.id},
        )
        await session.execute(
            text("DELETE FROM search_embeddings WHERE conversation_id = :id"),
            {"id": old_chat["id"]},
        )
    fresh = await note(user, "Beehive", "Bees swarm in spring.")

    assert await search_embed(user.app, user.user["id"]) == 1  # the new note only
    assert await search_sweep(user.app) == 2  # the stale note and the conversation's title
    assert await search_sweep(user.app) == 0
    assert fresh in {
        r["id"] for r in (await find(user, "honey insects", mode="semantic"))["results"]
    }


async def test_a_note_moved_without_a_change_to_its_text_is_not_embedded_again(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    from multinotes.search import semantic

    orchard = await note(user, "Orchard", "Apple trees need pruning in late winter.")
    await embedded(user)
    embedded_texts: list[str] = []
    original = semantic.embed

    async def counting(texts: list[str]) -> Any:
        embedded_texts.extend(texts)
        return await original(texts)

    monkeypatch.setattr(semantic, "embed", counting)
    garden = await folder(user, "Garden")
    moved = await user.patch(f"/api/documents/{orchard}", {"version": 1, "folder_id": garden})
    assert moved.status == 200, await moved.text()
    await embedded(user)
    assert embedded_texts == []
    assert (await titles(user, "cutting back fruit trees", mode="semantic"))[:1] == ["Orchard"]
    assert await embed_pending(user.app) == 0  # and it is up to date

    embedded_texts.clear()  # (the query above was embedded too)
    edited = await user.patch(f"/api/documents/{orchard}", {"version": 1, "content": "Plums."})
    assert edited.status == 200
    await embedded(user)
    assert embedded_texts == ["Orchard\n\nPlums."]


async def test_runs_that_overlap_in_a_process_embed_each_change_once(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    """The minute's sweep, a user's queued job and another run may start together (in embedded
    mode all in the web process): they take turns, so a changed text is embedded once."""
    from multinotes.search import semantic

    await note(user, "Orchard", "Apple trees need pruning in late winter.")
    embedded_texts: list[str] = []
    original = semantic.embed

    async def slow_counting(texts: list[str]) -> Any:
        embedded_texts.extend(texts)
        await asyncio.sleep(0.05)  # long enough for the other run to look for work meanwhile
        return await original(texts)

    monkeypatch.setattr(semantic, "embed", slow_counting)
    done = await asyncio.gather(search_sweep(user.app), embed_pending(user.app))
    assert sorted(done) == [0, 1]
    assert embedded_texts == ["Orchard\n\nApple trees need pruning in late winter."]


async def test_hybrid_puts_what_both_rankings_found_first(user: ApiClient):
    both = await note(user, "Kitten care", "How to feed a kitten and keep the cat healthy.")
    words_only = await note(user, "Kitten (word)", "kitten")
    meaning_only = await note(user, "Young felines", "Raising young cats and their litter.")
    await embedded(user)

    text = {r["id"] for r in (await find(user, "kitten cat", mode="text"))["results"]}
    assert both in text and meaning_only not in text
    hybrid = (await find(user, "kitten cat"))["results"]
    assert hybrid[0]["id"] == both
    assert {both, words_only, meaning_only} <= {r["id"] for r in hybrid}


async def test_results_page_with_a_cursor(user: ApiClient):
    for n in range(25):
        await note(user, f"Lentil note {n:02}", f"lentil number {n}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"mode": "text", "limit": 10}
        if cursor:
            params["cursor"] = cursor
        body = await find(user, "lentil", **params)
        seen += [r["id"] for r in body["results"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 25 and len(set(seen)) == 25


# -- recent searches ------------------------------------------------------------------------------


async def test_recent_searches_keep_the_last_ten_distinct(user: ApiClient, make_client: Any):
    for q in ["alpha", "beta", "Alpha", "gamma"]:
        assert (await user.get(f"/api/search?q={q}&mode=text")).status == 200
    recent = [s["query"] for s in (await user.get_json("/api/search/recent"))["searches"]]
    assert recent == ["gamma", "Alpha", "beta"]

    for n in range(12):
        await user.get(f"/api/search?q=word{n}&mode=text")
    recent = [s["query"] for s in (await user.get_json("/api/search/recent"))["searches"]]
    assert recent == [f"word{n}" for n in range(11, 1, -1)]

    # Typed as one goes (search as you type): one search, the last one.
    for q in ["sou", "sourd", "sourdough"]:
        await user.get(f"/api/search?q={q}&mode=text")
    recent = [s["query"] for s in (await user.get_json("/api/search/recent"))["searches"]]
    assert recent[0] == "sourdough" and "sourd" not in recent and "sou" not in recent

    # Not recorded: blank queries, later pages, record=false.
    await user.get("/api/search?q=%20%20&mode=text")
    await user.get("/api/search?q=unrecorded&record=false&mode=text")
    recent = [s["query"] for s in (await user.get_json("/api/search/recent"))["searches"]]
    assert "unrecorded" not in recent and recent[0] == "sourdough"

    other = await person(make_client, "other@example.com")
    assert (await other.get_json("/api/search/recent"))["searches"] == []

    assert (await user.delete("/api/search/recent")).status == 204
    assert (await user.get_json("/api/search/recent"))["searches"] == []


async def test_a_deadlocked_recent_search_is_recorded_again_and_the_search_answers(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    """MariaDB picks one of two people's concurrent recent-search writes as a deadlock victim
    (gap locks on the index): the write is run again, not turned into a 500."""
    record = search_service._record_search
    victims = 2

    async def deadlocking(*args: Any) -> None:
        nonlocal victims
        if victims:
            victims -= 1
            raise OperationalError(
                "INSERT INTO recent_searches ...", {}, Exception(1213, "Deadlock found")
            )
        await record(*args)

    monkeypatch.setattr(search_service, "_record_search", deadlocking)
    with capture_logs() as logs:
        assert (await user.get("/api/search?q=sourdough&mode=text")).status == 200
    recent = [s["query"] for s in (await user.get_json("/api/search/recent"))["searches"]]
    assert recent == ["sourdough"]
    retried = [e for e in logs if e["event"] == "transaction_retried"]
    assert [(e["what"], e["attempt"]) for e in retried] == [
        ("remember_search", 1),
        ("remember_search", 2),
    ]


# -- command palette ------------------------------------------------------------------------------


async def test_palette_matches_titles_and_actions(user: ApiClient):
    projects = await folder(user, "Projects")
    plan = await note(user, "Project plan", "", projects)
    retro = await note(user, "Retro: the project", "")
    tree = await ask(user, "Project kickoff agenda")

    items = (await user.get_json("/api/palette?q=proj"))["items"]
    by_id = {i["id"]: i for i in items if i["id"]}
    assert by_id[plan]["url"] == f"/notes/{plan}" and by_id[plan]["kind"] == "note"
    assert by_id[projects]["url"] == f"/notes?folder={projects}"
    assert by_id[tree["id"]]["url"] == f"/chat/{tree['id']}"
    assert retro in by_id
    ordered = [i["id"] for i in items if i["id"]]
    # Titles starting with the query before titles merely holding it.
    assert ordered.index(retro) > max(ordered.index(plan), ordered.index(projects))

    actions = {i["title"]: i for i in (await user.get_json("/api/palette?q=new"))["items"]}
    assert actions["New chat"]["url"] == "/chat" and actions["New chat"]["method"] == "get"
    assert actions["New note"]["method"] == "post"
    usage = (await user.get_json("/api/palette?q=usage"))["items"]
    assert any(i["kind"] == "action" and i["url"] == "/usage" for i in usage)

    blank = (await user.get_json("/api/palette"))["items"]
    assert {plan, retro, tree["id"], projects} <= {i["id"] for i in blank}
    assert any(i["kind"] == "action" for i in blank)


async def test_palette_offers_admin_actions_to_admins_only(user: ApiClient, make_client: Any):
    admin_items = (await user.get_json("/api/palette?q=plugins"))["items"]
    assert any(i["url"] == "/admin/plugins" for i in admin_items)
    other = await person(make_client, "member@example.com")
    assert all(
        i["url"] != "/admin/plugins"
        for i in (await other.get_json("/api/palette?q=plugins"))["items"]
    )


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"mode": "fuzzy"}, "mode"),
        ({"kind": "folder"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"limit": "51"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_to": "2024-13-40"}, "date_to"),
        ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "date_to"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"q": "x" * 201}, "q"),
        ({"folder_id": "f" * 33}, "folder_id"),
        ({"sort": "title"}, "sort"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(user: ApiClient, params: dict, field: str):
    response = await user.get("/api/search?" + urlencode({"q": "anything", **params}))
    body = await response.json()
    assert response.status == 422, body
    assert field in body["error"]["fields"], body


async def test_search_needs_a_signed_in_user(api: ApiClient):
    for path in ("/api/search?q=x", "/api/search/recent", "/api/palette?q=x"):
        assert (await api.get(path)).status == 401
    assert (await api.get("/search?q=x", allow_redirects=False)).status == 303


# -- the search page ------------------------------------------------------------------------------


async def test_the_search_page_shows_escaped_results_with_marks(user: ApiClient):
    await note(user, "Rye <b>loaf</b>", "A dense rye loaf with <script>alert(1)</script> caraway.")
    response = await user.get("/search?q=rye&mode=text")
    assert response.status == 200
    html = await response.text()
    assert "<mark>rye</mark>" in html.lower()
    assert "<script>alert(1)</script>" not in html and "<b>loaf</b>" not in html
    assert "Rye &lt;b&gt;loaf&lt;/b&gt;" in html
    # What was searched is remembered, and offered again.
    assert 'id="recent-searches"' in html and "?q=rye" in html


async def test_the_search_page_answers_htmx_with_the_results_alone(user: ApiClient):
    await note(user, "Rye", "rye bread")
    response = await user.get("/search/results?q=rye&mode=text", headers={"HX-Request": "true"})
    assert response.status == 200
    assert response.headers["HX-Push-Url"] == "/search?q=rye&mode=text"
    html = await response.text()
    assert "<html" not in html and 'id="search-list"' in html


async def test_the_search_page_explains_bad_input_and_empty_states(user: ApiClient):
    html = await (await user.get("/search")).text()
    assert 'id="search-empty"' in html and "Ctrl" in html
    html = await (await user.get("/search?q=zebra&mode=text")).text()
    assert 'id="search-none"' in html
    for query in ("q=rye&date_from=yesterday", "q=rye&mode=fuzzy", "q=rye&cursor=bad"):
        response = await user.get(f"/search?{query}")
        assert response.status == 200, query
        assert 'id="search-error"' in await response.text(), query
    response = await user.get("/search?q=rye&folder_id=" + "f" * 32)
    assert response.status == 200 and "No such folder." in await response.text()


async def test_clearing_recent_searches_from_the_page_needs_the_csrf_token(user: ApiClient):
    await user.get("/search?q=rye")
    refused = await user.client.post("/search/recent/clear", allow_redirects=False)
    assert refused.status == 403
    assert (await user.get_json("/api/search/recent"))["searches"] != []
    cleared = await user.client.post(
        "/search/recent/clear", data={"csrf_token": user.csrf}, allow_redirects=False
    )
    assert cleared.status == 303
    assert (await user.get_json("/api/search/recent"))["searches"] == []
