"""Remote destinations take more than notes (issue #15): a conversation (its branch: prompts and
answers under the models' names), a prompt with its models' answers, one answer and a folder (one
page per note under a page named after the folder; in Google Drive, one document per note in a
Drive folder named after it) go to Notion and Google Docs (local fakes) through
``POST /api/exports`` and the Export menus, each ending in the link to what was made; exporting
again updates the same pages. Both runtime modes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from alembic import command
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from multinotes.connections.models import RemoteExport
from multinotes.keys import DB
from multinotes.migrations import alembic_config, installed_plugin_migrations, upgrade
from multinotes.plugins.exports import google_docs as google_docs_plugin
from multinotes.plugins.exports import markdown as markdown_plugin
from multinotes.plugins.exports import notion as notion_plugin
from multinotes.plugins.exports.google_docs.tests.fakes.fake_google import FakeGoogle
from multinotes.plugins.exports.notion.tests.fakes.fake_notion import FakeNotion
from multinotes.testing import ApiClient
from tests.support import people
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.waiting import eventually

ann = people.ann
bob = people.bob
eve = people.eve

ALPHA, BETA = "script/alpha", "script/beta"


@pytest.fixture
async def fakes() -> Any:
    notion, google = FakeNotion(), FakeGoogle()
    servers = [
        TestServer(notion.app(), host="127.0.0.1"),
        TestServer(google.app(), host="127.0.0.1"),
    ]
    for server in servers:
        await server.start_server()
    urls = [str(server.make_url("")).rstrip("/") for server in servers]
    yield notion, google, urls
    for server in servers:
        await server.close()


@pytest.fixture
def plugins() -> Any:
    scripts = {
        ALPHA: Script(chunks=["Lisbon ", "has ", "seven hills."]),
        BETA: Script(chunks=["Seven, ", "like Rome."]),
    }
    return [
        *scripted_plugins(scripts, context_window=1000, max_output=100),
        ("notion", notion_plugin),
        ("google_docs", google_docs_plugin),
        ("markdown", markdown_plugin),
    ]


@pytest.fixture
def settings(make_settings: Any, fakes: Any) -> Any:
    notion, google, (notion_url, google_url) = fakes
    return make_settings(
        plugins={
            "notion": {
                "client_id": notion.client_id,
                "client_secret": notion.client_secret,
                "api_base": notion_url,
            },
            "google_docs": {
                "client_id": google.client_id,
                "client_secret": google.client_secret,
                "api_base": google_url,
                "auth_base": google_url,
                "token_base": google_url,
            },
        }
    )


@pytest.fixture
def notion(fakes: Any) -> FakeNotion:
    return fakes[0]


@pytest.fixture
def google(fakes: Any) -> FakeGoogle:
    return fakes[1]


async def connect(api: ApiClient, kind: str) -> None:
    """Connect as a browser would: the form, the consent screen (the fake allows), the callback."""
    started = await api.post(
        f"/connections/{kind}/connect",
        data={"csrf_token": api.csrf},
        headers={"HX-Request": "true"},
        allow_redirects=False,
    )
    assert started.status == 204, await started.text()
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(started.headers["HX-Redirect"], allow_redirects=False) as consent,
    ):
        back = urlsplit(consent.headers["Location"])
    done = await api.get(f"{back.path}?{back.query}", allow_redirects=False)
    assert done.status == 303


async def asked(api: ApiClient) -> tuple[str, str]:
    """A conversation whose prompt both scripted models answered: (conversation, prompt)."""
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "How many hills has Lisbon?", "models": [ALPHA, BETA]},
    )
    assert response.status == 200, await response.text()
    await response.text()
    tree = await api.get_json(f"/api/conversations/{conversation}")
    prompt = next(m for m in tree["messages"] if m["role"] == "user")
    return conversation, prompt["id"]


async def exported(api: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    """Start an export and wait for it: its final state."""
    created = await api.post("/api/exports", body)
    assert created.status == 202, await created.text()
    export_id = (await created.json())["id"]
    state: dict[str, Any] = {}

    async def finished() -> bool:
        state.update(await api.get_json(f"/api/exports/{export_id}"))
        return state["status"] in ("done", "failed")

    await eventually(finished, timeout=60)
    return state


def texts(notion: FakeNotion, page_id: str) -> list[str]:
    return [notion.plain_text(b) for b in notion.page_blocks(page_id) if b["type"] != "table"]


async def note(api: ApiClient, title: str, content: str, folder_id: str) -> str:
    made = await api.post(
        "/api/documents", {"title": title, "content": content, "folder_id": folder_id}
    )
    assert made.status == 201, await made.text()
    return str((await made.json())["id"])


async def folder(api: ApiClient, name: str, parent_id: str | None = None) -> str:
    made = await api.post("/api/folders", {"name": name, "parent_id": parent_id})
    assert made.status == 201, await made.text()
    return str((await made.json())["id"])


# -- Notion -------------------------------------------------------------------------------------


async def test_a_conversation_becomes_one_notion_page_updated_when_exported_again(ann, notion):
    await connect(ann, "notion")
    conversation, _ = await asked(ann)
    state = await exported(ann, {"format": "notion", "conversation_id": conversation})
    assert state["status"] == "done", state
    assert state["progress"] == {"done": 1, "total": 1}
    assert state["download_url"] is None  # nothing to download: the page is at Notion
    [page_id] = notion.created_pages()
    assert state["url"] == notion.pages[page_id]["url"]
    assert notion.pages[page_id]["parent"]["page_id"] == notion.root_page
    headings = [
        notion.plain_text(b) for b in notion.page_blocks(page_id) if b["type"] == "heading_2"
    ]
    # The newest branch: the prompt, then the answer on it under its model's name.
    assert headings == ["You", BETA]
    body = texts(notion, page_id)
    assert "How many hills has Lisbon?" in body and "Seven, like Rome." in body
    callout = next(b for b in notion.page_blocks(page_id) if b["type"] == "callout")
    assert f"Model: {BETA}" in notion.plain_text(callout)

    # Another turn, exported again: the same page, now with the new turn.
    more = await ann.post(
        f"/api/conversations/{conversation}/messages", {"content": "And Rome?", "models": [ALPHA]}
    )
    await more.text()
    again = await exported(ann, {"format": "notion", "conversation_id": conversation})
    assert again["url"] == state["url"] and again["id"] != state["id"]
    assert notion.created_pages() == [page_id]
    headings = [
        notion.plain_text(b) for b in notion.page_blocks(page_id) if b["type"] == "heading_2"
    ]
    assert headings == ["You", BETA, "You", ALPHA]
    assert "And Rome?" in texts(notion, page_id)


async def test_a_comparison_and_an_answer_go_to_notion_each_as_its_own_page(ann, notion):
    await connect(ann, "notion")
    conversation, prompt = await asked(ann)
    compared = await exported(ann, {"format": "notion", "comparison_id": prompt})
    assert compared["status"] == "done", compared
    [comparison_page] = notion.created_pages()
    assert notion.title_of(comparison_page) == "How many hills has Lisbon?"
    blocks = notion.page_blocks(comparison_page)
    headings = [notion.plain_text(b) for b in blocks if b["type"] == "heading_2"]
    assert headings == ["You", ALPHA, BETA]
    callout = notion.plain_text(next(b for b in blocks if b["type"] == "callout"))
    assert f"Model: {ALPHA}" in callout and f"Model: {BETA}" in callout

    tree = await ann.get_json(f"/api/conversations/{conversation}")
    answer = next(m for m in tree["messages"] if m["model"] == BETA)
    single = await exported(ann, {"format": "notion", "answer_id": answer["id"]})
    assert single["status"] == "done", single
    [answer_page] = [p for p in notion.created_pages() if p != comparison_page]
    assert single["url"] == notion.pages[answer_page]["url"]
    assert "Seven, like Rome." in texts(notion, answer_page)
    assert "Lisbon has seven hills." not in texts(notion, answer_page)

    # The comparison again: the same page. A prompt id as an answer is unknown (404).
    again = await exported(ann, {"format": "notion", "comparison_id": prompt})
    assert again["url"] == compared["url"]
    assert len(notion.created_pages()) == 2
    wrong = await ann.post("/api/exports", {"format": "notion", "answer_id": prompt})
    assert wrong.status == 404


async def test_a_folder_becomes_a_notion_page_of_pages_and_exporting_again_updates_them(
    ann, notion
):
    await connect(ann, "notion")
    trips = await folder(ann, "Trips")
    lisbon = await note(ann, "Lisbon", "Seven hills.", trips)
    rome = await note(ann, "Rome", "Also seven.", trips)
    food = await folder(ann, "Food", trips)
    nata = await note(ann, "Pastel de nata", "Custard.", food)
    await folder(ann, "Empty", trips)  # nothing in it: no page for it

    state = await exported(ann, {"format": "notion", "folder_id": trips})
    assert state["status"] == "done", state
    assert state["progress"] == {"done": 3, "total": 3}
    by_title = {notion.title_of(p): p for p in notion.created_pages()}
    assert set(by_title) == {"Trips", "Food", "Lisbon", "Rome", "Pastel de nata"}
    top = by_title["Trips"]
    assert state["url"] == notion.pages[top]["url"]
    assert notion.pages[top]["parent"]["page_id"] == notion.root_page

    def parent(title: str) -> str:
        return str(notion.pages[by_title[title]]["parent"]["page_id"])

    assert parent("Lisbon") == parent("Rome") == parent("Food") == top
    assert parent("Pastel de nata") == by_title["Food"]
    intro = texts(notion, top)[0]
    assert "Notes of the folder Trips" in intro
    assert texts(notion, by_title["Rome"]) == ["Also seven."]

    # Edited, renamed, a note more: exported again, the same pages are updated.
    version = (await ann.get_json(f"/api/documents/{rome}"))["version"]
    edited = await ann.patch(
        f"/api/documents/{rome}", {"content": "Seven, on the Tiber.", "version": version}
    )
    assert edited.status == 200, await edited.text()
    renamed = await ann.patch(f"/api/folders/{trips}", {"name": "Travels"})
    assert renamed.status == 200, await renamed.text()
    porto = await note(ann, "Porto", "Bridges.", trips)
    again = await exported(ann, {"format": "notion", "folder_id": trips})
    assert again["status"] == "done", again
    assert again["url"] == state["url"]
    assert notion.title_of(top) == "Travels"
    assert texts(notion, by_title["Rome"]) == ["Seven, on the Tiber."]
    new = [p for p in notion.created_pages() if p not in by_title.values()]
    assert [notion.title_of(p) for p in new] == ["Porto"]
    assert notion.pages[new[0]]["parent"]["page_id"] == top
    assert {lisbon, nata, porto}  # every note went through its own page


async def test_remote_exports_need_a_connection_and_the_right_target(ann, eve, notion):
    conversation, _ = await asked(ann)
    trips = await folder(ann, "Trips")
    refused = await ann.post("/api/exports", {"format": "notion", "conversation_id": conversation})
    assert refused.status == 409
    error = (await refused.json())["error"]
    assert error["code"] == "not_connected" and error["fields"] == {"connection": "notion"}

    await connect(ann, "notion")
    doc = await note(ann, "One", "x", trips)
    several = await ann.post("/api/exports", {"format": "notion", "document_ids": [doc]})
    assert several.status == 422
    assert "document_ids" in (await several.json())["error"]["fields"]
    bad = await ann.post(
        "/api/exports",
        {"format": "notion", "folder_id": trips, "options": {"parent_page_id": "nope"}},
    )
    assert bad.status == 422
    assert "options.parent_page_id" in (await bad.json())["error"]["fields"]
    # A stranger (even a connected one) gets 404 for what they may not read.
    await connect(eve, "notion")
    for body in ({"folder_id": trips}, {"conversation_id": conversation}):
        assert (await eve.post("/api/exports", {"format": "notion", **body})).status == 404
    assert notion.created_pages() == []


async def test_a_viewer_sends_a_shared_folder_to_their_own_notion(ann, bob, notion):
    trips = await folder(ann, "Shared trips")
    await note(ann, "Lisbon", "Seven hills.", trips)
    shared = await ann.post(
        "/api/shares", {"object_type": "folder", "object_id": trips, "email": "bob@example.com"}
    )
    assert shared.status == 201, await shared.text()
    await connect(bob, "notion")
    state = await exported(bob, {"format": "notion", "folder_id": trips})
    assert state["status"] == "done", state
    assert sorted(notion.title_of(p) for p in notion.created_pages()) == ["Lisbon", "Shared trips"]


async def test_a_connection_revoked_meanwhile_fails_the_export_clearly(ann, notion):
    await connect(ann, "notion")
    conversation, _ = await asked(ann)
    notion.revoke_all()
    state = await exported(ann, {"format": "notion", "conversation_id": conversation})
    assert state["status"] == "failed"
    assert "no longer accepts this connection" in state["error"]
    assert state["url"] is None
    listed = await ann.get_json("/api/connections")
    assert listed["connections"][0]["status"] == "revoked"


async def test_notion_busy_is_retried_inside_the_job(ann, notion):
    await connect(ann, "notion")
    trips = await folder(ann, "Trips")
    await note(ann, "Lisbon", "Seven hills.", trips)
    notion.next_failures = [(429, {"Retry-After": "0"}), (502, {})]
    state = await exported(ann, {"format": "notion", "folder_id": trips})
    assert state["status"] == "done", state
    assert len(notion.created_pages()) == 2


async def unlocked(run: Callable[[], Awaitable[Any]]) -> Any:
    """``run`` a migration, again when SQLite said the database was locked: a background task
    of the app (search indexing) held its write lock while the migration, which blocks the
    loop, waited for it. The failed attempt was rolled back."""
    for attempt in range(5):
        try:
            return await run()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 4:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def test_migration_0030_keeps_the_pages_notes_were_exported_to(ann, notion):
    """Rows from before 0030 were a note's page: they become ``note:<id>`` and the next export
    still updates that page. Going back keeps those and drops what only 0030 knows."""
    await connect(ann, "notion")
    trips = await folder(ann, "Trips")
    doc = await note(ann, "Lisbon", "Seven hills.", trips)
    sent = await ann.post(f"/api/documents/{doc}/export", {"format": "notion"})
    assert sent.status == 200, await sent.text()
    assert (await exported(ann, {"format": "notion", "folder_id": trips}))["status"] == "done"
    pages = notion.created_pages()
    assert len(pages) == 3  # the note's own page, the folder's, the note's under the folder

    engine = ann.app[DB].engine

    def downgrade(connection: Connection) -> None:
        config = alembic_config(plugins=installed_plugin_migrations())
        config.attributes["connection"] = connection
        command.downgrade(config, "0023_connections")

    async def downgraded() -> list[Any]:
        async with engine.begin() as connection:
            await connection.run_sync(downgrade)
            selected = await connection.exec_driver_sql("SELECT document_id FROM remote_exports")
            return list(selected.all())

    try:
        assert await unlocked(downgraded) == [(doc,)]
    finally:
        await unlocked(lambda: upgrade(engine))

    async with ann.app[DB].read() as session:
        [row] = list(await session.scalars(select(RemoteExport)))
    assert (row.target, row.document_id) == (f"note:{doc}", doc)
    again = await ann.post(f"/api/documents/{doc}/export", {"format": "notion"})
    assert (await again.json())["url"] == (await sent.json())["url"]
    assert notion.created_pages() == pages


# -- Google Docs --------------------------------------------------------------------------------


async def test_a_folder_becomes_a_drive_folder_of_google_docs_updated_on_re_export(ann, google):
    await connect(ann, "google_docs")
    trips = await folder(ann, "Trips")
    rome = await note(ann, "Rome", "Also **seven**.", trips)
    food = await folder(ann, "Food", trips)
    await note(ann, "Pastel de nata", "Custard.", food)

    state = await exported(ann, {"format": "google_docs", "folder_id": trips})
    assert state["status"] == "done", state
    made = {name: fid for fid, name in google.folders.items()}
    top = made["Trips"]
    assert state["url"] == f"https://drive.google.com/drive/folders/{top}"
    assert google.folder_parents[top] == []  # My Drive: no folder was chosen
    assert google.folder_parents[made["Food"]] == [top]
    assert f"/notes?folder={trips}" in google.folder_descriptions[top]
    docs = {f["name"]: f for f in google.files.values()}
    assert docs["Rome"]["parents"] == [top]
    assert docs["Pastel de nata"]["parents"] == [made["Food"]]
    assert "<strong>seven</strong>" in docs["Rome"]["html"]

    version = (await ann.get_json(f"/api/documents/{rome}"))["version"]
    await ann.patch(f"/api/documents/{rome}", {"content": "Seven, again.", "version": version})
    await ann.patch(f"/api/folders/{trips}", {"name": "Travels"})
    again = await exported(ann, {"format": "google_docs", "folder_id": trips})
    assert again["url"] == state["url"]
    assert google.folders[top] == "Travels"
    assert len(google.files) == 2 and len(google.folders) == 4  # root, Reports, Trips, Food
    assert docs["Rome"]["versions"] == 2 and "Seven, again." in docs["Rome"]["html"]


async def test_a_conversation_becomes_a_google_doc_in_the_chosen_folder(ann, google):
    await connect(ann, "google_docs")
    conversation, _ = await asked(ann)
    body = {
        "format": "google_docs",
        "conversation_id": conversation,
        "options": {"folder_id": "folder-reports-0001"},
    }
    state = await exported(ann, body)
    assert state["status"] == "done", state
    [(file_id, doc)] = google.files.items()
    assert state["url"].startswith(f"https://docs.google.com/document/d/{file_id}/")
    assert doc["parents"] == ["folder-reports-0001"]
    # The newest branch: the prompt and the answer on it, under its model's name.
    assert "How many hills has Lisbon?" in doc["html"]
    assert f"<h2>{BETA}</h2>" in doc["html"] and "Seven, like Rome." in doc["html"]
    again = await exported(ann, body)
    assert again["url"] == state["url"] and doc["versions"] == 2


# -- the Export menus ---------------------------------------------------------------------------


async def test_the_menus_offer_the_destinations_and_end_in_a_link(ann, notion):
    conversation, prompt = await asked(ann)
    trips = await folder(ann, "Trips")
    await note(ann, "Lisbon", "Seven hills.", trips)
    workspace = await (await ann.get(f"/chat/{conversation}")).text()
    for action in (
        f"/exports/conversation/{conversation}?format=notion",
        f"/exports/comparison/{prompt}?format=google_docs",
        "?format=notion",
    ):
        assert action.replace("&", "&amp;") in workspace, action
    assert 'data-plugin-action="notion-export-answer"' in workspace
    notes = await (await ann.get(f"/notes?folder={trips}")).text()
    assert f"/exports/folder/{trips}?format=notion" in notes
    assert f"/exports/folder/{trips}?format=google_docs" in notes

    # Not connected: the status line offers to connect, coming back to the conversation.
    first = await ann.post(
        f"/exports/conversation/{conversation}?format=notion",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
    )
    text = await first.text()
    assert "Connect your Notion account first" in text and "Connect Notion" in text
    await connect(ann, "notion")
    started = await ann.post(
        f"/exports/folder/{trips}?format=notion",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
    )
    assert started.status == 200
    export_id = (await started.text()).split('id="export-', 1)[1].split('"', 1)[0]
    shown: dict[str, str] = {}

    async def linked() -> bool:
        shown["html"] = await (await ann.get(f"/exports/{export_id}/progress")).text()
        return "open it in Notion" in shown["html"]

    await eventually(linked, timeout=60)
    top = next(p for p in notion.created_pages() if notion.title_of(p) == "Trips")
    assert f'href="{notion.pages[top]["url"]}"' in shown["html"]
    # Without JavaScript, the export's own page says the same.
    own = await (await ann.get(f"/exports/{export_id}")).text()
    assert "open it in Notion" in own
