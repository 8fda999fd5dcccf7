"""Exports from the workspace in a real browser: one answer downloaded as a PDF from its own
Export menu (the file read back with pypdf), and a prompt's answers downloaded side by side as a
Word document from the prompt's "Export comparison" menu on a phone (read back with
python-docx: one column per model, the model names in the header row).

Runs against the shared embedded server, where the built-in exporter plugins and the demo models
are enabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docx
import pypdf
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, api_account

MODELS = ["demo/echo", "demo/reverse"]
PROMPT = "Which hills does Lisbon have?"


@pytest.fixture(scope="module")
def member(browser: Any, server: str, admin: Any) -> Any:
    """A member of the shared server (not its admin)."""
    return api_account(browser, server, "Theo Turns", "theo.turns@example.com").storage_state


def asked(page: Any) -> tuple[str, str, dict[str, str]]:
    """``PROMPT`` sent to both demo models: (conversation, prompt, {model: answer})."""
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    headers = {"X-CSRF-Token": token}
    created = page.request.post("/api/conversations", data={}, headers=headers)
    assert created.ok, created.text()
    conversation = created.json()["id"]
    sent = page.request.post(
        f"/api/conversations/{conversation}/messages",
        data={"content": PROMPT, "models": MODELS},
        headers=headers,
    )
    assert sent.ok, sent.text()
    sent.body()  # the answers' stream, to its end
    tree = page.request.get(f"/api/conversations/{conversation}").json()
    prompt = next(m["id"] for m in tree["messages"] if m["role"] == "user")
    answers = {m["model"]: m["id"] for m in tree["messages"] if m["role"] == "assistant"}
    return conversation, prompt, answers


def test_an_answer_downloads_as_pdf_from_its_export_menu(
    browsing: Any, member: Any, tmp_path: Path
) -> None:
    page = browsing.new_page(storage_state=member)
    page.goto("/chat")
    conversation, _, answers = asked(page)

    page.goto(f"/chat/{conversation}")
    card = page.locator(f"#answer-{answers['demo/reverse']}")
    menu = card.locator('details[data-plugin-actions="answer"]')
    menu.locator("summary").click()
    export = menu.get_by_role("group", name="Export")
    expect(export.get_by_role("button", name="Word")).to_be_visible()
    with page.expect_download() as info:
        export.get_by_role("button", name="PDF").click()
    download = info.value
    assert download.suggested_filename == "Which hills does Lisbon have- (demo-reverse).pdf"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(target).pages)
    assert PROMPT in text and "Model demo/reverse (demo)" in text
    assert "have? Lisbon does hills Which" in text  # demo/reverse: the words reversed


def test_a_prompts_answers_download_side_by_side_as_word_on_a_phone(
    browsing: Any, member: Any, tmp_path: Path
) -> None:
    phone = browsing.new_page(phone=True, storage_state=member)
    phone.goto("/chat")
    conversation, prompt, _ = asked(phone)

    phone.goto(f"/chat/{conversation}")
    menu = phone.locator(f"#turn-{prompt}").locator('details[data-plugin-actions="prompt"]')
    menu.locator("summary").click()
    export = menu.get_by_role("group", name="Export comparison")
    word = export.get_by_role("button", name="Word")
    expect(word).to_be_visible()
    box = menu.locator(".row-menu-body").bounding_box()  # the open menu fits the screen
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    with phone.expect_download() as info:
        word.click()
    target = tmp_path / "comparison.docx"
    info.value.save_as(target)
    assert info.value.suggested_filename == "Which hills does Lisbon have.docx"

    document = docx.Document(str(target))
    table = document.tables[-1]  # after the provenance's (date, link)
    assert len(table.columns) == len(MODELS)
    assert [cell.text for cell in table.rows[0].cells] == MODELS
    echo, reverse = table.rows[-1].cells
    assert PROMPT in echo.text and "have? Lisbon does hills Which" in reverse.text
