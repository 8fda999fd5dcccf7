"""A newcomer's first look: every page they can open before they have made anything says what it
is for and what to do next (a link or a button to the next step), instead of an empty table."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_account


@pytest.fixture
def newcomer(browser: Any, server: str, admin: Any) -> Any:
    # ``admin`` first: the shared server's first account is its administrator, not this one.
    email = f"nia.{secrets.token_hex(3)}@example.com"
    return api_account(browser, server, "Nia Newcomer", email).storage_state


def test_each_empty_page_says_what_to_do_next(browsing: Any, newcomer: Any) -> None:
    page = browsing.new_page(storage_state=newcomer)

    page.goto("/chat")
    sidebar_empty = page.locator("#conversation-list .conversation-empty")
    expect(sidebar_empty).to_contain_text("No conversations yet")
    expect(sidebar_empty).to_contain_text("Write a prompt")
    expect(page.locator("#thread-empty")).to_contain_text("Pick the models")

    page.goto("/notes")
    empty = page.locator("#empty-state")
    expect(empty.get_by_role("button", name="Create a note")).to_be_visible()
    expect(empty.get_by_role("button", name="Save an answer from Chat")).to_have_attribute(
        "href", "/chat"
    )

    page.goto("/files")
    expect(page.locator("#files-empty")).to_contain_text("Upload")
    expect(page.locator("#files-empty").get_by_role("link", name="Chat")).to_have_attribute(
        "href", "/chat"
    )

    page.goto("/shared")
    expect(page.locator(".empty-state").first).to_contain_text("When someone shares")

    page.goto("/notifications")
    expect(page.locator(".empty-state")).to_contain_text("You are told here")

    page.goto("/search")
    expect(page.locator("#search-empty")).to_contain_text("Type a few words")

    page.goto("/trash")
    expect(
        page.locator("#empty-state").get_by_role("link", name="Back to your notes")
    ).to_be_visible()
