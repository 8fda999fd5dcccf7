"""Search in a real browser: the search page finds a note by a word it contains and by a
paraphrase of its meaning, and the command palette (Ctrl+K, or the nav button on a phone) jumps
to a note.

Runs against the shared embedded server; its background tasks compute the embeddings.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD

SOURDOUGH = ("Sourdough starter", "Feed the starter with rye flour and water every morning.")
GARDEN = ("Cat diary", "My cat loves to chase mice around the garden.")


@pytest.fixture(scope="module")
def searcher(browser: Any, server: str, admin: Any) -> dict[str, Any]:
    """A user with two notes, whose embeddings are computed: their cookies and note ids."""
    context = browser.new_context(base_url=server)
    try:
        email = "sam.searcher@example.com"
        registered = context.request.post(
            "/api/auth/register",
            data={"name": "Sam Searcher", "email": email, "password": PASSWORD},
        )
        assert registered.status == 201, registered.text()
        logged_in = context.request.post(
            "/api/auth/login", data={"email": email, "password": PASSWORD}
        )
        assert logged_in.ok, logged_in.text()
        headers = {"X-CSRF-Token": logged_in.json()["csrf_token"]}
        ids = {}
        for title, content in (SOURDOUGH, GARDEN):
            created = context.request.post(
                "/api/documents", data={"title": title, "content": content}, headers=headers
            )
            assert created.status == 201, created.text()
            ids[title] = created.json()["id"]
        # Embeddings are made in the background after a note is saved: wait for them.
        deadline = time.monotonic() + 60
        while True:
            found = context.request.get(
                "/api/search?mode=semantic&record=false&q=feline+hunting+rodents"
            ).json()["results"]
            if [r["id"] for r in found][:1] == [ids[GARDEN[0]]]:
                break
            assert time.monotonic() < deadline, "the note was never embedded"
            time.sleep(0.25)
        return {"state": context.storage_state(), "ids": ids}
    finally:
        context.close()


def test_the_search_page_finds_a_note_by_a_word_and_by_its_meaning(
    browsing: Any, searcher: dict[str, Any]
):
    page = browsing.new_page(storage_state=searcher["state"])
    page.goto("/search")
    expect(page.locator("#search-empty")).to_be_visible()

    box = page.get_by_label("Search your notes and chats")
    box.fill("rye")  # searched as one types
    hit = page.locator("#search-list .search-hit").first
    expect(hit.get_by_role("link", name=SOURDOUGH[0])).to_be_visible()
    expect(hit.locator(".search-snippet mark")).to_have_text(re.compile("rye", re.IGNORECASE))
    expect(page).to_have_url(re.compile(r"/search\?q=rye"))

    page.get_by_label("By meaning").check()
    box.fill("feline hunting rodents")
    first = page.locator("#search-list .search-hit").first
    expect(first.get_by_role("link", name=GARDEN[0])).to_be_visible()
    first.get_by_role("link", name=GARDEN[0]).click()
    expect(page).to_have_url(re.compile(f"/notes/{searcher['ids'][GARDEN[0]]}$"))

    # Both searches are remembered, newest first.
    page.goto("/search")
    expect(page.locator("#recent-searches li").first).to_have_text("feline hunting rodents")
    expect(page.locator("#recent-searches")).to_contain_text("rye")


def test_no_match_says_what_to_try(browsing: Any, searcher: dict[str, Any]):
    page = browsing.new_page(storage_state=searcher["state"])
    page.goto("/search?q=xylophone&mode=text")
    expect(page.locator("#search-none")).to_contain_text("Nothing matches “xylophone”")


def test_ctrl_k_opens_the_palette_and_jumps_to_a_note(browsing: Any, searcher: dict[str, Any]):
    page = browsing.new_page(storage_state=searcher["state"])
    page.goto("/chat")
    page.keyboard.press("Control+k")
    dialog = page.get_by_role("dialog", name="Jump to")
    expect(dialog).to_be_visible()
    combo = page.get_by_role("combobox")
    expect(combo).to_be_focused()
    combo.fill("cat di")
    everything = page.get_by_role("option", name=re.compile("Search everything for “cat di”"))
    expect(everything).to_be_visible()  # the matches of what was typed have arrived
    option = page.get_by_role("option", name=re.compile(GARDEN[0]))
    expect(option).to_have_attribute("aria-selected", "true")
    expect(combo).to_have_attribute("aria-activedescendant", option.get_attribute("id") or "")
    # Down moves to the last option (a full search), Up comes back; Enter opens the note.
    combo.press("ArrowDown")
    expect(everything).to_have_attribute("aria-selected", "true")
    combo.press("ArrowUp")
    expect(option).to_have_attribute("aria-selected", "true")
    combo.press("Enter")
    expect(page).to_have_url(re.compile(f"/notes/{searcher['ids'][GARDEN[0]]}$"))
    # The URL changes before the note page has run its scripts (the palette's among them).
    page.wait_for_load_state("load")

    # Esc closes it again, and focus is back on the page.
    page.keyboard.press("Control+k")
    expect(page.get_by_role("dialog", name="Jump to")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Jump to")).to_be_hidden()


def test_the_palette_works_on_a_phone(browsing: Any, searcher: dict[str, Any]):
    page = browsing.new_page(phone=True, storage_state=searcher["state"])
    page.goto("/search")
    page.get_by_role("button", name="Jump to…").tap()
    combo = page.get_by_role("combobox")
    expect(combo).to_be_visible()
    combo.fill("sourdough")
    expect(page.get_by_role("option", name=re.compile("Search everything"))).to_be_visible()
    page.get_by_role("option", name=re.compile(SOURDOUGH[0])).tap()
    expect(page).to_have_url(re.compile(f"/notes/{searcher['ids'][SOURDOUGH[0]]}$"))
