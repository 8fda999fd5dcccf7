"""The built-in starter templates and the composer's suggestions in a real browser: typing a
prompt in the workspace suggests the fitting starter, which opens its variables form and fills
the composer; an admin edits a starter on /prompts (it stays public), and a user sees the change
without an Edit link.

Runs against the shared embedded server (its starters are seeded when it starts).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_account


@pytest.fixture(scope="module")
def typist(browser: Any, server: str, admin: Any) -> Any:
    return api_account(browser, server, "Tess Typist", "tess.starters@example.com")


def test_typing_a_prompt_suggests_a_starter_that_fills_the_composer(
    browsing: Any, typist: Any
) -> None:
    page = browsing.new_page(storage_state=typist.storage_state)
    page.goto("/chat")
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("Please translate this paragraph into German")
    suggestions = page.locator("#template-suggestions")
    expect(suggestions).to_be_visible()
    expect(suggestions.get_by_role("button").first).to_have_text("Translate")
    suggestions.get_by_role("button", name="Translate").click()
    expect(suggestions).to_be_hidden()

    form = page.locator("#template-fill-form")
    form.get_by_label("Text").fill("Good morning, everyone.")
    form.get_by_label("Into").select_option("German")
    form.get_by_role("button", name="Put in the composer").click()
    expect(prompt).to_have_value(
        "Translate the following text into German. Keep its tone, formatting and names; do not "
        "add explanations.\n\nGood morning, everyone."
    )
    # A prompt a template wrote is not answered with suggestions; too short a text neither.
    page.wait_for_timeout(600)
    expect(suggestions).to_be_hidden()
    prompt.fill("Hi")
    page.wait_for_timeout(600)
    expect(suggestions).to_be_hidden()


def test_an_admin_edits_a_starter_and_users_see_it_but_cannot_edit(
    browsing: Any, admin_page: Any, typist: Any
) -> None:
    admin_page.goto("/prompts?scope=builtin&q=brainstorm")
    card = admin_page.locator(".prompt-card", has_text="Brainstorm ideas")
    expect(card.locator("[data-builtin]")).to_have_text("Built-in")
    card.get_by_role("link", name="Edit Brainstorm ideas").click()
    expect(admin_page.locator("[data-builtin-note]")).to_be_visible()
    expect(admin_page.get_by_role("group", name="Who can use it")).to_have_count(0)
    admin_page.get_by_label("Title").fill("Brainstorm many ideas")
    admin_page.get_by_role("button", name="Save template").click()
    expect(admin_page.locator(".prompt-card", has_text="Brainstorm many ideas")).to_be_visible()

    page = browsing.new_page(storage_state=typist.storage_state)
    page.goto("/prompts?scope=builtin")
    card = page.locator(".prompt-card", has_text="Brainstorm many ideas")
    expect(card).to_contain_text("Built-in")
    expect(card.get_by_role("button", name="Use", exact=True)).to_be_visible()
    expect(card.get_by_role("link", name="Edit Brainstorm many ideas")).to_have_count(0)
    assert page.locator(".prompt-card").count() >= 20
