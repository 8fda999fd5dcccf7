"""Notes: Markdown documents with a title, in a folder or at the root. Every save keeps a
version; an edit based on an old version is refused with the current one (nothing is lost);
versions can be listed, read, diffed and restored; notes move, duplicate, go to the trash and
come back; lists are paginated with a cursor."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import event, null, update
from structlog.testing import capture_logs

from multinotes.app import create_app
from multinotes.keys import DB
from multinotes.notes.models import Document
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.support.statements import Statements


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    return api


async def create(api: ApiClient, title: str = "Note", content: str = "", **extra) -> dict:
    response = await api.post("/api/documents", {"title": title, "content": content, **extra})
    body = await response.json()
    assert response.status == 201, body
    return dict(body)


async def edit(api: ApiClient, doc: str, version: int, **changes) -> tuple[int, dict]:
    response = await api.patch(f"/api/documents/{doc}", {"version": version, **changes})
    return response.status, await response.json()


async def test_create_returns_id_and_version_and_get_renders_sanitised_html(user: ApiClient):
    created = await create(
        user, "Hello", "# Title\n\n**bold** <script>alert(1)</script> [x](javascript:alert(1))"
    )
    assert created["version"] == 1 and len(created["id"]) == 32
    doc = await user.get_json(f"/api/documents/{created['id']}")
    assert doc["title"] == "Hello" and doc["version"] == 1 and doc["folder_id"] is None
    assert doc["content"].startswith("# Title")
    assert "<strong>bold</strong>" in doc["html"]
    assert "<script" not in doc["html"] and 'href="javascript' not in doc["html"]
    assert doc["provenance"] is None


async def test_each_save_makes_a_version_and_a_stale_edit_is_409_with_the_current_one(
    user: ApiClient,
):
    doc = (await create(user, "Draft", "one"))["id"]
    status, body = await edit(user, doc, 1, content="two")
    assert status == 200 and body["version"] == 2 and body["content"] == "two"

    # A second tab still on version 1 tries to save: refused, and told what is there now.
    status, body = await edit(user, doc, 1, content="my other edit")
    assert status == 409
    assert body["error"]["code"] == "stale_version"
    assert body["error"]["current"]["version"] == 2
    assert body["error"]["current"]["content"] == "two"
    current = await user.get_json(f"/api/documents/{doc}")
    assert current["content"] == "two" and current["version"] == 2
    # Merged and resent on the current version, it saves.
    status, body = await edit(user, doc, 2, content="two\nmy other edit")
    assert status == 200 and body["version"] == 3

    versions = (await user.get_json(f"/api/documents/{doc}/versions"))["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["created_by"] == user.user["id"]


async def test_patch_must_carry_a_version(user: ApiClient):
    doc = (await create(user))["id"]
    response = await user.patch(f"/api/documents/{doc}", {"content": "no version"})
    assert response.status == 422
    assert "version" in (await response.json())["error"]["fields"]


async def test_an_unchanged_save_or_a_move_keeps_the_version(user: ApiClient):
    folder = (await (await user.post("/api/folders", {"name": "F"})).json())["id"]
    doc = (await create(user, "Same", "text"))["id"]
    status, body = await edit(user, doc, 1, content="text", folder_id=folder)
    assert status == 200 and body["version"] == 1 and body["folder_id"] == folder
    status, body = await edit(user, doc, 1, folder_id=None)
    assert body["folder_id"] is None
    assert len((await user.get_json(f"/api/documents/{doc}/versions"))["versions"]) == 1


async def test_versions_can_be_read_diffed_and_restored(user: ApiClient):
    doc = (await create(user, "Poem", "roses are red\nviolets are blue\n"))["id"]
    await edit(user, doc, 1, content="roses are red\nviolets are purple\nsugar is sweet\n")
    await edit(user, doc, 2, title="Poem, final", content="nothing left\n")

    first = await user.get_json(f"/api/documents/{doc}/versions/1")
    assert first["content"] == "roses are red\nviolets are blue\n" and first["title"] == "Poem"
    assert first["html"].startswith("<p>")

    diff = await user.get_json(f"/api/documents/{doc}/versions/2/diff")
    assert diff["from_version"] == 1 and diff["to_version"] == 2 and not diff["title_changed"]
    assert "-violets are blue" in diff["unified"] and "+violets are purple" in diff["unified"]
    assert diff["unified"].startswith("--- version 1\n+++ version 2")
    assert diff["lines"] == [
        {"op": "equal", "text": "roses are red"},
        {"op": "delete", "text": "violets are blue"},
        {"op": "insert", "text": "violets are purple"},
        {"op": "insert", "text": "sugar is sweet"},
    ]
    against = await user.get_json(f"/api/documents/{doc}/versions/3/diff?against=1")
    assert against["from_version"] == 1 and against["title_changed"]

    response = await user.post(f"/api/documents/{doc}/versions/1/restore")
    assert response.status == 200
    restored = await response.json()
    assert restored["version"] == 4 and restored["title"] == "Poem"
    assert restored["content"] == "roses are red\nviolets are blue\n"
    versions = (await user.get_json(f"/api/documents/{doc}/versions"))["versions"]
    assert [v["version"] for v in versions] == [4, 3, 2, 1]  # history is kept
    assert (await user.get(f"/api/documents/{doc}/versions/9")).status == 404
    assert (await user.get(f"/api/documents/{doc}/versions/2/diff?against=9")).status == 404


async def test_duplicate_copies_content_into_the_same_folder_with_a_fresh_history(
    user: ApiClient,
):
    folder = (await (await user.post("/api/folders", {"name": "F"})).json())["id"]
    doc = (await create(user, "Original", "v1", folder_id=folder))["id"]
    await edit(user, doc, 1, content="v2")
    response = await user.post(f"/api/documents/{doc}/duplicate")
    assert response.status == 201
    copy = await response.json()
    assert copy["id"] != doc and copy["version"] == 1
    body = await user.get_json(f"/api/documents/{copy['id']}")
    assert body["title"] == "Original (copy)" and body["content"] == "v2"
    assert body["folder_id"] == folder


async def test_delete_to_trash_and_restore(user: ApiClient):
    folder = (await (await user.post("/api/folders", {"name": "F"})).json())["id"]
    doc = (await create(user, "Bin me", "x", folder_id=folder))["id"]
    assert (await user.delete(f"/api/documents/{doc}")).status == 204
    assert (await user.get(f"/api/documents/{doc}")).status == 404
    assert (await edit(user, doc, 1, content="y"))[0] == 404
    trash = (await user.get_json("/api/trash"))["items"]
    assert [(i["kind"], i["id"], i["title"]) for i in trash] == [("document", doc, "Bin me")]
    response = await user.post(f"/api/documents/{doc}/restore")
    assert response.status == 200
    assert (await response.json())["folder_id"] == folder
    assert (await user.get_json("/api/trash"))["items"] == []
    # Its folder was deleted meanwhile: it comes back at the root.
    await user.delete(f"/api/documents/{doc}")
    await user.delete(f"/api/folders/{folder}")
    restored = await (await user.post(f"/api/documents/{doc}/restore")).json()
    assert restored["folder_id"] is None


async def test_list_filters_by_folder_and_text_and_pages_with_a_cursor(user: ApiClient):
    folder = (await (await user.post("/api/folders", {"name": "F"})).json())["id"]
    ids = [(await create(user, f"Note {i:02}", f"body {i}"))["id"] for i in range(7)]
    inside = (await create(user, "Inside", "needle 100%", folder_id=folder))["id"]

    listed = await user.get_json("/api/documents?limit=3")
    assert [d["id"] for d in listed["documents"]] == [inside, ids[6], ids[5]]
    seen = [d["id"] for d in listed["documents"]]
    while listed["next_cursor"]:
        listed = await user.get_json(f"/api/documents?limit=3&cursor={listed['next_cursor']}")
        seen += [d["id"] for d in listed["documents"]]
    assert seen == [inside, *reversed(ids)]

    by_title = await user.get_json("/api/documents?sort=title&limit=2")
    titles = [d["title"] for d in by_title["documents"]]
    page2 = await user.get_json(
        f"/api/documents?sort=title&limit=2&cursor={by_title['next_cursor']}"
    )
    assert titles + [d["title"] for d in page2["documents"]] == [
        "Inside",
        "Note 00",
        "Note 01",
        "Note 02",
    ]

    in_folder = await user.get_json(f"/api/documents?folder_id={folder}")
    assert [d["id"] for d in in_folder["documents"]] == [inside]
    at_root = await user.get_json("/api/documents?folder_id=root")
    assert inside not in [d["id"] for d in at_root["documents"]] and len(at_root["documents"]) == 7
    found = await user.get_json("/api/documents?q=NEEDLE")
    assert [d["id"] for d in found["documents"]] == [inside]
    assert (await user.get_json("/api/documents?q=100%25"))["documents"][0]["id"] == inside
    assert (await user.get_json("/api/documents?q=5%25"))["documents"] == []
    assert (await user.get("/api/documents?cursor=garbage")).status == 422
    assert (await user.get("/api/documents?sort=size")).status == 422


async def test_the_list_reads_no_note_bodies_and_answers_the_summary_fields(user: ApiClient):
    """A page of 50 notes is a page of titles: the bodies (up to a megabyte each) stay in the
    database; the summary still says whether a note was saved from an answer."""
    plain = (await create(user, "Plain", "x" * 5000))["id"]
    with Statements(user.app) as statements:
        listed = await user.get_json("/api/documents")
    reads = [s for s in statements if "FROM documents" in s]
    assert len(reads) == 1 and "documents.content" not in reads[0], reads
    (summary,) = listed["documents"]
    assert summary["id"] == plain and summary["has_provenance"] is False
    assert set(summary) == {
        "id",
        "title",
        "folder_id",
        "version",
        "has_provenance",
        "created_at",
        "updated_at",
    }


async def test_each_listed_note_says_what_the_note_itself_says_and_pages_cover_them_all(
    user: ApiClient,
):
    """The list reads its rows as text without an ORM session (issue #17: CPU per request);
    what it answers is still, field for field and byte for byte, what the note's own page
    says: timestamps on a whole second too, and a provenance that is empty, JSON null, SQL
    NULL or set. Its cursor walks every note once, in every sort."""
    ids = [(await create(user, f"Note {n}", "body"))["id"] for n in range(5)]
    db = user.app[DB]
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    changes: list[dict[str, Any]] = [
        {"provenance": {}},
        {"provenance": None},
        {"provenance": null()},
        {"provenance": {"source_message_id": "m1"}},
        {"updated_at": whole_second, "created_at": whole_second},
    ]
    async with db.transaction() as session:
        for doc, values in zip(ids, changes, strict=True):
            await session.execute(update(Document).where(Document.id == doc).values(**values))
    orm_reads: list[Any] = []

    def note(state: Any) -> None:
        orm_reads.append(state.statement)

    event.listen(db.read_session_class, "do_orm_execute", note)
    try:
        listed = (await user.get_json("/api/documents"))["documents"]
        assert not [s for s in orm_reads if "documents" in str(s)], orm_reads
        await user.get_json(f"/api/documents/{ids[0]}")  # the note's page reads the entity:
        assert [s for s in orm_reads if "documents" in str(s)]  # the listener sees it
    finally:
        event.remove(db.read_session_class, "do_orm_execute", note)
    assert sorted(d["id"] for d in listed) == sorted(ids)
    for summary in listed:
        full = await user.get_json(f"/api/documents/{summary['id']}")
        assert summary == {key: full[key] for key in summary}
    by_id = {d["id"]: d for d in listed}
    assert [by_id[doc]["has_provenance"] for doc in ids] == [False, False, False, True, False]
    assert by_id[ids[4]]["updated_at"] == "2026-01-02T03:04:05+00:00"
    for sort in ("-updated", "updated", "created", "-created", "title", "-title"):
        walked: list[str] = []
        cursor = ""
        while True:
            page = await user.get_json(f"/api/documents?sort={sort}&limit=2{cursor}")
            walked += [d["id"] for d in page["documents"]]
            if page["next_cursor"] is None:
                break
            cursor = f"&cursor={page['next_cursor']}"
        whole = (await user.get_json(f"/api/documents?sort={sort}"))["documents"]
        assert walked == [d["id"] for d in whole] and len(walked) == 5, sort


async def test_another_users_documents_and_versions_are_404_and_unchanged(
    user: ApiClient, make_client
):
    doc = (await create(user, "Private", "secret"))["id"]
    await edit(user, doc, 1, content="secret 2")
    trashed = (await create(user, "Trashed"))["id"]
    await user.delete(f"/api/documents/{trashed}")

    other = await make_client()
    await other.register_and_login("b@example.com")
    assert (await other.get_json("/api/documents"))["documents"] == []
    for path in (
        f"/api/documents/{doc}",
        f"/api/documents/{doc}/versions",
        f"/api/documents/{doc}/versions/1",
        f"/api/documents/{doc}/versions/2/diff?against=1",
    ):
        assert (await other.get(path)).status == 404, path
    assert (await edit(other, doc, 2, content="hijacked"))[0] == 404
    assert (await other.delete(f"/api/documents/{doc}")).status == 404
    assert (await other.post(f"/api/documents/{doc}/duplicate")).status == 404
    assert (await other.post(f"/api/documents/{doc}/versions/1/restore")).status == 404
    assert (await other.post(f"/api/documents/{trashed}/restore")).status == 404
    assert (await other.get_json("/api/documents"))["documents"] == []

    mine = await user.get_json(f"/api/documents/{doc}")
    assert mine["content"] == "secret 2" and mine["version"] == 2
    assert len((await user.get_json(f"/api/documents/{doc}/versions"))["versions"]) == 2
    assert [i["id"] for i in (await user.get_json("/api/trash"))["items"]] == [trashed]


async def test_a_save_whose_body_is_cut_off_is_a_client_error_in_the_log_not_a_500(
    settings: Settings,
):
    """A tab closed while its autosave was being sent: the body stops short of its declared
    length and the connection closes. That is the client's doing, logged as a 4xx. (Served as
    ``multinotes serve`` serves, which lets the handler run on when the client goes away; the
    test server would cancel it instead.)"""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    try:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 too
        async with aiohttp.ClientSession(base, cookie_jar=jar) as http:
            credentials = {"email": "cut@example.com", "password": "a long enough password"}
            (await http.post("/api/auth/register", json={**credentials, "name": "C"})).close()
            login = await http.post("/api/auth/login", json=credentials)
            csrf = (await login.json())["csrf_token"]
            headers = {"X-CSRF-Token": csrf}
            created = await http.post(
                "/api/documents", json={"title": "Draft", "content": "first"}, headers=headers
            )
            doc = await created.json()
            cookies = "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)
            body = json.dumps({"version": doc["version"], "content": "typed just before leaving"})
            head = (
                f"PATCH /api/documents/{doc['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Cookie: {cookies}\r\nX-CSRF-Token: {csrf}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body) + 500}\r\n\r\n"
            )
            with capture_logs() as logged:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head.encode() + body.encode())
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.close()
                await reader.read()  # the server may answer or just close: either way it is done
                patches: list[dict] = []
                for _ in range(50):  # the handler sees the lost connection soon after the close
                    patches = [e for e in logged if e.get("method") == "PATCH"]
                    if patches:
                        break
                    await asyncio.sleep(0.1)
            assert patches, "the cut-off save was not logged"
            assert 400 <= patches[0]["status"] < 500, patches[0]
            assert not [e for e in logged if e["event"] == "unhandled_error"]
            unchanged = await (await http.get(f"/api/documents/{doc['id']}")).json()
            assert unchanged["content"] == "first" and unchanged["version"] == doc["version"]
    finally:
        await runner.cleanup()
