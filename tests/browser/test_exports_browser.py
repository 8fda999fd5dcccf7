"""Exports in a real browser: a note downloaded as PDF from its Export menu (the file read back
with pypdf), a folder exported from its menu while a progress bar moves and then downloaded as a
ZIP keeping the folder tree, and a format an admin switches off gone from the next page.

Runs against the shared embedded server, where the built-in exporter plugins are enabled.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pypdf
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_account


@pytest.fixture(scope="module")
def exporter(browser: Any, server: str, admin: Any) -> Any:
    """A member of the shared server (not its admin)."""
    return api_account(browser, server, "Xena Export", "xena.export@example.com").storage_state


@pytest.fixture
def xena(browsing: Any, exporter: Any) -> Any:
    page = browsing.new_page(storage_state=exporter)
    page.goto("/notes")
    return page


def call(page: Any, method: str, path: str, data: Any = None) -> Any:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.fetch(path, method=method, data=data, headers={"X-CSRF-Token": token})
    assert response.ok, f"{method} {path}: {response.status} {response.text()}"
    return response.json()


def test_a_note_downloads_as_pdf_from_its_export_menu(xena: Any, tmp_path: Path) -> None:
    note = call(
        xena,
        "POST",
        "/api/documents",
        {"title": "Harbour walk", "content": "# Harbour walk\n\n- Ribeira\n- **Cais**"},
    )["id"]
    xena.goto(f"/notes/{note}")
    menu = xena.locator("details.plugin-actions")
    menu.locator("summary").click()
    export = menu.get_by_role("group", name="Export")
    expect(export.get_by_role("button", name="Word")).to_be_visible()
    with xena.expect_download() as info:
        export.get_by_role("button", name="PDF").click()
    download = info.value
    assert download.suggested_filename == "Harbour walk.pdf"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(target).pages)
    assert "Ribeira" in text and "Cais" in text and "Page 1 of 1" in text


@pytest.mark.long
def test_a_folder_exports_with_a_progress_bar_then_downloads_as_a_zip(
    xena: Any, tmp_path: Path
) -> None:
    trip = call(xena, "POST", "/api/folders", {"name": "Porto trip"})["id"]
    days = call(xena, "POST", "/api/folders", {"name": "Days", "parent_id": trip})["id"]
    body = "\n\n".join(f"Paragraph {n}: " + "walk and look " * 30 for n in range(12))
    for n in range(40):
        call(
            xena,
            "POST",
            "/api/documents",
            {"title": f"Day {n:02d}", "content": f"# Day {n}\n\n{body}", "folder_id": days},
        )
    call(xena, "POST", "/api/documents", {"title": "Plan", "content": "# Plan", "folder_id": trip})

    xena.goto(f"/notes?folder={trip}")
    menu = xena.locator("#folder-menu")
    menu.locator("summary").click()
    menu.get_by_role("group", name="Export").get_by_role("button", name="PDF (ZIP)").click()
    bar = menu.locator("progress")
    expect(bar).to_be_visible()
    expect(menu.locator(".export-progress-text")).to_contain_text("of 41")
    first = int(bar.get_attribute("value") or 0)
    link = menu.get_by_role("link", name="Download Porto trip.zip")
    expect(link).to_be_visible(timeout=90_000)
    assert first < 41  # the bar was seen before the end

    with xena.expect_download() as info:
        link.click()
    target = tmp_path / "export.zip"
    info.value.save_as(target)
    names = sorted(zipfile.ZipFile(target).namelist())
    assert len(names) == 41 and names[0] == "Days/Day 00.pdf" and names[-1] == "Plan.pdf"
    pdf = zipfile.ZipFile(target).read("Days/Day 07.pdf")
    assert "Day 7" in pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def test_a_format_switched_off_vanishes_from_the_menu(browsing: Any, admin: Any, xena: Any) -> None:
    note = call(xena, "POST", "/api/documents", {"title": "Short", "content": "text"})["id"]
    boss = browsing.new_page(storage_state=admin.storage_state)
    boss.goto("/notes")
    call(boss, "PATCH", "/api/admin/plugins/docx", {"enabled": False})
    try:
        xena.goto(f"/notes/{note}")
        xena.locator("details.plugin-actions summary").click()
        export = xena.get_by_role("group", name="Export")
        expect(export.get_by_role("button", name="PDF")).to_be_visible()
        expect(export.get_by_role("button", name="Word")).to_have_count(0)
    finally:
        call(boss, "PATCH", "/api/admin/plugins/docx", {"enabled": True})
    xena.reload()
    xena.locator("details.plugin-actions summary").click()
    export = xena.get_by_role("group", name="Export")
    expect(export.get_by_role("button", name="Word")).to_be_visible()


def test_a_conversation_exports_from_the_chat_page(xena: Any, tmp_path: Path) -> None:
    conversation = call(xena, "POST", "/api/conversations", {"title": "Hill count"})["id"]
    token = xena.locator('meta[name="csrf-token"]').get_attribute("content")
    sent = xena.request.post(
        f"/api/conversations/{conversation}/messages",
        data={"content": "How many hills has Porto?", "models": ["demo/echo"]},
        headers={"X-CSRF-Token": token},
    )
    assert sent.ok, sent.text()
    sent.body()  # the answer's stream, to its end

    xena.goto(f"/chat/{conversation}")
    menu = xena.locator('details[data-plugin-actions="conversation"]')
    menu.locator("summary").click()
    menu.get_by_role("group", name="Export").get_by_role("button", name="Markdown").click()
    link = menu.get_by_role("link", name=re.compile(r"^Download "))
    expect(link).to_be_visible(timeout=60_000)
    with xena.expect_download() as info:
        link.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    assert "How many hills has Porto?" in target.read_text()
