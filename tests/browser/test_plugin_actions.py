"""Plugin actions in a real browser, on a phone: a plugin installed the way a third party's is
(found through its entry point) puts its items in a note's "More" menu; a posted one runs in
place and shows its answer, a link one opens; the built-in Markdown exporter's "Export →
Markdown" downloads the note; and when an admin switches the plugin off its items are gone from
the next page while the exporter's stay."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Browsing, api_account, running_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plugin_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[str]:
    """``multinotes serve`` with the test plugin (tests/support/ui_plugin) installed beside the
    built-in ones: a dist-info with its entry point on the server's path, as pip leaves it."""
    site = tmp_path / "site"
    dist = site / "multinotes_uidemo-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: multinotes-uidemo\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text("[multinotes]\nuidemo = tests.support.ui_plugin\n")
    paths = [str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", ":".join(paths))
    with running_server(tmp_path / "data") as url:
        yield url
        # Close the test's pages first: the bell would go on polling a server that is gone.
        browsing = request.node.funcargs.get("browsing")
        if browsing is not None:
            browsing.close()


def call(page: Any, method: str, path: str, data: Any = None) -> Any:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.fetch(
        path,
        method=method,
        headers={"X-CSRF-Token": token or "", "Content-Type": "application/json"},
        data=json.dumps(data) if data is not None else None,
    )
    assert response.ok, (path, response.status, response.text())
    return response.json()


def test_a_plugin_action_in_a_notes_menu_works_on_a_phone(
    browser: Any, browsing: Browsing, plugin_server: str, tmp_path: Path
) -> None:
    owner = api_account(browser, plugin_server, "Pia Phone", "pia@example.com")  # the admin
    phone = browsing.new_page(phone=True, storage_state=owner.storage_state, base_url=plugin_server)
    phone.goto("/notes")
    note = call(phone, "POST", "/api/documents", {"title": "Trip plan", "content": "# Day 1"})

    phone.goto(f"/notes/{note['id']}")
    more = phone.locator("details.plugin-actions").first
    more.locator("summary").click()
    send = more.get_by_role("button", name="Send to Demo")
    expect(send).to_be_visible()
    # The open menu fits the phone's screen.
    box = more.locator(".row-menu-body").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]

    send.click()  # htmx posts it with the page's CSRF token and shows the plugin's answer
    expect(more.locator(".plugin-action-status")).to_have_text("Sent to #general.")

    export = more.get_by_role("group", name="Export")
    expect(export.get_by_role("button", name="Demo file")).to_be_visible()
    with phone.expect_download() as download_info:
        export.get_by_role("button", name="Markdown").click()
    saved = tmp_path / "note.md"
    download_info.value.save_as(saved)
    text = saved.read_text()
    assert text.startswith('---\ntitle: "Trip plan"') and "# Day 1" in text

    call(phone, "PATCH", "/api/admin/plugins/uidemo", {"enabled": False})
    phone.reload()
    more = phone.locator("details.plugin-actions").first
    more.locator("summary").click()
    expect(more.get_by_role("button", name="Send to Demo")).to_have_count(0)
    expect(
        more.get_by_role("group", name="Export").get_by_role("button", name="Markdown")
    ).to_be_visible()
