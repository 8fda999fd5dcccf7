"""The notes workspace in a real browser: an answer saved from Chat into a folder, folders made
and a note dragged into one (or moved from the keyboard), editing with live preview and
autosave, a stale edit from a second tab, version history, the trash, uploads with progress and
the storage indicator (and uploads with JavaScript off), list and grid, and the folder drawer on
a phone.

Every test runs against the shared embedded server, whose demo models answer offline.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import confirm, wait_for_js

PASSWORD = "correct horse battery staple"
ECHO = "demo/echo"


@pytest.fixture(scope="module")
def writer(browser: Any, server: str, admin: Any) -> Any:
    """A member of the shared server (not its admin), for this module's tests."""
    context = browser.new_context(base_url=server)
    try:
        email = "nora.notes@example.com"
        registered = context.request.post(
            "/api/auth/register", data={"name": "Nora Notes", "email": email, "password": PASSWORD}
        )
        assert registered.status == 201, registered.text()
        logged_in = context.request.post(
            "/api/auth/login", data={"email": email, "password": PASSWORD}
        )
        assert logged_in.ok, logged_in.text()
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def notes(browsing: Any, writer: Any) -> Any:
    """A desktop page logged in as ``writer``."""
    return browsing.new_page(storage_state=writer)


class Api:
    """The JSON API from a logged-in page (to set the scene quickly)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        if not page.url.startswith("http"):
            page.goto("/notes")
        self.token = page.locator('meta[name="csrf-token"]').get_attribute("content")

    def call(self, method: str, path: str, data: Any = None) -> Any:
        response = self.page.request.fetch(
            path, method=method, data=data, headers={"X-CSRF-Token": self.token}
        )
        assert response.ok, f"{method} {path}: {response.status} {response.text()}"
        return response.json() if response.status != 204 else None

    def folder(self, name: str, parent: str | None = None) -> str:
        return str(self.call("POST", "/api/folders", {"name": name, "parent_id": parent})["id"])

    def note(self, title: str, content: str = "", folder: str | None = None) -> str:
        body = {"title": title, "content": content, "folder_id": folder}
        return str(self.call("POST", "/api/documents", body)["id"])

    def document(self, document_id: str) -> Any:
        return self.call("GET", f"/api/documents/{document_id}")

    def edit(self, document_id: str, **changes: Any) -> Any:
        version = self.document(document_id)["version"]
        return self.call("PATCH", f"/api/documents/{document_id}", {"version": version, **changes})


def unique(name: str) -> str:
    return f"{name} {secrets.token_hex(3)}"


FITS = """() => {
  const limit = document.documentElement.clientWidth + 1;
  return [...document.querySelectorAll('main *')]
    .filter(e => e.checkVisibility() && e.getBoundingClientRect().right > limit)
    .map(e => `${e.tagName}#${e.id}.${e.className}: ${e.getBoundingClientRect().right}`);
}"""


def fits_the_screen(page: Any) -> None:
    """The page does not scroll sideways, and nothing in its content reaches past the edge."""
    wide = page.evaluate(FITS)
    assert wide == [], f"wider than the screen: {wide}"
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"] + 1, f"the page scrolls sideways: {widths}"


def flash(page: Any) -> Any:
    """The one-time message a form's redirect shows."""
    return page.locator("main > .flash")


def row(page: Any, title: str) -> Any:
    return page.locator("#notes-items > li.item", has=page.locator(".item-title", has_text=title))


# -- save from chat -----------------------------------------------------------------------------


