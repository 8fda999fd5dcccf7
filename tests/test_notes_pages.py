"""The notes workspace in the browser's terms, through HTTP: ``/notes`` (folder tree, breadcrumbs,
the current folder's subfolders and notes, sort, filter, list or grid, bulk moves and deletes),
the note editor ``/notes/{id}`` with its provenance, the history with diff and restore, the
trash, and ``/files``. Every page is its owner's alone (anyone else: 404), every form needs the
CSRF token, and empty pages tell a newcomer what to do."""

from __future__ import annotations

import re
import types
from typing import Any

import aiohttp
from aiohttp import web

from multinotes import hookimpl
from multinotes.app import create_app
from multinotes.testing import ApiClient, app_client
from tests.support import demo_user
from tests.support.pages import Page, get_page
from tests.support.sse import parse_sse

ECHO = "demo/echo"


# -- reading pages ------------------------------------------------------------------------------


def rows(page: Page) -> list[str]:
    """The titles of the folder and note rows shown, in order."""
    return [e.words for e in page.with_class("item-title")]


async def submit(
    api: ApiClient, path: str, fields: list[tuple[str, str]] | None = None, *, token: bool = True
) -> Any:
    """Post a form as the browser does (urlencoded, with the page's CSRF token)."""
    data = [("csrf_token", api.csrf or "")] if token else []
    data += fields or []
    return await api.client.post(path, data=data, allow_redirects=False)


async def follow(api: ApiClient, response: Any) -> Page:
    """The page a POST-redirect-GET lands on (with its flash message)."""
    text = await response.text()
    assert response.status == 303, (response.status, text[:500])
    return await get_page(api, response.headers["Location"])


# -- people and their things --------------------------------------------------------------------


user = demo_user.user


