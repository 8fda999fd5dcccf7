"""Smart assistance in a real browser (issue #18 item 7): while a prompt is written the composer
suggests models for it, and one click ticks the suggestion in the model picker; an answer saved as
a note gets tags and a one-line summary from a cheap model (here the demo Echo model, which
repeats the JSON the prompt holds), which the owner edits and accepts, and the notes list shows
them."""

from __future__ import annotations

import re
import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Browsing, api_account
from tests.browser.test_accessibility import serious_violations

ECHO = "demo/echo"
PROMPT = (
    "Please fix the bug in my Python script, explain the fix, and label the note as follows "
    '{"tags": ["Python", "debugging"], "summary": "Fixing an off-by-one bug in a Python loop."}'
)


def test_suggested_models_apply_in_one_click_and_a_saved_answer_gets_tags(
    browsing: Browsing, browser: Any, server: str, screenshot: Any
) -> None:
    account = api_account(
        browser, server, "Tess Tagger", f"tess.{secrets.token_hex(3)}@example.com"
    )
    page = browsing.new_page(storage_state=account.storage_state)
    page.goto("/chat")
    # Start with nothing picked, so the suggestion's click is what picks the model.
    page.locator("#model-summary").click()
    for box in page.locator('#model-picker input[name="models"]:not([disabled])').all():
        box.set_checked(False)
    page.locator("#model-summary").click()

    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    suggestions = page.locator("#model-suggestions")
    echo = suggestions.locator(f'button[data-apply-model="{ECHO}"]')
    expect(echo).to_be_visible(timeout=10_000)
    expect(suggestions).to_contain_text("Suggested models for code")
    expect(suggestions).to_contain_text("Strong at code")
    expect(suggestions.locator('button[data-apply-model="demo/swatch"]')).to_have_count(0)
    screenshot(page, "assist-suggested-models")
    assert serious_violations(page) == []

    echo.click()
    expect(echo).to_have_attribute("aria-pressed", "true")
    expect(page.locator(f'#model-picker input[name="models"][value="{ECHO}"]')).to_be_checked()
    expect(page.locator("#model-summary")).to_contain_text("Echo")

    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))
    answer = page.locator(f'#thread > li.turn[id] .answer[data-model="{ECHO}"]:visible').last
    expect(answer.locator('[data-field="status"]')).to_have_text("Complete")
    expect(answer).to_have_attribute("data-message-id", re.compile(r"^[0-9a-f]{32}$"))
    answer.get_by_role("button", name="Save").click()
    dialog = page.get_by_role("dialog", name="Save as a note")
    dialog.get_by_role("button", name="Save note").click()
    link = answer.locator(".saved-link")
    expect(link).to_be_visible()
    link.click()
    expect(page).to_have_url(re.compile(r"/notes/[0-9a-f]{32}$"))

    # Suggestions are paid for, so saving asks for none by default; the user asks for one here.
    # It arrives in the background; the note is untouched until it is accepted.
    panel = page.locator("#note-assist")
    expect(panel.locator("#suggestion-pending")).to_have_count(0)
    expect(panel.locator("#assist-automatic")).not_to_be_checked()
    panel.get_by_role("button", name="Suggest tags and a summary").click()
    expect(panel.locator("#suggestion-ready")).to_be_visible(timeout=20_000)
    expect(panel.locator("#suggestion-ready")).to_contain_text("Echo")
    tags = panel.get_by_role("textbox", name="Tags")
    expect(tags).to_have_value("python, debugging")
    expect(panel.get_by_label("One-line summary")).to_have_value(
        "Fixing an off-by-one bug in a Python loop."
    )
    expect(panel.locator("#note-tags")).to_have_count(0)
    screenshot(page, "assist-note-suggestion")
    assert serious_violations(page) == []

    tags.fill("python, debugging, Loops")
    panel.get_by_role("button", name="Accept").click()
    shown = page.locator("#note-assist #note-tags li")
    expect(shown).to_have_text(["python", "debugging", "loops"])
    expect(page.locator("#note-summary")).to_have_text("Fixing an off-by-one bug in a Python loop.")
    expect(page.locator("#suggestion-ready")).to_have_count(0)

    page.goto("/notes")
    row = page.locator("li.item-document").filter(has_text="Please fix the bug")
    expect(row.locator(".item-summary")).to_have_text("Fixing an off-by-one bug in a Python loop.")
    expect(row.locator(".item-tags li")).to_have_text(["python", "debugging", "loops"])

    # The catalogue shows the model's measured latency and availability.
    page.goto("/models")
    echo_row = page.locator(f'#models-catalogue tr[data-model="{ECHO}"]')
    expect(echo_row.locator('[data-stat="availability"]')).to_contain_text("%")
    expect(echo_row.locator('[data-stat="latency"]')).to_contain_text("ms")
