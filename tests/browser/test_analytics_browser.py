"""The operator's analytics in a real browser (issue #19 item 8): the administrator prompts a
model, finds Analytics in the console's nav, runs the rollup (in the background: the page
follows it) and sees every dashboard with its chart and the table behind it (the model they
used among the generations), narrows the date range, and reads the same page on a phone
without sideways scrolling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, Browsing
from tests.browser.test_accessibility import serious_violations

SECTIONS = (
    "Active users",
    "Sign-ups and activation",
    "Retention by sign-up week",
    "Generations and tokens",
    "AI cost and revenue",
    "Storage",
)


def prompt_demo_model(page: Any) -> None:
    page.goto("/notes")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    response = page.request.post(
        "/api/messages",
        data={"content": "Count the tides", "models": ["demo/echo"]},
        headers={"X-CSRF-Token": token},
    )
    assert response.ok, response.text()


def test_an_administrator_reads_the_dashboards_on_desktop_and_phone(
    browsing: Browsing, admin: Account, admin_page: Any, screenshot: Any
) -> None:
    page = admin_page
    prompt_demo_model(page)
    page.goto("/admin/plugins")
    page.get_by_role("navigation", name="Admin console").get_by_role(
        "link", name="Analytics"
    ).click()
    expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
    page.get_by_role("button", name="Run the rollup now").click()
    # It runs in the background: the page says so and follows it (htmx polls its status).
    expect(page.locator(".flash")).to_contain_text("The rollup is running")
    expect(page.locator("#rollup-running")).to_have_count(0, timeout=30_000)
    if page.locator("#rollup-done").count():  # the page watched it finish
        page.get_by_role("link", name="Show the new figures").click()
    else:  # it had finished before the page was drawn: the figures are there already
        page.reload()
    for name in SECTIONS:
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(page.locator("#figure-dau")).not_to_have_text("0")
    expect(page.locator("#table-usage")).to_contain_text("demo/echo")
    expect(page.locator("#table-funnel tr[data-step='first_answer']")).to_be_visible()
    expect(page.get_by_role("img", name="Active users per day")).to_be_visible()
    expect(page.get_by_role("img", name="Generations per model")).to_be_visible()
    assert serious_violations(page) == []
    screenshot(page, "admin-analytics")

    # A range that ends before anyone used anything: the tables say so instead of charts.
    old = (datetime.now(UTC).date() - timedelta(days=400)).isoformat()
    page.get_by_label("From", exact=True).fill(old)
    page.get_by_label("To", exact=True).fill(old)
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#usage")).to_contain_text("No generations in these days.")
    href = page.get_by_role("link", name="Download CSV").first.get_attribute("href") or ""
    assert f"from={old}" in href

    phone = browsing.new_page(phone=True, storage_state=admin.storage_state)
    phone.goto("/admin/analytics")
    expect(phone.get_by_role("img", name="Active users per day")).to_be_visible()
    expect(phone.locator("#table-usage")).to_contain_text("demo/echo")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, width
    assert serious_violations(phone) == []
    screenshot(phone, "admin-analytics-phone")
