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