def test_an_answer_saved_from_chat_into_a_folder_opens_as_a_note(
    notes: Any, screenshot: Any
) -> None:
    page = notes
    api = Api(page)
    place = unique("Chat finds")
    api.folder(place)

    page.goto("/chat")
    page.locator("#model-summary").click()
    for box in page.locator('#model-picker input[name="models"]:not([disabled])').all():
        box.set_checked(box.get_attribute("value") == ECHO)
    page.locator("#model-summary").click()
    page.get_by_label("Prompt", exact=True).fill("Why is the **sky** blue")
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    answer = page.locator(f'#thread .answer[data-model="{ECHO}"]:visible').last
    expect(answer.locator('[data-field="status"]')).to_have_text("Complete")
    # Wait for the server's re-render of the thread after the stream (its turns have ids).
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))
    answer = page.locator(f'#thread > li.turn[id] .answer[data-model="{ECHO}"]:visible').last
    expect(answer).to_have_attribute("data-message-id", re.compile(r"^[0-9a-f]{32}$"))

    answer.get_by_role("button", name="Save").click()
    dialog = page.get_by_role("dialog", name="Save as a note")
    expect(dialog).to_be_visible()
    folder_select = dialog.get_by_label("Folder")
    expect(folder_select.locator("option", has_text=place)).to_have_count(1)
    folder_select.select_option(label=f"\u00a0\u00a0\u00a0{place}")
    screenshot(page, "notes-save-from-chat")
    dialog.get_by_role("button", name="Save note").click()
    expect(dialog).to_be_hidden()
    link = answer.locator(".saved-link")
    expect(link).to_have_text(f"Saved in {place}: open the note")
    expect(link).to_be_focused()

    link.click()
    expect(page).to_have_url(re.compile(r"/notes/[0-9a-f]{32}$"))
    expect(page.locator("#note-title")).to_have_value("Why is the **sky** blue")
    expect(page.locator("#note-preview")).to_contain_text("You asked: Why is the sky blue")
    expect(page.locator("#note-preview strong")).to_have_text("sky")
    crumbs = page.get_by_role("navigation", name="Breadcrumb")
    expect(crumbs).to_contain_text(place)
    provenance = page.locator("#provenance")
    expect(provenance.locator("#provenance-prompt")).to_have_text("Why is the **sky** blue")
    expect(provenance).to_contain_text("Echo")
    expect(provenance).to_contain_text(re.compile(r"\d+ in / \d+ out"))
    expect(provenance.get_by_role("link", name="Open the conversation")).to_have_attribute(
        "href", re.compile(r"^/chat/[0-9a-f]{32}$")
    )

    # Re-run on another model: the new answer streams in beside the saved one.
    page.locator(f'#rerun-form input[value="{ECHO}"]').uncheck()
    page.locator('#rerun-form input[value="demo/reverse"]').check()
    page.get_by_role("button", name="Re-run").click()
    results = page.locator("#rerun-results")
    expect(results.locator(".rerun-old")).to_contain_text("You asked: Why is the sky blue")
    new = results.locator('.rerun-card[data-model="demo/reverse"]')
    expect(new.locator('[data-field="status"]')).to_have_text("Complete")
    expect(new.locator(".rerun-body")).to_contain_text("blue")
    expect(new.get_by_role("button", name="Use this answer")).to_be_enabled()
    screenshot(page, "notes-rerun")


# -- folders and drag and drop ------------------------------------------------------------------


