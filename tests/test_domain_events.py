"""Domain events: what happened is published once, after the change committed, to in-process
subscribers (search indexing, Files, integrations, plugins); one failing subscriber harms nothing
else; every catalogue event comes from its real action, through the API or a page, in both
runtime modes; the catalogue is served and documented; integrations receive events in workers.
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update
from structlog.testing import capture_logs

from multinotes import hookimpl
from multinotes.app_settings import set_setting
from multinotes.chat.models import Generation
from multinotes.chat.pipeline import settle_stale_generations
from multinotes.domain_events import (
    CORE_EVENTS,
    EVENTS,
    FOLDER_CREATED,
    NOTE_CREATED,
    DomainEvent,
    FolderCreated,
    stage,
)
from multinotes.errors import ProviderUnavailable
from multinotes.files.models import File
from multinotes.integrations import Event, Integration
from multinotes.keys import DB
from multinotes.notes.models import Document
from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]


class Everything(Integration):
    """An integration that wants every event."""

    integration_id = "everything"
    name = "Everything"

    def __init__(self) -> None:
        self.received: list[Event] = []

    async def handle(self, event: Event, config: object) -> None:
        self.received.append(event)


class EverythingPlugin:
    def __init__(self) -> None:
        self.integration = Everything()

    @hookimpl
    def register_integrations(self, register: Any) -> None:
        register(self.integration)


@pytest.fixture
def listener() -> EverythingPlugin:
    return EverythingPlugin()


@pytest.fixture
def good() -> Script:
    return Script()


@pytest.fixture
def broken() -> Script:
    return Script(failures=[ProviderUnavailable("Scripted outage.")] * 10)


@pytest.fixture
def plugins(listener: EverythingPlugin, good: Script, broken: Script) -> list[tuple[str, Any]]:
    import plugins.providers.demo as demo

    return [
        ("demo", demo),
        ("listener", listener),
        (
            "script",
            ScriptedPlugin(
                ScriptedModel("script/good", good), ScriptedModel("script/broken", broken)
            ),
        ),
    ]


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    await api.mark_verified()
    # The demo provider starts disabled in production mode.
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    return api


def record(app: web.Application) -> list[DomainEvent]:
    """Every event published from now on, in order."""
    seen: list[DomainEvent] = []

    async def remember(app: web.Application, event: DomainEvent) -> None:
        seen.append(event)

    app[EVENTS].subscribe_all(remember)
    return seen


def names(seen: list[DomainEvent]) -> list[str]:
    return [event.name for event in seen]


async def created(api: ApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, body)
    assert response.status in (200, 201, 202), await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def generate(api: ApiClient, model: str) -> list[Any]:
    conversation = (await created(api, "/api/conversations", {}))["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "teal", "models": [model]}
    )
    assert response.status == 200, await response.text()
    return parse_sse(await response.text())


# -- publish after commit ----------------------------------------------------------------------


async def test_an_event_is_published_after_its_transaction_committed(user: ApiClient):
    """The subscriber runs once the change is visible to everyone and no lock is held: it can
    open its own write transaction and find the new note there."""
    found: list[str | None] = []

    async def look(app: web.Application, event: DomainEvent) -> None:
        async with app[DB].transaction() as session:
            document = await session.get(Document, event.payload["note_id"])
            found.append(document.title if document else None)

    user.app[EVENTS].subscribe(NOTE_CREATED, look)
    await created(user, "/api/documents", {"title": "Plan", "content": "x"})
    assert found == ["Plan"]


async def test_a_rolled_back_write_publishes_nothing(user: ApiClient):
    seen = record(user.app)
    with pytest.raises(RuntimeError):
        async with user.app[DB].transaction() as session:
            event = FOLDER_CREATED.of(
                user.user["id"], FolderCreated(folder_id="f1", name="Never", parent_id=None)
            )
            stage(session, event)
            raise RuntimeError("rolled back")
    # A real refusal inside the service's transaction: a note into a folder that is not there.
    response = await user.post(
        "/api/documents", {"title": "Lost", "content": "", "folder_id": "no-such-folder"}
    )
    assert response.status == 404
    assert seen == []


async def test_one_failing_subscriber_is_logged_and_stops_nothing(user: ApiClient):
    async def explode(app: web.Application, event: DomainEvent) -> None:
        raise ValueError("subscriber bug")

    user.app[EVENTS].subscribe(NOTE_CREATED, explode)
    seen = record(user.app)
    with capture_logs() as logs:
        note = await created(user, "/api/documents", {"title": "Still saved", "content": "x"})
    assert names(seen) == ["note.created"]
    assert seen[0].payload["note_id"] == note["id"]
    [failure] = [entry for entry in logs if entry["event"] == "event_subscriber_failed"]
    assert failure["event_name"] == "note.created" and "explode" in failure["subscriber"]
    # The note was kept and is indexed for search like any other (the next subscriber ran).
    assert (await user.get_json(f"/api/documents/{note['id']}"))["title"] == "Still saved"


# -- the catalogue, from the real actions ------------------------------------------------------


async def test_every_note_event_comes_once_from_its_api_action(user: ApiClient, make_client):
    seen = record(user.app)
    me = user.user["id"]
    folder = await created(user, "/api/folders", {"name": "Research"})
    note = await created(
        user, "/api/documents", {"title": "Draft", "content": "one", "folder_id": folder["id"]}
    )
    response = await user.patch(
        f"/api/documents/{note['id']}", {"version": 1, "content": "two", "title": "Draft"}
    )
    assert response.status == 200, await response.text()
    other = await make_client()
    await other.register_and_login("reader@example.com")
    share = await created(
        user,
        "/api/shares",
        {
            "object_type": "document",
            "object_id": note["id"],
            "email": "reader@example.com",
            "role": "editor",
        },
    )
    comment = await created(other, f"/api/documents/{note['id']}/comments", {"body": "Nice"})
    assert (await user.delete(f"/api/documents/{note['id']}")).status == 204

    assert names(seen) == [
        "folder.created",
        "note.created",
        "note.updated",
        "note.shared",
        "share.created",
        "comment.created",
        "note.deleted",
    ]
    assert all(event.user_id == me for event in seen)  # the owner, whoever acted
    by_name = {event.name: event.payload for event in seen}
    assert by_name["folder.created"] == {
        "folder_id": folder["id"],
        "name": "Research",
        "parent_id": None,
    }
    assert by_name["note.created"] == {
        "note_id": note["id"],
        "title": "Draft",
        "folder_id": folder["id"],
        "version": 1,
        "actor_id": me,
        "source": "editor",
    }
    assert by_name["note.updated"]["changes"] == ["content"]
    assert by_name["note.updated"]["version"] == 2
    assert by_name["note.shared"] == {
        "share_id": share["id"],
        "object_type": "document",
        "object_id": note["id"],
        "role": "editor",
        "kind": "user",
        "recipient_id": other.user["id"],
    }
    assert by_name["share.created"] == by_name["note.shared"]  # any kind of object, same fields
    assert by_name["comment.created"] == {
        "comment_id": comment["id"],
        "note_id": note["id"],
        "author_id": other.user["id"],
        "mentioned_ids": [],
    }
    assert by_name["note.deleted"] == {"note_id": note["id"], "title": "Draft", "actor_id": me}
    # Every payload fits its published schema version.
    catalogue = user.app[EVENTS].catalogue
    for event in seen:
        event_type = catalogue.get(event.name)
        assert event_type is not None and event.version == event_type.version
        event_type.payload.model_validate(event.payload)


async def test_trashing_a_folder_deletes_each_note_in_it_once_and_restoring_brings_each_back(
    user: ApiClient,
):
    me = user.user["id"]
    trip = await created(user, "/api/folders", {"name": "Trip"})
    days = await created(user, "/api/folders", {"name": "Days", "parent_id": trip["id"]})
    packing = await created(user, "/api/documents", {"title": "Packing", "folder_id": trip["id"]})
    monday = await created(user, "/api/documents", {"title": "Monday", "folder_id": days["id"]})
    gone = await created(user, "/api/documents", {"title": "Gone", "folder_id": days["id"]})
    elsewhere = await created(user, "/api/documents", {"title": "Elsewhere"})
    assert (await user.delete(f"/api/documents/{gone['id']}")).status == 204  # trashed before
    seen = record(user.app)

    assert (await user.delete(f"/api/folders/{trip['id']}")).status == 204

    # Every note that went along, subfolders included, is a note.deleted of its own; the one
    # already in the trash and the one outside the folder are not.
    assert names(seen) == ["note.deleted", "note.deleted"]
    assert sorted((e.payload["note_id"], e.payload["title"]) for e in seen) == sorted(
        [(packing["id"], "Packing"), (monday["id"], "Monday")]
    )
    assert all(e.user_id == me and e.payload["actor_id"] == me for e in seen)
    assert elsewhere["id"] not in {e.payload["note_id"] for e in seen}

    seen.clear()
    response = await user.post(f"/api/folders/{trip['id']}/restore", {})
    assert response.status == 200, await response.text()
    assert names(seen) == ["note.updated", "note.updated"]
    assert {e.payload["note_id"] for e in seen} == {packing["id"], monday["id"]}
    assert all(e.payload["changes"] == ["restored"] for e in seen)


async def test_the_bulk_delete_page_deletes_each_note_of_a_chosen_folder_once(user: ApiClient):
    trip = await created(user, "/api/folders", {"name": "Trip"})
    inside = await created(user, "/api/documents", {"title": "Inside", "folder_id": trip["id"]})
    loose = await created(user, "/api/documents", {"title": "Loose"})
    seen = record(user.app)
    data = [
        ("csrf_token", user.csrf or ""),
        ("item", f"folder:{trip['id']}"),
        ("item", f"document:{inside['id']}"),  # chosen too, but it goes with its folder
        ("item", f"document:{loose['id']}"),
        ("next", "/notes"),
    ]
    response = await user.client.post("/notes/delete", data=data, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert names(seen) == ["note.deleted", "note.deleted"]
    assert sorted(e.payload["note_id"] for e in seen) == sorted([inside["id"], loose["id"]])


async def test_pages_emit_the_same_events_once(user: ApiClient):
    seen = record(user.app)

    async def submit(path: str, fields: list[tuple[str, str]]) -> None:
        data = [("csrf_token", user.csrf or ""), *fields]
        response = await user.client.post(path, data=data, allow_redirects=False)
        assert response.status == 303, (response.status, await response.text())

    await submit("/notes/folders", [("name", "From a page")])
    await submit("/notes/new", [])
    assert names(seen) == ["folder.created", "note.created"]
    assert seen[0].payload["name"] == "From a page"
    assert seen[1].payload["source"] == "editor" and seen[1].user_id == user.user["id"]


async def test_saving_an_answer_or_duplicating_says_how_the_note_came_to_be(user: ApiClient):
    events = await generate(user, "script/good")
    answer = next(data for name, data in events if name == "done")["message_id"]
    seen = record(user.app)
    saved = await created(user, f"/api/messages/{answer}/save", {"folder_id": None})
    await created(user, f"/api/documents/{saved['document_id']}/duplicate", {})
    assert [(e.name, e.payload["source"]) for e in seen] == [
        ("note.created", "answer"),
        ("note.created", "duplicate"),
    ]


async def test_generations_publish_completed_or_failed_once(user: ApiClient):
    seen = record(user.app)
    await generate(user, "script/good")
    await generate(user, "script/broken")
    generations = [e for e in seen if e.name.startswith("generation.")]
    assert names(generations) == ["generation.completed", "generation.failed"]
    completed, failed = (e.payload for e in generations)
    assert completed["model"] == "script/good" and completed["status"] == "complete"
    assert completed["cost"] == 16 and completed["output_tokens"] == 3
    assert failed["model"] == "script/broken" and failed["error_code"] == "provider_unavailable"


async def test_the_crash_sweep_publishes_generation_failed_once(user: ApiClient):
    await generate(user, "script/good")
    seen = record(user.app)
    db = user.app[DB]
    # Fake a crash: the answer left pending, its process long silent.
    async with db.transaction() as session:
        generation = await session.scalar(select(Generation))
        assert generation is not None
        await session.execute(
            update(Generation)
            .where(Generation.id == generation.id)
            .values(status="pending", created_at=generation.created_at - timedelta(hours=2))
        )
    # The embedded scheduler sweeps too (at start and every minute): whichever sweep comes
    # first settles the answer, and the event is published once either way.
    assert await settle_stale_generations(user.app) in (0, 1)
    assert await settle_stale_generations(user.app) == 0

    def failed() -> list[DomainEvent]:
        return [e for e in seen if e.name == "generation.failed"]

    await eventually(lambda: len(failed()) == 1)
    [event] = failed()
    assert event.payload["generation_id"] == generation.id
    assert event.payload["error_code"] == "interrupted"


async def test_generated_media_reaches_files_through_the_completed_event(user: ApiClient):
    seen = record(user.app)
    await generate(user, "demo/swatch")
    [event] = [e for e in seen if e.name == "generation.completed"]
    assert event.payload["media_count"] == 1
    async with user.app[DB].read() as session:
        kept = list(await session.scalars(select(File).where(File.user_id == user.user["id"])))
    assert [(f.source, f.content_type) for f in kept] == [("generated", "image/png")]


async def test_credits_low_once_when_the_balance_crosses_the_threshold(user: ApiClient):
    wallet = await user.get_json("/api/wallet")
    # The next answer (16 credits) takes the balance just under the threshold.
    await set_setting(user.app[DB], "wallet.low_balance_credits", wallet["balance"] - 10)
    seen = record(user.app)
    await generate(user, "script/good")
    await generate(user, "script/good")  # still low: no second event
    low = [e for e in seen if e.name == "credits.low"]
    assert [(e.user_id, e.payload) for e in low] == [
        (
            user.user["id"],
            {"balance": wallet["balance"] - 16, "threshold": wallet["balance"] - 10},
        )
    ]


async def test_a_finished_data_export_publishes_export_completed(user: ApiClient):
    seen = record(user.app)
    export = await created(user, "/api/me/export", {})

    async def done() -> bool:
        status = await user.get_json(f"/api/me/exports/{export['id']}")
        return bool(status["status"] == "done")

    await eventually(done, timeout=30)
    await eventually(lambda: "export.completed" in names(seen))
    [event] = [e for e in seen if e.name == "export.completed"]
    assert event.user_id == user.user["id"] and event.payload["export_id"] == export["id"]
    assert event.payload["size"] > 0


# -- integrations ------------------------------------------------------------------------------


async def test_integrations_receive_every_catalogue_event_in_the_background(
    user: ApiClient, listener: EverythingPlugin
):
    folder = await created(user, "/api/folders", {"name": "Inbox"})
    note = await created(user, "/api/documents", {"title": "Hello", "content": "x"})
    received = listener.integration.received
    await eventually(lambda: {"folder.created", "note.created"} <= {e.name for e in received})
    by_name = {e.name: e for e in received}
    assert by_name["folder.created"].data["folder_id"] == folder["id"]
    assert by_name["note.created"].data["note_id"] == note["id"]
    assert by_name["note.created"].user_id == user.user["id"]
    assert by_name["note.created"].version == 1 and by_name["note.created"].id
    assert by_name["note.created"].occurred_at


# -- the catalogue served and documented -------------------------------------------------------


async def test_the_catalogue_endpoint_lists_every_event_with_its_schema(api: ApiClient):
    assert (await api.get("/api/events/catalog")).status == 401
    await api.register_and_login("someone@example.com")
    body = await api.get_json("/api/events/catalog")
    listed = {event["name"]: event for event in body["events"]}
    assert set(listed) == {event.name for event in CORE_EVENTS}
    assert set(listed) >= {
        "generation.completed",
        "generation.failed",
        "note.created",
        "note.updated",
        "note.deleted",
        "note.shared",
        "share.created",
        "comment.created",
        "comment.edited",
        "folder.created",
        "export.completed",
        "credits.low",
        "order.paid",
    }
    note = listed["note.created"]
    assert note["version"] == 1 and note["source"] == "core" and note["description"]
    assert {"note_id", "title", "folder_id", "version", "source"} <= set(
        note["json_schema"]["properties"]
    )
    openapi = await api.get_json("/api/openapi.json")
    assert "get" in openapi["paths"]["/api/events/catalog"]


DOCS_PAGE = ROOT / "docs" / "plugins" / "events.md"
BEGIN = "<!-- catalogue: generated from core/domain_events.py (tests/test_domain_events.py) -->"
END = "<!-- end of generated catalogue -->"


def _type_of(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(f"`{value}`" for value in prop["enum"])
    if prop.get("type") == "array":
        return "list of " + _type_of(prop["items"])
    if "anyOf" in prop:
        return " or ".join(_type_of(option) for option in prop["anyOf"])
    return str(prop.get("type", "any"))


def catalogue_reference() -> str:
    """Each core event: its name, version, description and payload fields."""
    sections = []
    for event in CORE_EVENTS:
        schema = event.json_schema()
        rows = [
            f"| `{name}` | {_type_of(prop)} | {prop.get('description', '')} |"
            for name, prop in schema["properties"].items()
        ]
        sections.append(
            f"### `{event.name}` (version {event.version})\n\n{event.description}\n\n"
            "| field | type | |\n|---|---|---|\n" + "\n".join(rows) + "\n"
        )
    return "\n".join(sections)


def test_the_plugin_docs_list_the_catalogue_as_it_is():
    generated = DOCS_PAGE.read_text().split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")
    assert generated == catalogue_reference().strip("\n"), (
        "docs/plugins/events.md is stale: run `python -m tests.test_domain_events`"
    )


# -- the pipeline only publishes ---------------------------------------------------------------


def test_the_generation_pipeline_imports_no_search_files_or_integrations():
    """Search indexing, the copy into Files and integration dispatch subscribe to events; the
    chat package reaches the storage backend and the quota for its own media through
    multinotes.storage, never the Files feature."""
    forbidden = (
        "multinotes.search",
        "multinotes.integrations",
        "multinotes.events",
        "multinotes.files",
    )
    for path in sorted((ROOT / "core" / "chat").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                assert not module.startswith(forbidden), f"{path.name} imports {module}"


if __name__ == "__main__":
    text = DOCS_PAGE.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOCS_PAGE.write_text(f"{head}{BEGIN}\n\n{catalogue_reference()}\n{END}{tail}")