async def someone(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def folder(api: ApiClient, name: str, parent: str | None = None) -> str:
    response = await api.post("/api/folders", {"name": name, "parent_id": parent})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def note(api: ApiClient, title: str, content: str = "", folder_id: str | None = None) -> str:
    response = await api.post(
        "/api/documents", {"title": title, "content": content, "folder_id": folder_id}
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def edit(api: ApiClient, document_id: str, **changes: Any) -> dict[str, Any]:
    current = await api.get_json(f"/api/documents/{document_id}")
    response = await api.patch(
        f"/api/documents/{document_id}", {"version": current["version"], **changes}
    )
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def saved_answer(api: ApiClient, prompt: str, folder_id: str | None) -> dict[str, str]:
    """Ask the demo echo model and save its answer as a note; the ids involved."""
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    streamed = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": prompt, "models": [ECHO]}
    )
    assert streamed.status == 200, await streamed.text()
    done = next(d for name, d in parse_sse(await streamed.text()) if name == "done")
    saved = await api.post(f"/api/messages/{done['message_id']}/save", {"folder_id": folder_id})
    assert saved.status == 201, await saved.text()
    return {
        "conversation": conversation,
        "answer": done["message_id"],
        "document": (await saved.json())["document_id"],
    }


async def upload(api: ApiClient, name: str, data: bytes, content_type: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    response = await api.post("/api/files", data=form)
    assert response.status == 201, await response.text()
    return dict(await response.json())


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


# -- who may see the pages ----------------------------------------------------------------------


async def test_the_notes_pages_ask_visitors_to_log_in(api: ApiClient) -> None:
    some_id = "0" * 32
    for path in ("/notes", f"/notes/{some_id}", f"/notes/{some_id}/history", "/trash", "/files"):
        response = await api.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/login?next=" + path


async def test_the_top_navigation_leads_to_notes_and_files(user: ApiClient) -> None:
    page = await get_page(user, "/notes")
    nav = page.one("nav", id="topnav", aria_label="Main")
    assert nav
    links = {
        e.attrs["href"]: e for e in page.find("a") if e.attrs.get("href") in ("/notes", "/files")
    }
    assert set(links) == {"/notes", "/files"}
    current = [e.words for e in page.find("a", aria_current="page") if e.words == "Notes"]
    assert current, "Notes is the current section"


async def test_someone_elses_notes_folders_trash_and_files_are_not_found(
    user: ApiClient, make_client: Any
) -> None:
    a = user
    place = await folder(a, "A's folder")
    document = await note(a, "A's note", "secret words", place)
    other = await note(a, "A's other note")
    file = await upload(a, "a.txt", b"A's file", "text/plain")
    await edit(a, document, content="more secret words")
    assert (await a.delete(f"/api/documents/{other}")).status == 204
    b = await someone(make_client, "bea@example.com")

    for path in (
        f"/notes/{document}",
        f"/notes/{document}/history",
        f"/notes/{document}/history?v=1",
        f"/notes?folder={place}",
    ):
        page = await get_page(b, path, 404)
        assert "secret" not in page.html and "A&#39;s" not in page.html and "A's" not in page.html

    before_a = await get_page(a, f"/notes?folder={place}")
    for path, fields in (
        ("/notes/move", [("item", f"document:{document}"), ("target", "")]),
        ("/notes/move", [("item", f"folder:{place}"), ("target", "")]),
        ("/notes/delete", [("item", f"document:{document}")]),
        ("/notes/delete", [("item", f"folder:{place}")]),
        ("/notes/new", [("folder", place)]),
        ("/notes/folders", [("name", "Inside A's"), ("parent", place)]),
        (f"/notes/folders/{place}/rename", [("name", "Mine now")]),
        (f"/notes/{document}/duplicate", []),
        (f"/notes/{document}/versions/1/restore", []),
        ("/trash/restore", [("item", f"document:{other}")]),
        (f"/files/{file['id']}/rename", [("name", "mine.txt")]),
        (f"/files/{file['id']}/delete", []),
    ):
        response = await submit(b, path, fields)
        assert response.status == 404, (path, response.status, (await response.text())[:300])

    # B's own pages show nothing of A's, and A's things are as they were.
    assert "A's" not in (await get_page(b, "/notes")).html.replace("&#39;", "'")
    assert (await get_page(b, "/notes")).by_id("empty-state")
    assert rows(await get_page(a, f"/notes?folder={place}")) == rows(before_a)
    assert (await a.get_json(f"/api/documents/{document}"))["version"] == 2
    assert [i["id"] for i in (await a.get_json("/api/trash"))["items"]] == [other]
    assert (await a.get_json(f"/api/files/{file['id']}"))["name"] == "a.txt"
    assert (await a.get_json("/api/folders"))["folders"][0]["name"] == "A's folder"


async def test_every_form_carries_the_csrf_token_and_is_refused_without_it(
    user: ApiClient,
) -> None:
    place = await folder(user, "Work")
    document = await note(user, "Plan", "step one", place)
    await edit(user, document, content="step two")
    file = await upload(user, "plan.txt", b"plan", "text/plain")
    pages = [
        await get_page(user, "/notes"),
        await get_page(user, f"/notes?folder={place}"),
        await get_page(user, f"/notes/{document}"),
        await get_page(user, f"/notes/{document}/history?v=1"),
        await get_page(user, "/files"),
    ]
    actions = set()
    for page in pages:
        for form in page.find("form", method="post"):
            actions.add(form.attrs["action"])
        tokens = {e.attrs["value"] for e in page.find("input", name="csrf_token")}
        assert tokens == {user.csrf}
    assert {
        "/notes/new",
        "/notes/folders",
        f"/notes/folders/{place}/rename",
        "/notes/move",
        "/notes/delete",
        f"/notes/{document}/duplicate",
        f"/notes/{document}/versions/1/restore",
        f"/files/{file['id']}/rename",
        f"/files/{file['id']}/delete",
    } <= actions

    await user.delete(f"/api/documents/{document}")
    trash = await get_page(user, "/trash")
    assert trash.one("form", method="post", action="/trash/restore")
    for path, fields in (
        ("/notes/folders", [("name", "Sneaky")]),
        ("/notes/new", []),
        ("/trash/restore", [("item", f"document:{document}")]),
        ("/notes/preview", [("content", "# hi")]),
        (f"/files/{file['id']}/delete", []),
    ):
        response = await submit(user, path, fields, token=False)
        assert response.status == 403, path
        assert "csrf" in (await response.text()).lower()
    assert [f["name"] for f in (await user.get_json("/api/folders"))["folders"]] == ["Work"]
    assert (await user.get_json("/api/trash"))["items"][0]["id"] == document
    assert (await user.get_json(f"/api/files/{file['id']}"))["name"] == "plan.txt"


# -- empty states -------------------------------------------------------------------------------


async def test_a_newcomer_is_told_how_notes_come_about(user: ApiClient) -> None:
    page = await get_page(user, "/notes")
    empty = page.by_id("empty-state")
    assert "Save" in empty.text and "Chat" in empty.text
    assert empty.words and page.find("a", href="/chat")
    assert page.find("form", action="/notes/new")
    assert page.by_id("new-folder")
    assert not page.has_id("notes-items")
    assert "0 bytes of 5 GB used" in page.by_id("sidebar-usage").words

    trash = await get_page(user, "/trash")
    assert "The trash is empty" in trash.by_id("empty-state").words
    assert "30 days" in trash.by_id("empty-state").words

    files = await get_page(user, "/files")
    assert "No files yet" in files.by_id("files-empty").words
    assert "0 bytes of 5 GB used" in files.by_id("files-usage").words


async def test_an_empty_folder_and_a_filter_without_matches_say_what_to_do(
    user: ApiClient,
) -> None:
    place = await folder(user, "Ideas")
    page = await get_page(user, f"/notes?folder={place}")
    empty = page.by_id("empty-state")
    assert "“Ideas” is empty" in empty.words
    assert "Drag notes" in empty.words and "Move to" in empty.words
    assert "New note in “Ideas”" in empty.words

    await note(user, "Groceries", "milk")
    filtered = await get_page(user, "/notes?q=zebra")
    assert "Nothing matches “zebra”" in filtered.by_id("empty-state").words
    clear = [a for a in filtered.find("a", href="/notes") if a.words == "Clear the filter"]
    assert len(clear) == 1


# -- /notes: the tree, breadcrumbs, rows --------------------------------------------------------


async def test_a_folder_page_shows_the_tree_breadcrumbs_subfolders_and_notes(
    user: ApiClient,
) -> None:
    work = await folder(user, "Work")
    projects = await folder(user, "Projects", work)
    launch = await folder(user, "Launch", projects)
    await folder(user, "Archive", work)
    await folder(user, "Personal")
    await note(user, "Kick-off", "# Agenda\n\n- **budget**\n- people", projects)
    await note(user, "Elsewhere", "not here", work)

    page = await get_page(user, f"/notes?folder={projects}")
    assert page.by_id("notes-title").words == "Projects"
    crumbs = page.one("nav", aria_label="Breadcrumb")
    assert crumbs.words == "Notes Work Projects"
    # The current folder is marked in the breadcrumbs and in the tree.
    assert len(page.find("a", href=f"/notes?folder={projects}", aria_current="page")) == 2
    # Subfolders first, then notes; the excerpt is plain text.
    assert rows(page) == ["Launch", "Kick-off"]
    assert page.with_class("item-excerpt")[0].words == "Agenda budget people"
    assert page.by_id(f"item-{launch}").attrs["data-drop-target"] == launch
    # The tree shows every folder, opened down to the current one.
    tree = page.one("nav", aria_label="Folders")
    assert tree.words == (
        "Notes Personal Subfolders of Work Work Archive Subfolders of Projects Projects Launch"
    )
    assert page.one("button", aria_controls=f"tree-{work}").attrs["aria-expanded"] == "true"
    assert page.one("button", aria_controls=f"tree-{projects}").attrs["aria-expanded"] == "true"
    assert "hidden" not in page.one("ul", id=f"tree-{projects}").attrs
    # New notes and folders go into the folder shown.
    # (the "New note" form and the toolbar, which filters within the folder)
    assert {e.attrs["value"] for e in page.find("input", name="folder")} == {projects}
    assert page.one("input", name="parent").attrs["value"] == projects

    assert rows(await get_page(user, f"/notes?folder={work}")) == [
        "Archive",
        "Projects",
        "Elsewhere",
    ]
    root = await get_page(user, "/notes")
    assert rows(root) == ["Personal", "Work"]  # notes in folders are not at the top
    assert root.one("button", aria_controls=f"tree-{work}").attrs["aria-expanded"] == "false"
    await get_page(user, f"/notes?folder={'f' * 32}", 404)


async def test_notes_sort_filter_and_remember_list_or_grid(user: ApiClient) -> None:
    banana = await note(user, "Banana bread", "flour and bananas")
    await note(user, "Apple pie", "apples, butter")
    await note(user, "Cherry jam", "cherries and sugar, like the bananas")
    await edit(user, banana, content="flour, bananas, walnuts")  # the newest edit

    assert rows(await get_page(user, "/notes")) == ["Banana bread", "Cherry jam", "Apple pie"]
    assert rows(await get_page(user, "/notes?sort=title")) == [
        "Apple pie",
        "Banana bread",
        "Cherry jam",
    ]
    assert rows(await get_page(user, "/notes?sort=-title"))[0] == "Cherry jam"
    assert rows(await get_page(user, "/notes?sort=created"))[0] == "Banana bread"
    page = await get_page(user, "/notes?q=BANANA&sort=title")
    assert rows(page) == ["Banana bread", "Cherry jam"]  # by title or by text
    assert page.one("input", id="notes-filter").attrs["value"] == "BANANA"
    assert "selected" in page.one("option", value="title").attrs
    assert rows(await get_page(user, "/notes?sort=nonsense"))[0] == "Banana bread"

    assert "view-list" in (await get_page(user, "/notes")).by_id("notes-items").attrs["class"]
    grid = await user.get("/notes?view=grid")
    assert "mn_notes_view=grid" in grid.headers.get("Set-Cookie", "")
    page = await get_page(user, "/notes")  # remembered
    assert "view-grid" in page.by_id("notes-items").attrs["class"]
    assert page.one("a", data_view="grid").attrs["aria-pressed"] == "true"
    assert page.one("a", data_view="list").attrs["aria-pressed"] == "false"


async def test_long_folders_page_through_their_notes(user: ApiClient) -> None:
    for number in range(53):
        await note(user, f"Note {number:02d}")
    first = await get_page(user, "/notes?sort=title")
    assert len(rows(first)) == 50 and rows(first)[0] == "Note 00"
    more = first.by_id("more-notes").attrs["href"]
    second = await get_page(user, more)
    assert rows(second) == ["Note 50", "Note 51", "Note 52"]
    assert not second.has_id("more-notes")
    assert second.one("a", href="/notes?sort=title").words == "Back to the first page"
    # A cursor from a broken link starts again from the top instead of failing.
    assert rows(await get_page(user, "/notes?sort=title&cursor=garbage"))[0] == "Note 00"


# -- /notes: forms ------------------------------------------------------------------------------


async def test_folders_are_created_renamed_and_refused_clearly(user: ApiClient) -> None:
    created = await submit(
        user, "/notes/folders", [("name", "  Reading   list "), ("next", "/notes")]
    )
    page = await follow(user, created)
    assert "Folder “Reading list” created." in page.flash
    folders = (await user.get_json("/api/folders"))["folders"]
    assert [f["name"] for f in folders] == ["Reading list"]
    reading = folders[0]["id"]
    assert rows(page) == ["Reading list"]

    inner = await submit(
        user,
        "/notes/folders",
        [("name", "Novels"), ("parent", reading), ("next", f"/notes?folder={reading}")],
    )
    page = await follow(user, inner)
    assert rows(page) == ["Novels"]

    clash = await submit(user, "/notes/folders", [("name", "READING LIST")])
    page = await follow(user, clash)
    assert (
        "already exists" in page.flash
        and "flash-error" in page.with_class("flash")[0].attrs["class"]
    )
    blank = await follow(user, await submit(user, "/notes/folders", [("name", "   ")]))
    assert "Name must not be blank." in blank.flash
    slash = await follow(user, await submit(user, "/notes/folders", [("name", "a/b")]))
    assert "must not contain '/'" in slash.flash

    renamed = await submit(
        user,
        f"/notes/folders/{reading}/rename",
        [("name", "To read"), ("next", f"/notes?folder={reading}")],
    )
    page = await follow(user, renamed)
    assert "Folder renamed to “To read”." in page.flash
    assert page.by_id("notes-title").words == "To read"
    assert sorted(f["name"] for f in (await user.get_json("/api/folders"))["folders"]) == [
        "Novels",
        "To read",
    ]
    # "next" only ever leads back into the app.
    away = await submit(user, "/notes/folders", [("name", "X"), ("next", "https://evil.example")])
    assert away.headers["Location"] == "/notes"


async def test_moving_notes_and_folders_is_all_or_nothing(user: ApiClient) -> None:
    inbox = await folder(user, "Inbox")
    archive = await folder(user, "Archive")
    old = await folder(user, "Old", inbox)
    older = await folder(user, "Older", old)
    first = await note(user, "First", "one", inbox)
    second = await note(user, "Second", "two", inbox)
    await folder(user, "Old", archive)  # a name that is taken in the archive

    moved = await submit(
        user,
        "/notes/move",
        [
            ("item", f"document:{first}"),
            ("item", f"document:{second}"),
            ("target", archive),
            ("next", f"/notes?folder={inbox}"),
        ],
    )
    page = await follow(user, moved)
    assert "Moved 2 notes to “Archive”." in page.flash
    assert rows(page) == ["Old"]
    versions = [(await user.get_json(f"/api/documents/{d}"))["version"] for d in (first, second)]
    assert versions == [1, 1]  # a move is not an edit

    def where() -> Any:
        return user.get_json("/api/folders")

    before = await where()
    refused = await submit(
        user,
        "/notes/move",
        [("item", f"document:{first}"), ("item", f"folder:{old}"), ("target", archive)],
    )
    page = await follow(user, refused)
    assert "A folder named “Old” already exists there." in page.flash
    assert await where() == before

    into_itself = await submit(
        user, "/notes/move", [("item", f"folder:{inbox}"), ("target", older)]
    )
    page = await follow(user, into_itself)
    assert "cannot be moved into itself or one of its subfolders" in page.flash
    assert await where() == before

    nothing = await follow(user, await submit(user, "/notes/move", [("target", archive)]))
    assert "Select at least one folder or note first." in nothing.flash
    malformed = await follow(
        user, await submit(user, "/notes/move", [("item", "note:123"), ("target", "")])
    )
    assert "names no folder or note" in malformed.flash

    to_top = await submit(
        user,
        "/notes/move",
        [("item", f"folder:{old}"), ("item", f"document:{first}"), ("target", "")],
    )
    page = await follow(user, to_top)
    assert "Moved 1 folder and 1 note to the top level." in page.flash
    assert rows(await get_page(user, "/notes")) == ["Archive", "Inbox", "Old", "First"]
    assert rows(await get_page(user, f"/notes?folder={old}")) == ["Older"]  # it came along


async def test_bulk_delete_moves_everything_chosen_to_the_trash_at_once(user: ApiClient) -> None:
    trip = await folder(user, "Trip")
    inside = await note(user, "Packing list", "socks", trip)
    loose = await note(user, "Loose note")
    keep = await note(user, "Keep me")
    response = await submit(
        user,
        "/notes/delete",
        [
            ("item", f"folder:{trip}"),
            ("item", f"document:{inside}"),  # inside the folder: goes (and comes back) with it
            ("item", f"document:{loose}"),
            ("next", "/notes"),
        ],
    )
    page = await follow(user, response)
    assert "Moved 1 folder and 2 notes to the trash." in page.flash
    assert "30 days" in page.flash
    assert rows(page) == ["Keep me"]
    trash = await get_page(user, "/trash")
    assert [e.words for e in trash.with_class("item-title")] == ["Trip", "Loose note"]

    restored = await follow(
        user, await submit(user, "/trash/restore", [("item", f"folder:{trip}")])
    )
    assert "Restored the folder “Trip” with everything that was in it." in restored.flash
    assert rows(await get_page(user, f"/notes?folder={trip}")) == ["Packing list"]

    missing = await submit(
        user, "/notes/delete", [("item", f"document:{keep}"), ("item", f"document:{'a' * 32}")]
    )
    assert missing.status == 404
    assert (await user.get_json(f"/api/documents/{keep}"))["title"] == "Keep me"


async def test_new_note_opens_the_editor_in_its_folder(user: ApiClient) -> None:
    place = await folder(user, "Drafts")
    response = await submit(user, "/notes/new", [("folder", place)])
    assert response.status == 303
    location = response.headers["Location"]
    match = re.fullmatch(r"/notes/([0-9a-f]{32})\?new=1", location)
    assert match, location
    page = await get_page(user, location)
    editor = page.by_id("note-page")
    assert editor.attrs["data-new"] == "true" and editor.attrs["data-can-edit"] == "true"
    assert page.by_id("note-title").attrs["value"] == "Untitled note"
    assert page.one("textarea", id="note-content").text == ""
    assert "Nothing to preview yet." in page.by_id("note-preview").words
    assert page.one("nav", aria_label="Breadcrumb").words == "Notes Drafts Untitled note"
    assert (await user.get_json(f"/api/documents/{match[1]}"))["folder_id"] == place
    await get_page(user, f"/notes/{'0' * 32}", 404)


# -- the editor ---------------------------------------------------------------------------------


async def test_the_editor_shows_the_text_preview_version_and_actions(user: ApiClient) -> None:
    place = await folder(user, "Cooking")
    document = await note(user, "Soup", "# Soup\n\nSalt **to taste**.", place)
    await edit(user, document, title="Tomato soup")
    page = await get_page(user, f"/notes/{document}")
    assert page.by_id("note-page").attrs["data-version"] == "2"
    assert page.by_id("note-title").attrs["value"] == "Tomato soup"
    content = page.one("textarea", id="note-content")
    assert content.text == "# Soup\n\nSalt **to taste**."
    assert content.attrs["hx-post"] == "/notes/preview"
    assert "delay:" in content.attrs["hx-trigger"]
    assert "<strong>to taste</strong>" in page.html
    status = page.by_id("save-status")
    assert status.attrs["role"] == "status" and status.attrs["aria-live"] == "polite"
    assert status.words == "Saved · version 2"
    assert page.by_id("conflict").attrs.get("hidden") is not None
    assert page.one("a", href=f"/notes/{document}/history").words == "History"
    assert page.one("form", action=f"/notes/{document}/duplicate")
    assert page.one("button", data_move=f"document:{document}")
    delete = page.one("input", name="item", value=f"document:{document}")
    assert delete
    assert page.one("input", name="next", value=f"/notes?folder={place}")
    assert page.has_id("move-dialog") and page.has_id("dialog-slot")
    assert not page.has_id("provenance")  # written by hand


async def test_the_preview_is_rendered_and_sanitised_on_the_server(user: ApiClient) -> None:
    response = await submit(
        user,
        "/notes/preview",
        [
            (
                "content",
                "## Title\n\n<script>alert(1)</script>\n\n[click](javascript:alert(2)) "
                '<img src=x onerror="alert(3)">\n\n| a | b |\n|---|---|\n| 1 | 2 |',
            )
        ],
    )
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert "<h2>Title</h2>" in html and "<table>" in html
    preview = Page(html)
    assert not preview.find("script") and not preview.find("img")
    assert not [a for a in preview.find("a") if "javascript" in a.attrs.get("href", "")]
    assert "&lt;script&gt;" in html  # shown as text, never run
    empty = await submit(user, "/notes/preview", [("content", "  ")])
    assert "Nothing to preview yet." in await empty.text()


async def test_duplicate_opens_a_copy(user: ApiClient) -> None:
    document = await note(user, "Recipe", "eggs")
    await edit(user, document, content="eggs and flour")
    response = await submit(user, f"/notes/{document}/duplicate")
    page = await follow(user, response)
    assert "This is a copy of “Recipe”." in page.flash
    assert page.by_id("note-title").attrs["value"] == "Recipe (copy)"
    assert page.by_id("note-page").attrs["data-version"] == "1"  # a fresh history
    assert rows(await get_page(user, "/notes")) == ["Recipe (copy)", "Recipe"]


async def test_a_saved_answer_shows_where_it_came_from_and_offers_a_rerun(
    user: ApiClient,
) -> None:
    place = await folder(user, "Answers")
    ids = await saved_answer(user, "Explain tides in one line", place)
    page = await get_page(user, f"/notes/{ids['document']}")
    provenance = page.by_id("provenance")
    assert "Saved answer" in provenance.words
    assert page.by_id("provenance-prompt").words == "Explain tides in one line"
    assert page.by_id("provenance-conversation").attrs["href"] == f"/chat/{ids['conversation']}"
    assert page.one("a", href=f"/chat/{ids['conversation']}?leaf={ids['answer']}")
    # Its moments are <time>s the page shows in the reader's time zone.
    stamps = [t.attrs.get("datetime", "") for t in page.find("time")]
    assert len([d for d in stamps if re.match(r"^\d{4}-\d\d-\d\dT", d)]) >= 3, stamps
    source = page.with_class("source")[0].words
    assert "Echo" in source and "demo/echo" in source and "Demo" in source
    assert re.search(r"Tokens ?\d+ in / \d+ out", source)
    assert re.search(r"Cost ?\d+ credits?", source)
    assert "first token" in source and "total" in source
    # Re-run: the saved model is ticked, others may be chosen.
    boxes = {e.attrs["value"]: e for e in page.find("input", name="models")}
    assert "checked" in boxes[ECHO].attrs
    assert "demo/reverse" in boxes and "checked" not in boxes["demo/reverse"].attrs
    assert page.by_id("rerun").words == "Re-run"
    assert page.one("nav", aria_label="Breadcrumb").words.startswith("Notes Answers")
    assert (
        "Saved answer"
        in (await get_page(user, f"/notes?folder={place}")).by_id(f"item-{ids['document']}").words
    )

    rerun = await user.post(f"/api/documents/{ids['document']}/rerun", {"models": ["demo/reverse"]})
    assert rerun.status == 200
    await rerun.text()
    again = await get_page(user, f"/notes/{ids['document']}")
    assert "Earlier re-runs (1)" in again.with_class("reruns")[0].words


async def test_a_viewer_of_a_saved_answer_gets_conversation_links_only_where_they_open(
    user: ApiClient, make_client: Any
) -> None:
    """The note is shared, the conversation is not: no links to a conversation that would be a
    404. Once the conversation is shared too, the links lead to where the viewer can read it."""
    ids = await saved_answer(user, "Explain tides in one line", None)
    bob = await someone(make_client, "bob@example.com")
    shared = await user.post(
        "/api/shares",
        {"object_type": "document", "object_id": ids["document"], "email": "bob@example.com"},
    )
    assert shared.status == 201, await shared.text()
    page = await get_page(bob, f"/notes/{ids['document']}")
    assert page.by_id("provenance-prompt").words == "Explain tides in one line"
    links = [a.attrs.get("href", "") for a in page.find("a")]
    assert not [href for href in links if ids["conversation"] in href], links
    assert (await bob.get(f"/chat/{ids['conversation']}")).status == 404

    also = await user.post(
        "/api/shares",
        {
            "object_type": "conversation",
            "object_id": ids["conversation"],
            "email": "bob@example.com",
        },
    )
    assert also.status == 201, await also.text()
    page = await get_page(bob, f"/notes/{ids['document']}")
    href = page.by_id("provenance-conversation").attrs["href"]
    assert href == f"/shared/conversations/{ids['conversation']}"
    assert (await bob.get(href)).status == 200
    links = [a.attrs.get("href", "") for a in page.find("a")]
    assert not [h for h in links if h.startswith(f"/chat/{ids['conversation']}")], links


# -- history ------------------------------------------------------------------------------------


async def test_history_lists_versions_diffs_against_the_current_one_and_restores(
    user: ApiClient,
) -> None:
    document = await note(user, "Poem", "roses are red\nviolets are blue\n")
    only = await get_page(user, f"/notes/{document}/history")
    assert "Only one version so far" in only.by_id("history-empty").words
    assert not [f for f in only.find("form") if "/restore" in f.attrs.get("action", "")]

    await edit(user, document, content="roses are red\nviolets are purple\nsugar is sweet\n")
    await edit(user, document, title="A poem")
    page = await get_page(user, f"/notes/{document}/history")
    listed = [e.words for e in page.find("a") if e.attrs.get("data-version")]
    assert [w.split(" ")[1] for w in listed] == ["3", "2", "1"]
    assert "Current" in listed[0]
    # By default: the version before the current one, and what changed since.
    assert page.one("a", aria_current="true").attrs["data-version"] == "2"
    assert "the title changed from “Poem” to “A poem”" in page.by_id("diff-summary").words
    assert "The text is the same" in page.by_id("diff-summary").words

    page = await get_page(user, f"/notes/{document}/history?v=1")
    diff = page.by_id("diff")
    classes = [e.attrs.get("class", "") for e in page.find("li")]
    assert [c for c in classes if c.startswith("diff-")] == [
        "diff-equal",
        "diff-delete",
        "diff-insert",
        "diff-insert",
    ]
    assert "Removed: violets are blue" in diff.words
    assert "Added: violets are purple" in diff.words
    assert "1 line added" not in page.by_id("diff-summary").words
    assert "2 lines added, 1 removed" in page.by_id("diff-summary").words
    assert "violets are blue" in page.by_id("version-content").words

    restored = await submit(user, f"/notes/{document}/versions/1/restore")
    page = await follow(user, restored)
    assert "Version 1 restored. It is saved as version 4" in page.flash
    current = await user.get_json(f"/api/documents/{document}")
    assert current["version"] == 4
    assert current["content"] == "roses are red\nviolets are blue\n" and current["title"] == "Poem"

    current_view = await get_page(user, f"/notes/{document}/history?v=4")
    assert "This is the current version" in current_view.by_id("version-view").words
    assert not [f for f in current_view.find("form") if "/restore" in f.attrs.get("action", "")]
    assert (await get_page(user, f"/notes/{document}/history?v=99")).one(
        "a", aria_current="true"
    ).attrs["data-version"] == "3"
    for bad in ("0", "99", "x"):
        response = await submit(user, f"/notes/{document}/versions/{bad}/restore")
        assert response.status == 404, bad


async def test_long_unchanged_stretches_are_folded_in_the_diff(user: ApiClient) -> None:
    lines = [f"line {n}" for n in range(40)]
    document = await note(user, "Long", "\n".join(lines))
    lines[20] = "line twenty"
    await edit(user, document, content="\n".join(lines))
    page = await get_page(user, f"/notes/{document}/history?v=1")
    skipped = [e.words for e in page.with_class("diff-skip")]
    assert skipped == ["… 17 unchanged lines …", "… 16 unchanged lines …"]


# -- trash --------------------------------------------------------------------------------------


async def test_the_trash_lists_what_was_deleted_with_days_left_and_restores_it(
    user: ApiClient,
) -> None:
    ideas = await folder(user, "Ideas")
    await note(user, "Inside ideas", "", ideas)
    memo = await note(user, "Memo", "call back")
    assert (await user.delete(f"/api/documents/{memo}")).status == 204
    assert (await user.delete(f"/api/folders/{ideas}")).status == 204

    page = await get_page(user, "/trash")
    items = page.with_class("trash-item")
    assert [e.attrs["id"] for e in items] == [f"trash-{ideas}", f"trash-{memo}"]
    assert "Folder" in items[0].words and "30 days left" in items[0].words
    assert "Note" in items[1].words and "30 days left" in items[1].words
    assert page.one("a", href="/trash", aria_current="page")

    response = await submit(user, "/trash/restore", [("item", f"document:{memo}")])
    page = await follow(user, response)
    assert "Restored “Memo”." in page.flash
    assert [e.attrs["id"] for e in page.with_class("trash-item")] == [f"trash-{ideas}"]
    assert rows(await get_page(user, "/notes")) == ["Memo"]

    again = await submit(user, "/trash/restore", [("item", f"document:{memo}")])
    assert again.status == 404  # no longer in the trash
    bad = await submit(user, "/trash/restore", [("item", "nonsense")])
    assert bad.status == 404


# -- files --------------------------------------------------------------------------------------


async def test_the_files_page_lists_files_with_previews_and_storage_usage(user: ApiClient) -> None:
    text = await upload(user, "notes.txt", b"first line\nsecond line\n", "text/plain")
    image = await upload(user, "dot.png", PNG, "image/png")
    page = await get_page(user, "/files")
    usage = page.by_id("files-usage")
    assert f"{len(PNG) + 23} bytes of 5 GB used" in usage.words
    meter = page.one("meter", id="files-usage-meter")
    assert meter.attrs["value"] == str(len(PNG) + 23)
    assert meter.attrs["max"] == str(5 * 1024**3)
    cards = page.with_class("file-card")
    assert [c.attrs["id"] for c in cards] == [f"file-{image['id']}", f"file-{text['id']}"]
    assert page.one("img", src=f"/api/files/{image['id']}/preview")
    assert page.one("pre", data_preview=f"/api/files/{text['id']}/preview")
    assert "notes.txt" in cards[1].words and "23 bytes" in cards[1].words
    assert page.by_id("dropzone").attrs["data-max-bytes"] == str(25 * 1024 * 1024)
    assert ".png" in page.by_id("file-input").attrs["accept"]
    # The notes sidebar shows the same indicator.
    sidebar = (await get_page(user, "/notes")).by_id("sidebar-usage")
    assert f"{len(PNG) + 23} bytes of 5 GB used" in sidebar.words


async def test_files_are_renamed_and_deleted_with_forms(user: ApiClient) -> None:
    file = await upload(user, "draft.txt", b"draft", "text/plain")
    renamed = await submit(
        user, f"/files/{file['id']}/rename", [("name", "final.txt"), ("next", "/files")]
    )
    page = await follow(user, renamed)
    assert "Renamed to “final.txt”." in page.flash
    assert "final.txt" in page.by_id(f"file-{file['id']}").words

    wrong = await follow(
        user, await submit(user, f"/files/{file['id']}/rename", [("name", "final.exe")])
    )
    assert "Keep an extension that matches the content: .log, .text, .txt." in wrong.flash
    assert (await user.get_json(f"/api/files/{file['id']}"))["name"] == "final.txt"

    deleted = await submit(user, f"/files/{file['id']}/delete", [("next", "/files")])
    page = await follow(user, deleted)
    assert "Deleted “final.txt”." in page.flash
    assert page.has_id("files-empty")
    assert (await user.get(f"/api/files/{file['id']}")).status == 404


# -- chat: saving an answer ---------------------------------------------------------------------


async def test_every_answer_in_chat_can_be_saved_into_a_folder(user: ApiClient) -> None:
    conversation = (await (await user.post("/api/conversations", {})).json())["id"]
    streamed = await user.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "hello", "models": [ECHO, "demo/reverse"]},
    )
    assert streamed.status == 200
    await streamed.text()
    page = await get_page(user, f"/chat/{conversation}")
    saves = page.find("button", data_action="save")
    assert len(saves) == 2
    dialog = page.by_id("save-dialog")
    assert dialog.tag == "dialog"
    assert page.one("select", id="save-folder")
    assert page.by_id("save-all-label")
    assert any("save-answer.js" in e.attrs.get("src", "") for e in page.find("script"))


