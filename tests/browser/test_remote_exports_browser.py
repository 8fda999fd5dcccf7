"""A folder sent to Notion in a real browser (issue #15): from the folder's menu, "Notion" offers
to connect the workspace first and comes back to the folder; then it sends the folder, the
progress ends in a link to the folder's page in Notion (one page per note under it), and sending
it again updates the same pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    Browsing,
    PageProblems,
    api_account,
    server_with_fake_notion,
)


@pytest.fixture
def site(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh app whose Notion is the fake, with a member and her folder of three notes."""
    with server_with_fake_notion(tmp_path / "data", monkeypatch) as (fake, url):
        fia = api_account(browser, url, "Fia Folder", "fia@example.com")

        def post(path: str, data: dict[str, Any]) -> str:
            return fia.post(browser, url, path, data)

        trip = post("/api/folders", {"name": "Porto trip"})
        days = post("/api/folders", {"name": "Days", "parent_id": trip})
        post("/api/documents", {"title": "Plan", "content": "# Plan", "folder_id": trip})
        for n in (1, 2):
            post(
                "/api/documents",
                {"title": f"Day {n}", "content": f"- walk {n}", "folder_id": days},
            )
        yield fake, url, fia.storage_state, trip


@pytest.fixture
def site_browsing(browser: Any, site: Any, page_problems: PageProblems) -> Iterator[Browsing]:
    session = Browsing(browser, site[1], page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


def notion_button(page: Any) -> Any:
    menu = page.locator("#folder-menu")
    if menu.get_attribute("open") is None:
        menu.locator("summary").click()
    return menu, menu.get_by_role("group", name="Export").get_by_role("button", name="Notion")


def test_a_folder_goes_to_notion_from_its_menu_and_again_to_the_same_pages(
    site: Any, site_browsing: Browsing
) -> None:
    notion, _, state, trip = site
    page = site_browsing.new_page(storage_state=state)
    page.goto(f"/notes?folder={trip}")
    menu, button = notion_button(page)
    button.click()
    status = menu.locator(".plugin-action-status")
    expect(status).to_contain_text("Connect your Notion account first")
    status.get_by_role("link", name="Connect Notion").click()  # the fake's consent, then back

    page.wait_for_url(f"**/notes?folder={trip}")
    expect(page.get_by_text("Notion is connected (Ann's Workspace).")).to_be_visible()
    menu, button = notion_button(page)
    button.click()
    link = menu.locator(".plugin-action-status").get_by_role("link", name="open it in Notion")
    expect(link).to_be_visible(timeout=30_000)
    by_title = {notion.title_of(p): p for p in notion.created_pages()}
    assert set(by_title) == {"Porto trip", "Days", "Plan", "Day 1", "Day 2"}
    top = by_title["Porto trip"]
    assert link.get_attribute("href") == notion.pages[top]["url"]
    assert notion.pages[by_title["Plan"]]["parent"]["page_id"] == top
    assert notion.pages[by_title["Day 2"]]["parent"]["page_id"] == by_title["Days"]

    # Sent again: the same pages, and the same link.
    page.reload()
    menu, button = notion_button(page)
    button.click()
    again = menu.locator(".plugin-action-status").get_by_role("link", name="open it in Notion")
    expect(again).to_have_attribute("href", notion.pages[top]["url"], timeout=30_000)
    assert sorted(notion.created_pages()) == sorted(by_title.values())
