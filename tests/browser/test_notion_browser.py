"""Notion in a real browser (issue #15): from a note's Export menu, "Notion" offers to connect
the workspace first; the link goes through Notion's consent (the fake's) and back to the note;
then "Notion" sends the note and shows a link to the page. The account page shows the
connection by the workspace's name and disconnects it; on a phone the menu and the link fit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from multinotes.plugins.exports.notion.tests.fakes.fake_notion import FakeNotion
from tests.browser.conftest import (
    Browsing,
    PageProblems,
    api_account,
    confirm,
    server_with_fake_notion,
)


@dataclass
class Site:
    url: str
    notion: FakeNotion
    writer_state: dict[str, Any]
    note_id: str


@pytest.fixture
def site(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A fresh app whose Notion is the fake, with one member and one note of hers."""
    with server_with_fake_notion(tmp_path / "data", monkeypatch) as (fake, url):
        nia = api_account(browser, url, "Nia Notion", "nia@example.com")
        note_id = nia.post(
            browser,
            url,
            "/api/documents",
            {
                "title": "Harbour walk",
                "content": "# Harbour walk\n\n- Ribeira\n- **Cais**\n\n```sql\nselect 1;\n```",
            },
        )
        yield Site(url, fake, nia.storage_state, note_id)


@pytest.fixture
def site_browsing(browser: Any, site: Site, page_problems: PageProblems) -> Iterator[Browsing]:
    session = Browsing(browser, site.url, page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


def export_menu(page: Any) -> Any:
    menu = page.locator("details.plugin-actions")
    menu.locator("summary").click()
    return menu


def test_export_to_notion_connects_first_then_links_to_the_page(
    site: Site, site_browsing: Browsing
) -> None:
    page = site_browsing.new_page(storage_state=site.writer_state)
    page.goto(f"/notes/{site.note_id}")
    menu = export_menu(page)
    export = menu.get_by_role("group", name="Export")
    export.get_by_role("button", name="Notion").click()
    status = menu.locator(".plugin-action-status")
    expect(status).to_contain_text("Connect your Notion account first")
    connect = status.get_by_role("link", name="Connect Notion")
    connect.click()  # Notion's consent screen (the fake allows at once), then back here

    page.wait_for_url(f"**/notes/{site.note_id}")
    expect(page.get_by_text("Notion is connected (Ann's Workspace).")).to_be_visible()
    assert site.notion.created_pages() == []

    menu = export_menu(page)
    menu.get_by_role("group", name="Export").get_by_role("button", name="Notion").click()
    link = menu.locator(".plugin-action-status").get_by_role("link", name="open it in Notion")
    expect(link).to_be_visible()
    [page_id] = site.notion.created_pages()
    assert link.get_attribute("href") == site.notion.pages[page_id]["url"]
    assert site.notion.title_of(page_id) == "Harbour walk"
    kinds = [b["type"] for b in site.notion.page_blocks(page_id)]
    assert kinds == ["heading_1", "bulleted_list_item", "bulleted_list_item", "code"]

    # Exported again: the same page.
    menu.get_by_role("group", name="Export").get_by_role("button", name="Notion").click()
    expect(menu.locator(".plugin-action-status").get_by_role("link")).to_have_attribute(
        "href", site.notion.pages[page_id]["url"]
    )
    assert site.notion.created_pages() == [page_id]

    # The account page names the workspace and disconnects it.
    page.goto("/account")
    section = page.locator("#connections")
    expect(section.locator(".connection-account")).to_have_text("Ann's Workspace")
    section.get_by_role("button", name="Disconnect").click()
    confirm(page, "Disconnect")
    expect(page.get_by_text("Notion is disconnected.")).to_be_visible()
    expect(section.get_by_role("button", name="Connect Notion")).to_be_visible()


def test_a_revoked_connection_says_so_on_a_phone(site: Site, site_browsing: Browsing) -> None:
    page = site_browsing.new_page(storage_state=site.writer_state, phone=True)
    page.goto("/account")
    page.locator("#connections").get_by_role("button", name="Connect Notion").click()
    page.wait_for_url("**/account#connections")
    expect(page.locator("#connections .connection-account")).to_have_text("Ann's Workspace")

    site.notion.revoke_all()
    page.goto(f"/notes/{site.note_id}")
    menu = export_menu(page)
    menu.get_by_role("group", name="Export").get_by_role("button", name="Notion").click()
    status = menu.locator(".plugin-action-status")
    expect(status).to_contain_text("no longer accepts this connection")
    reconnect = status.get_by_role("link", name="Reconnect Notion")
    expect(reconnect).to_be_visible()
    box = reconnect.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
