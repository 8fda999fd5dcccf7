"""The live channel in a real browser (issue #20): a person has the chat and the usage page open
in two tabs; an administrator grants them credits on the console and both tabs show the new
balance without a reload; a note shared with them rings the bell and shows a toast that screen
readers hear."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, Browsing, api_account


def credits(text: str) -> int:
    return int(text.strip().replace(",", ""))


def test_a_grant_and_a_share_reach_the_open_tabs_without_a_reload(
    browsing: Browsing, browser: Any, server: str, admin: Account, screenshot: Any
) -> None:
    email = f"live-{secrets.token_hex(4)}@example.com"
    person = api_account(browser, server, "Lee Live", email)
    chat = browsing.new_page(storage_state=person.storage_state)
    chat.goto("/chat")
    usage = chat.context.new_page()
    usage.goto("/usage")
    for tab in (chat, usage):
        expect(tab.locator("html")).to_have_attribute("data-live", "open")
    before = credits(chat.locator("#wallet-balance").inner_text())
    assert credits(usage.locator("#wallet-balance .stat-value").inner_text()) == before

    console = browsing.new_page(storage_state=admin.storage_state)
    console.goto(f"/admin/credits?email={email}")
    form = console.locator("#credits-form")
    form.get_by_label("Credits").fill("1234")
    form.get_by_label("Reason").fill("Live update test")
    form.get_by_role("button", name="Apply").click()
    expect(console.locator(".flash")).to_contain_text("1,234 credits")

    after = f"{before + 1234:,}"
    expect(chat.locator("#wallet-balance")).to_have_text(after)
    expect(usage.locator("#wallet-balance .stat-value")).to_have_text(after)

    # A note shared with them: the bell counts it and a toast links to it, in both tabs.
    token = console.locator('meta[name="csrf-token"]').get_attribute("content")
    headers = {"X-CSRF-Token": str(token)}
    note = console.request.post(
        "/api/documents", data={"title": "Launch <plan>", "content": "x"}, headers=headers
    )
    assert note.status == 201, note.text()
    note_id = note.json()["id"]
    shared = console.request.post(
        "/api/shares",
        data={"object_type": "document", "object_id": note_id, "email": email},
        headers=headers,
    )
    assert shared.status == 201, shared.text()
    for tab in (chat, usage):
        expect(tab.locator("#notification-count")).to_contain_text("1")
        toast = tab.locator(".live-toast")
        expect(toast.get_by_role("link", name="Launch <plan>")).to_have_attribute(
            "href", f"/notes/{note_id}"
        )
        expect(tab.locator("#live-announcer")).to_have_text("New notification: Launch <plan>")
    screenshot(usage, "live-toast")
    usage.get_by_role("button", name="Dismiss").click()
    expect(usage.locator(".live-toast")).to_have_count(0)


def test_on_a_phone_the_toast_fits_the_screen(
    browsing: Browsing, browser: Any, server: str, admin: Account
) -> None:
    email = f"live-phone-{secrets.token_hex(4)}@example.com"
    person = api_account(browser, server, "Pat Phone", email)
    phone = browsing.new_page(storage_state=person.storage_state, phone=True)
    phone.goto("/usage")
    expect(phone.locator("html")).to_have_attribute("data-live", "open")
    console = browsing.new_page(storage_state=admin.storage_state)
    console.goto("/notes")
    token = console.locator('meta[name="csrf-token"]').get_attribute("content")
    headers = {"X-CSRF-Token": str(token)}
    note = console.request.post(
        "/api/documents",
        data={"title": "A rather long title for a note shared to a phone " * 3, "content": "x"},
        headers=headers,
    )
    shared = console.request.post(
        "/api/shares",
        data={"object_type": "document", "object_id": note.json()["id"], "email": email},
        headers=headers,
    )
    assert shared.status == 201, shared.text()
    toast = phone.locator(".live-toast")
    expect(toast).to_be_visible()
    box = toast.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390


def test_a_finished_folder_export_offers_its_download_in_a_toast(
    browsing: Browsing, browser: Any, server: str
) -> None:
    email = f"live-export-{secrets.token_hex(4)}@example.com"
    person = api_account(browser, server, "Eli Export", email)
    page = browsing.new_page(storage_state=person.storage_state)
    page.goto("/notes")
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    headers = {"X-CSRF-Token": str(token)}
    folder = page.request.post("/api/folders", data={"name": "Trip"}, headers=headers).json()["id"]
    page.request.post(
        "/api/documents",
        data={"title": "Day 1", "content": "Walk", "folder_id": folder},
        headers=headers,
    )
    started = page.request.post(
        "/api/exports", data={"format": "markdown", "folder_id": folder}, headers=headers
    )
    assert started.status == 202, started.text()
    job = started.json()["id"]

    toast = page.locator(".live-toast")
    expect(toast.get_by_role("link", name="Your folder export is ready")).to_have_attribute(
        "href", f"/exports/{job}"
    )
    expect(toast).to_contain_text("Trip.zip")
    expect(page.locator("#live-announcer")).to_have_text("Your folder export is ready")
    with page.expect_download() as download:
        toast.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "Trip.zip"


def test_a_data_exports_progress_and_end_show_without_polling(
    browsing: Browsing, browser: Any, server: str
) -> None:
    email = f"live-progress-{secrets.token_hex(4)}@example.com"
    person = api_account(browser, server, "Pat Progress", email)
    page = browsing.new_page(storage_state=person.storage_state)
    # What the bar and its text say right after each task.progress (live.js handles an event,
    # then announces it as multinotes:live): the bar is replaced once the export ends.
    page.add_init_script(
        """
        window.progressSeen = [];
        document.addEventListener("multinotes:live", function (event) {
          if (event.detail.type !== "task.progress") return;
          var cell = document.querySelector("#exports [data-task]");
          var bar = cell && cell.querySelector("progress");
          window.progressSeen.push({
            done: event.detail.data.progress.done, total: event.detail.data.progress.total,
            value: bar ? bar.value : null, text: cell ? cell.textContent.trim() : null
          });
        });
        """
    )
    page.goto("/account/privacy")
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    # The list's own polling learns nothing (204: htmx keeps what it has), so whatever moves
    # comes over the live channel.
    page.route("**/account/privacy/exports", lambda route: route.fulfill(status=204))
    page.get_by_role("button", name="Request my data").click()
    row = page.locator("#exports tbody tr")
    expect(row).to_have_count(1)

    # The end: the list is read again (task.finished) and offers the download.
    expect(row).to_contain_text("Ready", timeout=20_000)
    expect(row.get_by_role("button", name="Download")).to_be_visible()
    seen = page.evaluate("window.progressSeen")
    moved = [s for s in seen if s["value"] is not None and s["done"] > 0]
    assert moved, seen  # the bar moved between the start and the end
    for step in moved:
        percent = min(99, step["done"] * 100 // step["total"])
        assert step["value"] == percent
        assert f"Collecting your data… {percent}%" in step["text"]


def test_shared_with_me_lists_a_share_and_drops_a_revoked_one_without_a_reload(
    browsing: Browsing, browser: Any, server: str
) -> None:
    tag = secrets.token_hex(4)
    owner = api_account(browser, server, "Olive Owner", f"olive-{tag}@example.com")
    friend = api_account(browser, server, "Fred Friend", f"fred-{tag}@example.com")
    shelf = browsing.new_page(storage_state=friend.storage_state)
    shelf.goto("/shared")
    expect(shelf.locator("html")).to_have_attribute("data-live", "open")
    expect(shelf.get_by_text("Nothing is shared with you yet.")).to_be_visible()

    olive = browsing.new_page(storage_state=owner.storage_state)
    olive.goto("/notes")
    token = olive.locator('meta[name="csrf-token"]').get_attribute("content")
    headers = {"X-CSRF-Token": str(token)}
    note = olive.request.post(
        "/api/documents", data={"title": "Garden plan", "content": "x"}, headers=headers
    ).json()["id"]
    shared = olive.request.post(
        "/api/shares",
        data={"object_type": "document", "object_id": note, "email": friend.email},
        headers=headers,
    )
    assert shared.status == 201, shared.text()

    row = shelf.locator("#shared-with-me").get_by_role("link", name="Garden plan")
    expect(row).to_have_attribute("href", f"/notes/{note}")
    revoked = olive.request.delete(f"/api/shares/{shared.json()['id']}", headers=headers)
    assert revoked.status == 204
    expect(row).to_have_count(0)
    expect(shelf.get_by_text("Nothing is shared with you yet.")).to_be_visible()


def test_an_event_that_came_between_two_pages_is_shown_on_the_next(
    browsing: Browsing, browser: Any, server: str, admin: Account
) -> None:
    """A tab resumes from the last event it saw, also across its own page loads: a note shared
    while it was on another site (or while the next page loaded) still rings on the next page."""
    email = f"live-gap-{secrets.token_hex(4)}@example.com"
    person = api_account(browser, server, "Gap Person", email)
    tab = browsing.new_page(storage_state=person.storage_state)
    tab.goto("/usage")
    expect(tab.locator("html")).to_have_attribute("data-live", "open")
    tab.goto("about:blank")  # away: no live connection at all

    console = browsing.new_page(storage_state=admin.storage_state)
    console.goto("/notes")
    token = console.locator('meta[name="csrf-token"]').get_attribute("content")
    headers = {"X-CSRF-Token": str(token)}
    note = console.request.post(
        "/api/documents", data={"title": "While you were away", "content": "x"}, headers=headers
    )
    shared = console.request.post(
        "/api/shares",
        data={"object_type": "document", "object_id": note.json()["id"], "email": email},
        headers=headers,
    )
    assert shared.status == 201, shared.text()

    tab.goto(f"{server}/usage")
    expect(
        tab.locator(".live-toast").get_by_role("link", name="While you were away")
    ).to_be_visible()
