"""An in-app message (an announcement of kind "message") is a modal dialog: the page behind it
is inert, Tab and Shift+Tab cycle through the dialog's own controls and never leave it, Escape
closes it (and, like "Got it", dismisses it for good), and focus goes back to where it was
before the dialog opened. The message is for one organisation, so no other test's pages see it."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, api_account


def publish_message(browser: Any, server: str, admin: Account, org_id: str, title: str) -> str:
    return admin.post(
        browser,
        server,
        "/api/admin/announcements",
        {
            "title": title,
            "body": "Read [the release notes](/announcements) for the details.",
            "kind": "message",
            "segment": {"organisations": [org_id]},
        },
    )


def remove_message(browser: Any, server: str, admin: Account, announcement_id: str) -> None:
    context = browser.new_context(base_url=server, storage_state=admin.storage_state)
    try:
        gone = context.request.delete(
            f"/api/admin/announcements/{announcement_id}", headers={"X-CSRF-Token": admin.csrf}
        )
        assert gone.status == 204, gone.text()
    finally:
        context.close()


def test_the_in_app_message_traps_focus_and_returns_it(
    browser: Any, server: str, browsing: Any, admin: Account
) -> None:
    tag = secrets.token_hex(3)
    reader_account = api_account(browser, server, "Fay Focus", f"fay.{tag}@example.com")
    org_id = reader_account.post(browser, server, "/api/orgs", {"name": f"Focus team {tag}"})
    title = f"New release {tag}"
    announcement_id = publish_message(browser, server, admin, org_id, title)
    try:
        page = browsing.new_page(storage_state=reader_account.storage_state)
        # Hold the announcements back until the reader is in the filter box: that is where
        # focus must come back to.
        held: list[Any] = []
        page.route("**/announcements/banners*", lambda route: held.append(route))
        page.goto("/notes")
        page.get_by_label("Filter by title or text").focus()
        while not held:
            page.wait_for_timeout(50)
        held[0].continue_()
        page.unroute("**/announcements/banners*")

        dialog = page.get_by_role("dialog", name=title)
        expect(dialog).to_be_visible()
        assert dialog.evaluate("d => d.matches(':modal')"), "the message is not a modal dialog"
        link = dialog.get_by_role("link", name="the release notes")
        got_it = dialog.get_by_role("button", name="Got it")
        expect(got_it).to_be_focused()

        # Tab goes round the dialog's two controls, both ways, and never out of it.
        for key, expected in [
            ("Tab", link),
            ("Tab", got_it),
            ("Tab", link),
            ("Shift+Tab", got_it),
            ("Shift+Tab", link),
            ("Shift+Tab", got_it),
        ]:
            page.keyboard.press(key)
            expect(expected).to_be_focused()
            assert dialog.evaluate("d => d.contains(document.activeElement)")

        # Escape closes it, focus is back in the filter box, and it is dismissed for good.
        with page.expect_response(lambda r: r.url.endswith(f"/{announcement_id}/dismiss")):
            page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        expect(page.get_by_label("Filter by title or text")).to_be_focused()
        with page.expect_response(lambda r: "/announcements/banners" in r.url):
            page.reload()
        expect(page.get_by_role("dialog", name=title)).to_have_count(0)
    finally:
        remove_message(browser, server, admin, announcement_id)
