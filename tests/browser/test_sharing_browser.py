"""Sharing in a real browser: a note shared with a colleague from the note page's share dialog,
who is notified, finds it under "Shared with me" and opens it; a public link opened by someone
who is not logged in; the link revoked from the same dialog, after which it answers 410.

Every test runs against the shared embedded server.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import confirm

PASSWORD = "correct horse battery staple"


def account(browser: Any, server: str, name: str) -> tuple[str, Any]:
    """A new member of the shared server: their address and logged-in cookie jar."""
    email = f"{name.split()[0].lower()}.{secrets.token_hex(3)}@example.com"
    context = browser.new_context(base_url=server)
    try:
        registered = context.request.post(
            "/api/auth/register", data={"name": name, "email": email, "password": PASSWORD}
        )
        assert registered.status == 201, registered.text()
        logged_in = context.request.post(
            "/api/auth/login", data={"email": email, "password": PASSWORD}
        )
        assert logged_in.ok, logged_in.text()
        return email, context.storage_state()
    finally:
        context.close()


@pytest.fixture
def owner(browser: Any, server: str, admin: Any) -> tuple[str, Any]:
    # ``admin``: the shared server's first account, so these are plain members.
    return account(browser, server, "Olga Owner")


@pytest.fixture
def colleague(browser: Any, server: str, admin: Any) -> tuple[str, Any]:
    return account(browser, server, "Carl Colleague")


def make_note(page: Any, title: str, content: str) -> str:
    page.goto("/notes")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(
        "/api/documents",
        data={"title": title, "content": content},
        headers={"X-CSRF-Token": token},
    )
    assert response.status == 201, response.text()
    return str(response.json()["id"])


def open_share_dialog(page: Any, document_id: str) -> Any:
    page.goto(f"/notes/{document_id}")
    page.get_by_role("button", name="Share", exact=True).click()
    dialog = page.locator("dialog#share-dialog")
    expect(dialog).to_be_visible()
    return dialog


def test_a_note_shared_with_a_colleague_shows_up_in_shared_with_me_and_opens(
    browsing: Any, owner: Any, colleague: Any, screenshot: Any
) -> None:
    _, owner_state = owner
    colleague_email, colleague_state = colleague
    ann = browsing.new_page(storage_state=owner_state)
    title = f"Quarterly plan {secrets.token_hex(2)}"
    document_id = make_note(ann, title, "# Goals\n\nShip **sharing**.")

    dialog = open_share_dialog(ann, document_id)
    expect(dialog).to_contain_text("Only you can see this note")
    dialog.get_by_label("Email address").fill(colleague_email)
    dialog.get_by_label("Access").select_option("viewer")
    dialog.get_by_role("button", name="Share", exact=True).click()
    dialog = ann.locator("dialog#share-dialog")
    expect(dialog.get_by_role("status")).to_have_text(f"Shared with {colleague_email}.")
    expect(dialog.get_by_role("list", name="People with access")).to_contain_text("Carl Colleague")
    screenshot(ann, "sharing-dialog")

    carl = browsing.new_page(storage_state=colleague_state)
    carl.goto("/")
    expect(carl.locator("#notification-count")).to_contain_text("1")
    carl.get_by_role("link", name="Shared", exact=True).click()
    expect(carl).to_have_url(re.compile(r"/shared$"))
    row = carl.locator("#shared-with-me").get_by_role("row").filter(has_text=title)
    expect(row).to_contain_text("Olga Owner")
    expect(row).to_contain_text("Can view")
    screenshot(carl, "sharing-shared-with-me")
    row.get_by_role("link", name=title).click()
    expect(carl).to_have_url(re.compile(rf"/notes/{document_id}$"))
    expect(carl.locator("#note-preview")).to_contain_text("Ship sharing.")
    expect(carl.get_by_text("Read only", exact=False).first).to_be_visible()
    # The comments and activity of the note are there too, and a comment can be left.
    collab = carl.locator("#collab")
    expect(collab).to_contain_text(f"shared it with {colleague_email}")
    collab.get_by_label("Add a comment").fill("Looks good to me")
    collab.get_by_role("button", name="Comment").click()
    expect(carl.locator("#collab .comment")).to_contain_text("Looks good to me")
    screenshot(carl, "sharing-opened-by-colleague")

    carl.goto("/notifications")
    expect(carl.locator("#notification-list")).to_contain_text(f"shared “{title}” with you")


def test_a_public_link_is_opened_logged_out_and_then_revoked(
    browsing: Any, owner: Any, page_problems: Any, screenshot: Any
) -> None:
    # After the revoke the page answers 410 Gone, which the console reports.
    page_problems.allow(r"status of 410")
    _, owner_state = owner
    ann = browsing.new_page(storage_state=owner_state)
    title = f"Launch notes {secrets.token_hex(2)}"
    document_id = make_note(ann, title, "Public **launch** details")

    dialog = open_share_dialog(ann, document_id)
    dialog.get_by_text("Create a public link").click()
    dialog.get_by_role("button", name="Create link").click()
    link_field = ann.locator("#share-new-link")
    expect(link_field).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]{40,}$"))
    link = link_field.input_value()

    visitor = browsing.new_page()  # nobody logged in
    visitor.goto(link)
    expect(visitor.get_by_role("heading", name=title)).to_be_visible()
    expect(visitor.locator(".public-note")).to_contain_text("Public launch details")
    expect(visitor.locator('meta[name="robots"]')).to_have_attribute("content", "noindex, nofollow")
    expect(visitor.locator("#public-share")).to_contain_text("Log in to save a copy")
    screenshot(visitor, "sharing-public-link")

    dialog = open_share_dialog(ann, document_id)
    expect(dialog).to_contain_text("1 view")
    dialog.get_by_role("button", name="Revoke link").click()
    confirm(ann, "Revoke link")
    expect(ann.locator("dialog#share-dialog").get_by_role("status")).to_have_text(
        "Public link revoked."
    )
    expect(ann.locator("dialog#share-dialog")).to_contain_text("No public link.")

    response = visitor.reload()
    assert response is not None and response.status == 410
    expect(visitor.locator("main")).to_contain_text("no longer works")
    expect(visitor.locator("main")).not_to_contain_text("Public launch details")
