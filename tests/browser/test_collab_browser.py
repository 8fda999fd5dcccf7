"""Editing a note together in real browsers (issue #20 item 4): Olga shares a note with Carl as
an editor; both open it and type at the same time; both texts converge to the same merged text,
each sees where the other's caret is, and one version is saved per pause. A viewer reads the
edits live. Olga revokes the share and Carl's editor is cut off at once."""

from __future__ import annotations

import secrets
from itertools import zip_longest
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, Browsing, api_account
from tests.browser.test_accessibility import serious_violations


def people(browser: Any, server: str) -> tuple[Account, Account]:
    tag = secrets.token_hex(3)
    return (
        api_account(browser, server, "Olga Owner", f"olga.{tag}@example.com"),
        api_account(browser, server, "Carl Colleague", f"carl.{tag}@example.com"),
    )


def api(page: Any, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.fetch(
        path, method=method, data=data, headers={"X-CSRF-Token": str(token)}
    )
    assert response.ok, response.text()
    return response.json() if response.status != 204 else None


def live(page: Any, path: str) -> None:
    page.goto(path)
    expect(page.locator("#note-page")).to_have_attribute("data-collab", "live")


def test_two_editors_type_at_once_see_each_other_and_a_revoked_one_is_cut_off(
    browsing: Browsing, browser: Any, server: str, screenshot: Any
) -> None:
    owner, colleague = people(browser, server)
    olga = browsing.new_page(storage_state=owner.storage_state)
    olga.goto("/notes")
    note = api(olga, "POST", "/api/documents", {"title": "Launch plan", "content": "Plan:\n"})
    share = api(
        olga,
        "POST",
        "/api/shares",
        {
            "object_type": "document",
            "object_id": note["id"],
            "email": colleague.email,
            "role": "editor",
        },
    )
    live(olga, f"/notes/{note['id']}")
    carl = browsing.new_page(storage_state=colleague.storage_state)
    live(carl, f"/notes/{note['id']}")

    olgas, carls = olga.locator("#note-content"), carl.locator("#note-content")
    olgas.click()
    olga.keyboard.press("Control+End")
    carls.click()
    carl.keyboard.press("Control+Home")
    # Both type at once: Olga at the end, Carl at the start, keystroke by keystroke.
    for olga_key, carl_key in zip_longest("- budget", "Draft. ", fillvalue=""):
        olga.keyboard.type(olga_key)
        carl.keyboard.type(carl_key)
    merged = "Draft. Plan:\n- budget"
    expect(olgas).to_have_value(merged)
    expect(carls).to_have_value(merged)

    # Each sees where the other is: a caret with the name over the text, and a line in the list.
    expect(olga.locator(".collab-caret-name")).to_have_text("Carl Colleague")
    expect(olga.locator("#collab-people li")).to_contain_text("Carl Colleague · line 1")
    expect(carl.locator("#collab-people li")).to_contain_text("Olga Owner · line 2")
    expect(olga.locator("#collab-others")).to_be_visible()
    screenshot(olga, "collab-two-editors")
    assert serious_violations(olga) == []

    # One pause, one version with the merged text, and both pages say so.
    expect(olga.locator("#save-status")).to_have_text("Saved · version 2", timeout=10_000)
    expect(carl.locator("#save-status")).to_have_text("Saved · version 2")
    saved = api(olga, "GET", f"/api/documents/{note['id']}")
    assert (saved["content"], saved["version"]) == (merged, 2)
    expect(olga.locator("#note-preview")).to_contain_text("budget")

    # Olga revokes the share: Carl is cut off at once, and his typing goes nowhere.
    api(olga, "DELETE", f"/api/shares/{share['id']}")
    expect(carl.locator("#note-page")).to_have_attribute("data-collab", "ended", timeout=3_000)
    expect(carl.locator("#collab-notice")).to_contain_text("access to this note was removed")
    expect(carls).not_to_be_editable()
    expect(olga.locator("#collab-people li")).to_have_count(0)
    olgas.press("End")
    olga.keyboard.type(" and dates")
    expect(carls).to_have_value(merged)
    expect(olga.locator("#save-status")).to_have_text("Saved · version 3", timeout=10_000)


def test_a_viewer_reads_the_edits_live_and_cannot_type(
    browsing: Browsing, browser: Any, server: str
) -> None:
    owner, colleague = people(browser, server)
    olga = browsing.new_page(storage_state=owner.storage_state)
    olga.goto("/notes")
    note = api(olga, "POST", "/api/documents", {"title": "Read me", "content": "# Title\n"})
    api(
        olga,
        "POST",
        "/api/shares",
        {
            "object_type": "document",
            "object_id": note["id"],
            "email": colleague.email,
            "role": "viewer",
        },
    )
    live(olga, f"/notes/{note['id']}")
    carl = browsing.new_page(storage_state=colleague.storage_state)
    live(carl, f"/notes/{note['id']}")
    expect(carl.locator("#note-content")).to_have_count(0)  # a viewer gets the preview only

    olga.locator("#note-content").click()
    olga.keyboard.press("Control+End")
    olga.keyboard.type("Fresh **news**")
    expect(carl.locator("#note-preview strong")).to_have_text("news")
    expect(olga.locator("#collab-people li")).to_contain_text("Carl Colleague (viewing)")