# -- slots for sharing, comments and activity ---------------------------------------------------


async def _slot(request: web.Request) -> web.Response:
    return web.Response(text="<p>slot</p>", content_type="text/html")


slots_plugin = types.ModuleType("slots_plugin")


@hookimpl
def _register_slot_routes(register: Any) -> None:
    register("GET", "/share/dialog", _slot, access="user", name="share_dialog")
    register("GET", "/documents/{id}/collab", _slot, access="user", name="document_collab")


slots_plugin.register_routes = _register_slot_routes  # type: ignore[attr-defined]


def share_buttons(page: Page) -> list[str]:
    return [e.attrs["hx-get"] for e in page.find("button") if "hx-get" in e.attrs]


async def test_share_and_collaboration_slots_follow_the_routes_that_exist(
    user: ApiClient, make_settings: Any
) -> None:
    place = await folder(user, "Shared stuff")
    document = await note(user, "Plan", "", place)
    named = user.app.router.named_resources()
    page = await get_page(user, f"/notes/{document}")
    listing = await get_page(user, "/notes")
    if "share_dialog" in named:
        assert f"/share/dialog?object_type=document&object_id={document}" in share_buttons(page)
        assert f"/share/dialog?object_type=folder&object_id={place}" in share_buttons(listing)
    else:
        assert share_buttons(page) == [] and share_buttons(listing) == []
    assert page.has_id("note-collab") is ("document_collab" in named)
    assert page.has_id("dialog-slot") and listing.has_id("dialog-slot")

    if "share_dialog" in named or "document_collab" in named:
        return  # the real routes are installed: the checks above covered them
    from multinotes.plugins.providers import demo

    app = create_app(make_settings(), plugins=[("demo", demo), ("slots", slots_plugin)])
    async with app_client(app) as api:
        await api.register_admin()
        place = await folder(api, "Shared stuff")
        document = await note(api, "Plan", "", place)
        page = await get_page(api, f"/notes/{document}")
        assert share_buttons(page) == [f"/share/dialog?object_type=document&object_id={document}"]
        assert page.one("button", hx_target="#dialog-slot")
        collab = page.by_id("note-collab")
        assert collab.attrs["hx-get"] == f"/documents/{document}/collab"
        assert collab.attrs["hx-trigger"] == "load"
        listing = await get_page(api, "/notes")
        assert f"/share/dialog?object_type=folder&object_id={place}" in share_buttons(listing)
        inside = await get_page(api, f"/notes?folder={place}")
        assert f"/share/dialog?object_type=folder&object_id={place}" in share_buttons(inside)