def test_folders_are_made_and_a_note_is_dragged_into_one_or_moved_from_the_keyboard(
    notes: Any, screenshot: Any
) -> None:
    page = notes
    api = Api(page)
    home = unique("Garden")
    home_id = api.folder(home)
    api.note("Tomatoes", "water daily", home_id)
    api.note("Roses", "prune in March", home_id)

    page.goto(f"/notes?folder={home_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(home)
    # Two folders, made with the sidebar form (inside the folder shown).
    for name in ("Vegetables", "Flowers"):
        page.locator("#new-folder > summary").click()
        page.get_by_label(re.compile("^Name")).fill(name)
        page.get_by_role("button", name="Create folder").click()
        expect(flash(page)).to_have_text(f"Folder “{name}” created.")
    expect(page.locator("#notes-items .item-title")).to_have_text(
        ["Flowers", "Vegetables", "Roses", "Tomatoes"]
    )
    tree = page.get_by_role("navigation", name="Folders")
    expect(tree.get_by_role("link", name="Vegetables")).to_be_visible()

    # Drag a note onto a folder in the tree.
    row(page, "Tomatoes").drag_to(tree.locator(".tree-row", has_text="Vegetables"))
    expect(flash(page)).to_have_text("Moved 1 note to “Vegetables”.")
    expect(page.locator("#notes-items .item-title")).to_have_text(
        ["Flowers", "Vegetables", "Roses"]
    )
    # ... and one onto a folder row in the list.
    row(page, "Roses").drag_to(row(page, "Flowers"))
    expect(flash(page)).to_have_text("Moved 1 note to “Flowers”.")
    screenshot(page, "notes-after-drag")

    page.locator("#notes-items").get_by_role("link", name="Vegetables").click()
    expect(page.locator("#notes-items .item-title")).to_have_text(["Tomatoes"])
    expect(page.get_by_role("navigation", name="Breadcrumb")).to_have_text(
        re.compile(rf"Notes\s*/?\s*{home}\s*/?\s*Vegetables")
    )

    # The keyboard way: the row's menu, "Move to…", a destination.
    menu = row(page, "Tomatoes").locator(".row-menu")
    menu.locator("summary").focus()
    page.keyboard.press("Enter")
    menu.get_by_role("button", name="Move to…").click()
    dialog = page.get_by_role("dialog", name="Move to…")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Where should “Tomatoes” go?")
    dialog.get_by_label("Destination").select_option(label="\u00a0" * 6 + "Flowers")
    dialog.get_by_role("button", name="Move").click()
    expect(flash(page)).to_have_text("Moved 1 note to “Flowers”.")
    expect(page.locator("#empty-state")).to_contain_text("“Vegetables” is empty")
    page.goto(f"/notes?folder={home_id}")
    row(page, "Flowers").get_by_role("link", name="Flowers").click()
    # Newest edit first, and a move counts: Tomatoes came last.
    expect(page.locator("#notes-items .item-title")).to_have_text(["Tomatoes", "Roses"])


def test_bulk_select_moves_shares_and_deletes_several_items_at_once(notes: Any, admin: Any) -> None:
    page = notes
    api = Api(page)
    shelf = api.folder(unique("Shelf"))
    box = api.folder("Box", shelf)
    for title in ("Cup", "Plate", "Spoon"):
        api.note(title, "", shelf)
    page.goto(f"/notes?folder={shelf}")
    expect(page.locator("#bulk-move")).to_be_disabled()
    page.get_by_label("Select Cup").check()
    page.get_by_label("Select Spoon").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.locator("#bulk-target").select_option(value=box)
    page.locator("#bulk-move").click()
    expect(flash(page)).to_have_text("Moved 2 notes to “Box”.")
    expect(page.locator("#notes-items .item-title")).to_have_text(["Box", "Plate"])

    # Share the rest with a colleague: Enter in the address field shares (it does not move).
    expect(page.locator("#bulk-share-submit")).to_be_disabled()
    page.get_by_label("Select Plate").check()
    page.get_by_label("Share with").fill(admin.email)
    page.locator("#bulk-share-role").select_option(value="editor")
    page.get_by_label("Share with").press("Enter")
    expect(flash(page)).to_have_text(f"Shared 1 note with {admin.email} (editor).")
    expect(page.locator("#notes-items .item-title")).to_have_text(["Box", "Plate"])
    shared = api.call("GET", "/api/shares")["shares"]
    assert [(s["email"], s["role"]) for s in shared if s["title"] == "Plate"] == [
        (admin.email, "editor")
    ]

    page.locator("#select-all").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.locator("#bulk-delete").click()
    question = confirm(page, "Delete")
    expect(flash(page)).to_contain_text("Moved 1 folder and 1 note to the trash.")
    assert question == "Move the selected items to the trash?"
    expect(page.locator("#empty-state")).to_be_visible()


# -- editing ------------------------------------------------------------------------------------


def without_live_editing(page: Any) -> None:
    """The editor's own autosave over REST, as where WebSockets are blocked: with them, the
    text is saved by the collaborative session instead (tests/browser/test_collab_browser.py)."""
    page.context.add_init_script("delete window.WebSocket;")


def test_a_new_note_is_edited_with_live_preview_and_autosave(notes: Any, screenshot: Any) -> None:
    page = notes
    api = Api(page)
    place = api.folder(unique("Drafts"))
    page.goto(f"/notes?folder={place}")
    page.get_by_role("button", name="New note", exact=True).click()
    expect(page).to_have_url(re.compile(r"/notes/[0-9a-f]{32}$"))
    title = page.get_by_label("Title")
    expect(title).to_be_focused()
    page.keyboard.type("Shopping list")  # the selected "Untitled note" is replaced
    expect(page.locator("#save-status")).to_have_text(re.compile(r"Saved · version \d+"))
    content = page.get_by_label("Markdown")
    content.click()
    content.press_sequentially("# Market\n\n- **apples**\n- pears", delay=10)
    preview = page.locator("#note-preview")
    expect(preview.locator("h1")).to_have_text("Market")
    expect(preview.locator("li strong")).to_have_text("apples")
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved · version \d+$"))
    expect(page.locator("#crumb-title")).to_have_text("Shopping list")
    screenshot(page, "notes-editor")

    page.reload()
    expect(page.get_by_label("Title")).to_have_value("Shopping list")
    expect(page.get_by_label("Markdown")).to_have_value("# Market\n\n- **apples**\n- pears")
    expect(page.locator("#note-preview li")).to_have_text(["apples", "pears"])
    document_id = page.url.rsplit("/", 1)[-1]
    assert api.document(document_id)["content"] == "# Market\n\n- **apples**\n- pears"

    # Ctrl+S saves at once, without waiting for a pause.
    content = page.get_by_label("Markdown")
    content.press("Control+End")  # the end of the note, not of its first line
    content.press_sequentially("\n- plums")
    page.keyboard.press("Control+s")
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved · version \d+$"))
    wait_for_js(
        page,
        "async id => (await (await fetch(`/api/documents/${id}`)).json())"
        ".content.endsWith('plums')",
        arg=document_id,
    )


def test_text_typed_just_before_leaving_the_page_is_saved(notes: Any) -> None:
    """Leaving within the autosave pause: the save goes out as the page goes away, as a
    keepalive request that outlives the page (here held back until the next page has loaded,
    as a slow line would), and no "leave site?" prompt holds the visitor back."""
    page = notes
    api = Api(page)
    document_id = api.note(unique("Quick"), "start")
    without_live_editing(page)
    held: list[Any] = []

    def hold(route: Any) -> None:
        if route.request.method == "PATCH":
            held.append(route)
        else:
            route.continue_()

    page.goto(f"/notes/{document_id}")
    page.context.route(f"**/api/documents/{document_id}", hold)
    content = page.get_by_label("Markdown")
    content.click()
    content.press("End")
    page.keyboard.type(" and the last words")
    page.get_by_role("link", name="Notes", exact=True).first.click()  # at once, no pause
    expect(page).to_have_url(re.compile(r"/notes$"))
    expect(page.get_by_role("button", name="New note", exact=True)).to_be_visible()
    assert held, "no save was sent when the page was left"
    for route in held:
        route.continue_()
    page.context.unroute(f"**/api/documents/{document_id}")
    wait_for_js(
        page,
        "async id => (await (await fetch(`/api/documents/${id}`)).json())"
        ".content === 'start and the last words'",
        arg=document_id,
    )


def test_text_that_could_not_be_saved_is_offered_back_on_return(
    notes: Any, page_problems: Any
) -> None:
    """Every save refused (here: the page's CSRF token no longer matches, as after signing in
    elsewhere) and the page is left: the text stays in this browser and the note offers it back
    next time; restoring saves it, discarding forgets it."""
    page = notes
    api = Api(page)
    document_id = api.note(unique("Refused"), "server text")
    page_problems.allow(r"Failed to load resource: .* 403 .*")
    page_problems.allow(r"Response Status Error Code 403 from /notes/preview")
    refuse_saves = "document.querySelector('meta[name=csrf-token]').content = 'stale'"
    without_live_editing(page)

    page.goto(f"/notes/{document_id}")
    page.evaluate(refuse_saves)
    page.get_by_label("Markdown").fill("written on the train")
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    page.goto("/notes")
    assert api.document(document_id)["content"] == "server text"

    page.goto(f"/notes/{document_id}")
    draft = page.locator("#draft")
    expect(draft).to_be_visible()
    expect(page.locator("#draft-text")).to_have_value("written on the train")
    expect(page.get_by_label("Markdown")).to_have_value("server text")
    draft.get_by_role("button", name="Restore my text").click()
    expect(draft).to_be_hidden()
    expect(page.get_by_label("Markdown")).to_have_value("written on the train")
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved · version \d+$"))
    assert api.document(document_id)["content"] == "written on the train"
    page.reload()
    expect(page.get_by_label("Markdown")).to_have_value("written on the train")
    expect(page.locator("#draft")).to_be_hidden()

    # A draft that is discarded is gone for good.
    page.evaluate(refuse_saves)
    page.get_by_label("Markdown").fill("a thought to throw away")
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    page.goto("/notes")
    page.goto(f"/notes/{document_id}")
    page.locator("#draft").get_by_role("button", name="Discard").click()
    expect(page.locator("#draft")).to_be_hidden()
    page.reload()
    expect(page.get_by_label("Markdown")).to_have_value("written on the train")
    expect(page.locator("#draft")).to_be_hidden()


def test_a_stale_edit_from_another_tab_shows_the_conflict_banner_and_loses_nothing(
    browsing: Any, writer: Any, page_problems: Any, screenshot: Any
) -> None:
    page_problems.allow(r"status of 409 \(Conflict\).*/api/documents/")  # the stale saves
    first = browsing.new_page(storage_state=writer)
    api = Api(first)
    document_id = api.note(unique("Shared plan"), "line one")
    without_live_editing(first)  # live, the two tabs' edits merge instead
    second = first.context.new_page()
    for page in (first, second):
        page.goto(f"/notes/{document_id}")
        expect(page.locator("#save-status")).to_have_text("Saved · version 1")

    second.get_by_label("Markdown").fill("line one\nfrom the second tab")
    expect(second.locator("#save-status")).to_have_text("Saved · version 2")

    first.get_by_label("Markdown").fill("line one\nfrom the first tab")
    banner = first.locator("#conflict")
    expect(banner).to_be_visible()
    expect(first.locator("#save-status")).to_have_text("Not saved: this note changed elsewhere")
    expect(first.locator("#conflict-theirs")).to_have_value("line one\nfrom the second tab")
    expect(first.get_by_label("Markdown")).to_have_value("line one\nfrom the first tab")
    screenshot(first, "notes-conflict")
    # Nothing is saved over the other tab's text while the banner is up.
    first.get_by_label("Markdown").press_sequentially(" and more")
    assert api.document(document_id)["content"] == "line one\nfrom the second tab"

    first.get_by_role("button", name="Keep mine").click()
    expect(banner).to_be_hidden()
    expect(first.locator("#save-status")).to_have_text("Saved · version 3")
    assert api.document(document_id)["content"] == "line one\nfrom the first tab and more"

    # The other way round: the second tab is now behind, and takes the first tab's text.
    second.get_by_label("Markdown").fill("second tab again")
    expect(second.locator("#conflict")).to_be_visible()
    second.get_by_role("button", name="Take theirs").click()
    expect(second.get_by_label("Markdown")).to_have_value("line one\nfrom the first tab and more")
    expect(second.locator("#discarded-text")).to_have_value("second tab again")
    expect(second.locator("#save-status")).to_have_text("Saved · version 3")
    expect(second.locator("#note-preview")).to_contain_text("from the first tab and more")
    second.get_by_role("button", name="Dismiss").click()
    expect(second.locator("#discarded")).to_be_hidden()
    assert api.document(document_id)["version"] == 3


def test_version_history_shows_the_diff_and_restores_an_old_version(
    notes: Any, screenshot: Any
) -> None:
    page = notes
    api = Api(page)
    document_id = api.note(unique("Haiku"), "an old silent pond\na frog jumps in\n")
    api.edit(document_id, content="an old silent pond\na frog jumps into the pond\nsplash\n")
    page.goto(f"/notes/{document_id}")
    page.get_by_role("button", name="History").click()
    versions = page.get_by_role("navigation", name="Versions")
    expect(versions.get_by_role("link")).to_have_count(2)
    expect(versions.locator('a[aria-current="true"]')).to_contain_text("Version 1")
    diff = page.locator("#diff")
    expect(diff.locator(".diff-delete")).to_have_text(["\u2212Removed: a frog jumps in"])
    expect(diff.locator(".diff-insert")).to_have_text(
        ["+Added: a frog jumps into the pond", "+Added: splash"]
    )
    screenshot(page, "notes-history")

    page.get_by_role("button", name="Restore version 1").click()
    expect(page).to_have_url(re.compile(rf"/notes/{document_id}$"))
    expect(flash(page)).to_contain_text("Version 1 restored. It is saved as version 3")
    expect(page.get_by_label("Markdown")).to_have_value("an old silent pond\na frog jumps in\n")
    page.get_by_role("button", name="History").click()
    expect(versions.get_by_role("link")).to_have_count(3)


def test_deleted_notes_wait_in_the_trash_and_come_back(notes: Any) -> None:
    page = notes
    api = Api(page)
    place = api.folder(unique("Kitchen"))
    document_id = api.note("Old recipe", "salt", place)
    page.goto(f"/notes/{document_id}")
    # Parts of the page that load themselves (comments, activity) ask about the note first.
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Delete").click()
    question = confirm(page, "Delete")
    expect(page).to_have_url(re.compile(rf"/notes\?folder={place}$"))
    expect(flash(page)).to_contain_text("Moved 1 note to the trash.")
    assert "Old recipe" in question

    page.get_by_role("link", name="Trash").click()
    item = page.locator("#trash-list li", has_text="Old recipe")
    expect(item).to_contain_text("30 days left")
    item.get_by_role("button", name="Restore Old recipe").click()
    expect(flash(page)).to_have_text("Restored “Old recipe”.")
    expect(page.locator("#trash-list li", has_text="Old recipe")).to_have_count(0)
    page.goto(f"/notes?folder={place}")
    expect(page.locator("#notes-items .item-title")).to_have_text(["Old recipe"])


# -- files --------------------------------------------------------------------------------------


WATCH_PROGRESS = """() => {
  window.__progress = [];
  new MutationObserver(records => {
    for (const r of records) {
      if (r.target.tagName === 'PROGRESS' && r.attributeName === 'value')
        window.__progress.push(Number(r.target.getAttribute('value')));
    }
  }).observe(document.getElementById('upload-list'), {subtree: true, attributes: true});
}"""


def test_an_upload_shows_its_progress_and_the_storage_indicator_follows(
    notes: Any, page_problems: Any, screenshot: Any
) -> None:
    page_problems.allow(r"status of 422 .*/api/files")  # the refused fake picture
    page = notes
    page.goto("/files")
    # With JavaScript the files go as soon as they are chosen: the plain form's button is gone.
    expect(page.locator("#dropzone")).to_contain_text("Drop files here, or")
    expect(page.get_by_role("button", name="Upload", exact=True)).to_be_hidden()
    before = page.locator("#files-usage").inner_text()
    page.evaluate(WATCH_PROGRESS)
    name = f"{unique('field-notes').replace(' ', '-')}.txt"
    payload = ("A line of field notes.\n" * 120_000).encode()  # about 2.6 MB
    page.locator("#file-input").set_input_files(
        {"name": name, "mimeType": "text/plain", "buffer": payload}
    )
    upload = page.locator("#upload-list li", has_text=name)
    expect(upload.locator(".upload-state")).to_have_text("Uploaded")
    expect(upload.locator("progress")).to_have_attribute("value", "100")
    seen = page.evaluate("window.__progress")
    assert seen and seen[-1] == 100, seen

    card = page.locator(".file-card", has_text=name)
    expect(card).to_be_visible()
    expect(card).to_contain_text("2.6 MB")
    expect(card.locator("pre.text-preview")).to_contain_text("A line of field notes.")
    expect(page.locator("#files-usage")).not_to_have_text(before)
    expect(page.locator("#files-usage")).to_contain_text(re.compile(r"[\d.]+ MB of 5 GB used"))
    screenshot(page, "notes-files")

    # The notes sidebar shows the same figure.
    usage = page.locator("#files-usage .usage-text").inner_text()
    page.goto("/notes")
    expect(page.locator("#sidebar-usage .usage-text")).to_have_text(usage)

    # A file that is not what its name says is refused with a clear reason.
    page.goto("/files")
    page.locator("#file-input").set_input_files(
        {"name": "fake.png", "mimeType": "image/png", "buffer": b"not a picture at all"}
    )
    refused = page.locator("#upload-list li", has_text="fake.png")
    expect(refused.locator(".upload-state")).to_contain_text("Not uploaded")


def test_files_are_uploaded_without_javascript_too(
    browsing: Any, writer: Any, screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=writer, javascript=False)
    page.goto("/files")
    name = f"{unique('offline').replace(' ', '-')}.txt"
    page.get_by_label("Choose files").set_input_files(
        [
            {"name": name, "mimeType": "text/plain", "buffer": b"Written with scripts off.\n"},
            {"name": "fake.png", "mimeType": "image/png", "buffer": b"not a picture at all"},
        ]
    )
    screenshot(page, "files-without-javascript")
    page.get_by_role("button", name="Upload", exact=True).click()

    expect(page).to_have_url(re.compile(r"/files$"))
    message = flash(page)
    expect(message).to_contain_text(f"Uploaded “{name}”.")
    expect(message).to_contain_text("Not uploaded: “fake.png”: The content is")
    card = page.locator(".file-card", has_text=name)
    expect(card).to_be_visible()
    expect(card).to_contain_text("26 bytes · TEXT")
    expect(page.locator(".file-card", has_text="fake.png")).to_have_count(0)
    screenshot(page, "files-uploaded-without-javascript")


# -- views and phones ---------------------------------------------------------------------------


def test_list_or_grid_is_remembered(notes: Any) -> None:
    page = notes
    api = Api(page)
    place = api.folder(unique("Gallery"))
    api.note("Sketch", "pencil", place)
    page.goto(f"/notes?folder={place}")
    items = page.locator("#notes-items")
    expect(items).to_have_class(re.compile(r"\bview-list\b"))
    page.get_by_role("button", name="Grid").click()
    expect(items).to_have_class(re.compile(r"\bview-grid\b"))
    expect(page.get_by_role("button", name="Grid")).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(page.locator("#notes-items")).to_have_class(re.compile(r"\bview-grid\b"))
    page.get_by_role("button", name="List").click()
    page.reload()
    expect(page.locator("#notes-items")).to_have_class(re.compile(r"\bview-list\b"))


def test_on_a_phone_the_folders_are_a_drawer(browsing: Any, writer: Any, screenshot: Any) -> None:
    page = browsing.new_page(phone=True, storage_state=writer)
    api = Api(page)
    place_name = unique("Pocket")
    place = api.folder(place_name)
    document_id = api.note("Phone note", "# Small\n\nscreen", place)
    page.goto(f"/notes?folder={place}")
    sidebar = page.locator("#notes-sidebar")
    expect(sidebar).to_be_hidden()
    fits_the_screen(page)
    toggle = page.get_by_role("button", name="Folders", exact=True)
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.get_by_role("link", name=place_name)).to_be_focused()
    behind = "document.querySelector('.notes-main').inert"
    assert page.evaluate(behind) is True  # the page behind the drawer is out of reach
    screenshot(page, "notes-phone-drawer")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_be_focused()
    assert page.evaluate(behind) is False
    toggle.click()
    sidebar.get_by_role("button", name="Close the folder list").click()
    expect(sidebar).to_be_hidden()

    page.goto(f"/notes/{document_id}")
    fits_the_screen(page)
    expect(page.get_by_label("Markdown")).to_be_visible()
    expect(page.locator("#note-preview")).to_be_hidden()
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#note-preview h1")).to_have_text("Small")
    expect(page.get_by_label("Markdown")).to_be_hidden()
    screenshot(page, "notes-phone-editor")
