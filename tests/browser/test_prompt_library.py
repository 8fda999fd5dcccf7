"""The prompt library in a real browser: a template with two variables is written on /prompts,
run from the workspace through its variables form (a missing value is named in the form), the
answer streams, and the library then counts one use.

Runs against the shared embedded server, whose demo models answer offline.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_account
from tests.browser.test_accessibility import serious_violations


@pytest.fixture(scope="module")
def writer(browser: Any, server: str, admin: Any) -> Any:
    return api_account(browser, server, "Pat Prompter", "pat.prompts@example.com")


def test_a_template_with_two_variables_runs_from_the_workspace_and_counts_a_use(
    browsing: Any, writer: Any
) -> None:
    page = browsing.new_page(storage_state=writer.storage_state)
    page.goto("/prompts/new")
    page.get_by_label("Title").fill("Animal note")
    page.get_by_label("Prompt", exact=True).fill("Write a {{style}} note about {{topic}}.")
    page.locator("#var-0-name").fill("topic")
    page.locator("#var-0-label").fill("Topic")
    page.locator("#var-1-name").fill("style")
    page.locator("#var-1-type").select_option("choice")
    page.locator("#var-1-options").fill("short, long")
    page.locator("#var-1-default").fill("short")
    page.get_by_label("Preferred models").fill("demo/echo")
    page.get_by_label("Tags").fill("animals")
    page.get_by_role("button", name="Save template").click()
    card = page.locator(".prompt-card", has_text="Animal note")
    expect(card).to_contain_text("Used 0 times")
    expect(card).to_contain_text("#animals")

    page.goto("/chat")
    page.get_by_text("Use a template").click()
    page.get_by_role("button", name="Animal note").click()
    form = page.locator("#template-fill-form")
    expect(form.get_by_label("Topic")).to_be_visible()
    browsing.problems.allow(r"status of 422 .*/api/templates/\w+/render")  # the empty topic
    form.get_by_role("button", name="Put in the composer").click()
    expect(form.locator('[data-error-for="topic"]')).to_have_text("Topic is required.")
    expect(form.get_by_label("Topic")).to_have_attribute("aria-invalid", "true")

    form.get_by_label("Topic").fill("otters")
    form.get_by_label("Style").select_option("long")
    form.get_by_role("button", name="Put in the composer").click()
    prompt = page.get_by_label("Prompt", exact=True)
    expect(prompt).to_have_value("Write a long note about otters.")
    expect(page.locator("#model-summary")).to_contain_text(re.compile("Echo", re.I))
    prompt.press("Control+Enter")
    echo = page.locator('.answer[data-model="demo/echo"]:visible').last
    expect(echo.locator(".answer-body")).to_contain_text("Write a long note about otters.")

    # The use is recorded once the prompt was accepted; the library shows it.
    for _ in range(20):
        page.goto("/prompts")
        if "Used 1 time" in page.locator(".prompt-card", has_text="Animal note").inner_text():
            break
        time.sleep(0.25)
    card = page.locator(".prompt-card", has_text="Animal note")
    expect(card).to_contain_text("Used 1 time")
    expect(card).to_contain_text("1 this week")
    expect(page.get_by_role("heading", name="Trending this week")).to_be_visible()


@pytest.mark.parametrize("path", ["/prompts", "/prompts/new"])
def test_the_library_pages_fit_a_phone_and_axe_finds_nothing_serious(
    browsing: Any, writer: Any, path: str
) -> None:
    page = browsing.new_page(phone=True, storage_state=writer.storage_state)
    page.goto(path)
    expect(page.locator("h1")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert serious_violations(page) == []


def test_an_organisations_templates_carry_its_badge_and_filter_on_a_phone(
    browsing: Any, browser: Any, server: str
) -> None:
    """A template in an organisation's space shows the organisation's name as a badge; "My
    organisations'" shows only those; the cards still fit 390 px."""
    tag = f"{time.time_ns():x}"[-6:]
    owner = api_account(browser, server, "Orla Owner", f"orla.{tag}@example.com")
    team = f"Acme Research {tag}"
    org_id = owner.post(browser, server, "/api/orgs", {"name": team})
    shared = owner.post(
        browser, server, "/api/templates", {"title": f"Team report {tag}", "body": "Summarise."}
    )
    owner.post(browser, server, "/api/templates", {"title": f"Private {tag}", "body": "Mine."})

    page = browsing.new_page(phone=True, storage_state=owner.storage_state)
    moved = page.request.post(
        f"/api/templates/{shared}/move-space",
        headers={"X-CSRF-Token": owner.csrf},
        data={"org_id": org_id},
    )
    assert moved.status == 200, moved.text()
    page.goto("/prompts")
    card = page.locator(f"#t-{shared}")
    expect(card.locator(f'[data-organisation="{org_id}"]')).to_have_text(team)
    page.get_by_label("Show").select_option("organisation")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(f"#t-{shared}")).to_be_visible()
    expect(page.get_by_text(f"Private {tag}")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert serious_violations(page) == []