# -- bulk share --------------------------------------------------------------------------------


async def test_bulk_share_gives_a_colleague_every_chosen_folder_and_note(
    user: ApiClient, make_client: Any
) -> None:
    colleague: ApiClient = await make_client()
    await colleague.register_and_login("colleague@example.com", name="Col League")
    await colleague.mark_verified()
    trip = await folder(user, "Trip")
    inside = await note(user, "Packing list", "socks", trip)
    loose = await note(user, "Loose note")
    await note(user, "Private")

    page = await get_page(user, "/notes")
    assert page.by_id("bulk-share-submit").words == "Share"

    response = await submit(
        user,
        "/notes/share",
        [
            ("item", f"folder:{trip}"),
            ("item", f"document:{loose}"),
            ("email", "colleague@example.com"),
            ("role", "editor"),
            ("next", "/notes"),
        ],
    )
    landed = await follow(user, response)
    assert "Shared 1 folder and 1 note with colleague@example.com (editor)." in landed.flash
    shared = (await colleague.get_json("/api/shared-with-me"))["items"]
    assert sorted((s["object_type"], s["object_id"], s["role"]) for s in shared) == sorted(
        [("folder", trip, "editor"), ("document", loose, "editor")]
    )
    # The folder's notes come with it; the note left out stays private.
    assert (await colleague.get(f"/api/documents/{inside}")).status == 200


async def test_bulk_share_shares_nothing_when_one_item_is_not_yours_or_no_one_is_named(
    user: ApiClient, make_client: Any
) -> None:
    stranger: ApiClient = await make_client()
    await stranger.register_and_login("stranger@example.com", name="Stranger")
    await stranger.mark_verified()
    theirs = await note(stranger, "Theirs")
    mine = await note(user, "Mine")

    refused = await submit(
        user,
        "/notes/share",
        [("item", f"document:{mine}"), ("item", f"document:{theirs}"), ("email", "x@example.com")],
    )
    assert refused.status == 404
    assert (await user.get_json("/api/shares"))["shares"] == []

    no_email = await follow(
        user, await submit(user, "/notes/share", [("item", f"document:{mine}"), ("email", "")])
    )
    assert "Enter the email address to share with." in no_email.flash
    bad_role = await follow(
        user,
        await submit(
            user,
            "/notes/share",
            [("item", f"document:{mine}"), ("email", "x@example.com"), ("role", "owner")],
        ),
    )
    assert bad_role.flash
    assert (await user.get_json("/api/shares"))["shares"] == []
