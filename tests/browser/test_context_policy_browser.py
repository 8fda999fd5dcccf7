"""Context window management in a real browser (issue #18 item 6): the chat page's control sets
the conversation to "summarise", and once the conversation outgrows the demo model's window the
next answer shows a collapsible "Earlier turns summarised" marker with the summary, while the
wallet's ledger shows the summary's own charge."""

from __future__ import annotations

import re
import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, Browsing, api_account

ECHO = "demo/echo"


def long_prompt(index: int) -> str:
    """About 5,000 tokens (a third of the demo model's window) in one long word, which the
    demo model does not repeat: its answers stay short and quick."""
    return f"Turn{index} " + "xyzw" * 2500


def send(page: Any, prompt: str, turn: int) -> Any:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Send").click()
    card = page.locator("#thread > li.turn").nth(turn).locator(f'.answer[data-model="{ECHO}"]')
    expect(card.locator('[data-field="status"]')).to_have_text("Complete", timeout=20_000)
    return card


def test_a_long_chat_set_to_summarise_shows_the_summary_marker(
    browsing: Browsing, browser: Any, server: str, screenshot: Any, page_problems: Any
) -> None:
    # The composer's model suggestions (another feature) put the prompt in a query string,
    # which a prompt this long overflows: a 400 that does not concern this test.
    page_problems.allow(r"model-suggestions")
    person: Account = api_account(
        browser, server, "Sumi Summary", f"sumi.{secrets.token_hex(3)}@example.com"
    )
    page = browsing.new_page(storage_state=person.storage_state)
    page.goto("/chat")
    page.locator("#model-summary").click()
    for box in page.locator('#model-picker input[name="models"]:not([disabled])').all():
        box.set_checked(box.get_attribute("value") == ECHO)
    page.locator("#model-summary").click()
    send(page, long_prompt(1), 0)
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))

    # The control appears on the conversation's page; the choice is saved at once.
    page.reload()
    control = page.get_by_label("When the chat outgrows a model")
    expect(control).to_have_value("drop")
    control.select_option("summarise")
    expect(page.locator("#context-policy-status")).to_contain_text("will be summarised")
    conversation = page.url.rsplit("/", 1)[-1]
    saved = page.request.get(f"/api/conversations/{conversation}").json()
    assert saved["context_policy"] == "summarise"

    send(page, long_prompt(2), 1)
    card = send(page, long_prompt(3), 2)
    marker = card.locator("details.context-summary")
    expect(marker).to_be_visible()
    expect(marker.locator("summary")).to_have_text("Earlier turns summarised")
    expect(card.locator('[data-field="note"]')).to_be_hidden()
    marker.locator("summary").click()
    expect(marker.locator('[data-field="summary-meta"]')).to_contain_text(
        re.compile(r"\d+ older messages?, summarised by demo/")
    )
    expect(marker.locator('[data-field="summary-text"]')).not_to_be_empty()
    screenshot(page, "context-summary-marker")

    ledger = page.request.get("/api/wallet/ledger").json()["entries"]
    assert [e["reason"] for e in ledger].count("Summary of earlier turns") == 1

    # The stored page shows the same marker, closed until opened.
    page.reload()
    stored = page.locator("#thread details.context-summary:visible")
    expect(stored).to_have_count(1)
    expect(stored).not_to_have_attribute("open", "")
