"""Sharing a blind comparison in the browser: its owner opens "Share this comparison", shares it
with a colleague and makes a public link. Before the vote, the colleague's page and the public
page show the answers as A and B with nothing naming a model (and no vote form for the
colleague); once the owner votes, both show who wrote what."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_account

REVEALING = ("demo/echo", "demo/reverse", "Echo", "Reverse")


@pytest.fixture
def people(browser: Any, server: str, admin: Any) -> tuple[Any, Any]:
    tag = secrets.token_hex(3)
    owner = api_account(browser, server, "Olive Owner", f"olive.{tag}@example.com")
    colleague = api_account(browser, server, "Cole Colleague", f"cole.{tag}@example.com")
    return owner, colleague


def assert_blind(page: Any) -> None:
    html = page.content()
    for word in REVEALING:
        assert word not in html, f"{word!r} on {page.url} before the vote"


def test_a_shared_comparison_stays_blind_until_the_owner_votes(
    browsing: Any, people: tuple[Any, Any]
) -> None:
    owner, colleague = people
    page = browsing.new_page(storage_state=owner.storage_state)
    page.goto("/comparisons")
    page.get_by_label("Prompt").fill("one two three")
    page.get_by_label("How many models (drawn at random)").select_option("2")
    page.get_by_role("button", name="Compare blind").click()
    page.wait_for_url("**/comparisons/*")
    expect(page.get_by_role("heading", name="Answer B")).to_be_visible()
    comparison_url = page.url

    page.get_by_role("link", name="Share this comparison").click()
    page.get_by_label("Email address").fill(colleague.email)
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.get_by_role("list", name="People with access")).to_contain_text(colleague.email)
    page.get_by_text("Create a public link").click()
    page.get_by_role("button", name="Create link").click()
    link = page.get_by_label("New link (shown only now)").input_value()
    assert "/s/" in link

    theirs = browsing.new_page(storage_state=colleague.storage_state)
    theirs.goto(comparison_url)
    expect(theirs.locator("#arena-shared")).to_contain_text("Shared by Olive Owner")
    expect(theirs.get_by_role("heading", name="Answer A")).to_be_visible()
    expect(theirs.locator("#arena-vote")).to_have_count(0)
    assert_blind(theirs)

    visitor = browsing.new_page()
    visitor.goto(link)
    expect(visitor.get_by_role("heading", name="Answer A")).to_be_visible()
    expect(visitor.locator("#arena-blind")).to_be_visible()
    assert_blind(visitor)

    # The owner votes; the reversed prompt is the Reverse model's.
    page.goto(comparison_url)
    texts = {label: page.locator(f"#answer-{label} .arena-text").inner_text() for label in "AB"}
    winner = next(label for label, text in texts.items() if text.strip() == "three two one")
    page.get_by_label(winner, exact=True).check()
    page.get_by_role("button", name="Vote and reveal the models").click()
    expect(page.locator("#arena-revealed")).to_be_visible()

    theirs.reload()
    expect(theirs.locator(f"#answer-{winner} .arena-model")).to_have_text("Reverse")
    visitor.reload()
    expect(visitor.locator(f"#answer-{winner} .arena-model")).to_have_text("Reverse")
    expect(visitor.locator("#arena-blind")).to_have_count(0)
