"""Scheduled runs in a real browser, on a phone: a template is scheduled from /schedules (pick
the template, fill its value, choose a model and a folder, type a cron expression and read the
preview of its next runs, refused while it runs too often), run now, and its history links to
the note the run saved; then paused and resumed. The pages fit a phone and axe finds nothing
serious.

Runs against the shared embedded server, whose demo models answer offline.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Account, api_account
from tests.browser.test_accessibility import serious_violations


@pytest.fixture(scope="module")
def planner(browser: Any, server: str, admin: Any) -> Account:
    tag = secrets.token_hex(3)
    return api_account(browser, server, "Sid Scheduler", f"sid.{tag}@example.com")


def test_a_schedule_is_made_run_and_paused_on_a_phone(
    browsing: Any, browser: Any, server: str, planner: Account, screenshot: Any
) -> None:
    planner.post(
        browser,
        server,
        "/api/templates",
        {
            "title": "River report",
            "body": "Report on the {{river}}.",
            "variables": [{"name": "river", "label": "River"}],
        },
    )
    planner.post(browser, server, "/api/folders", {"name": "Reports"})
    page = browsing.new_page(phone=True, storage_state=planner.storage_state)
    page.goto("/schedules")
    expect(page.locator("#no-schedules")).to_be_visible()
    page.locator("#new-schedule").click()

    page.get_by_label("What to run").select_option(label="River report")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#chosen-template")).to_have_text("River report")
    page.get_by_label("Name", exact=True).fill("Weekday river report")
    page.get_by_label("River").fill("Danube")
    page.get_by_label(re.compile("Echo")).check()
    page.get_by_label("Save the answers in").select_option(label="Reports")
    page.get_by_label("Time zone").select_option("Europe/Berlin")

    # The preview follows the expression as it is typed; too often is refused there already.
    when = page.get_by_label(re.compile("^When"))
    when.fill("*/5 * * * *")
    expect(page.locator("[data-preview-error]")).to_contain_text("runs too often")
    when.fill("0 9 * * 1-5")
    upcoming = page.locator("[data-preview] li")
    expect(upcoming).to_have_count(5)
    for item in upcoming.all():
        expect(item).to_contain_text(re.compile(r"^(Mon|Tue|Wed|Thu|Fri) .*09:00$"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "schedule-form-phone")
    assert serious_violations(page) == []

    # Saving with an expression that runs too often is refused, naming the field.
    when.fill("*/5 * * * *")
    browsing.problems.allow(r"status of 422 .*/schedules/new")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator("#cron-error")).to_contain_text("more often than every 15 minutes")
    expect(page.get_by_label(re.compile("^When"))).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("River")).to_have_value("Danube")
    page.get_by_label(re.compile("^When")).fill("0 9 * * 1-5")
    page.get_by_role("button", name="Save schedule").click()

    expect(page.locator("#schedule-name")).to_have_text("Weekday river report")
    expect(page.locator("#schedule-status")).to_have_text("Active")
    expect(page.locator("#upcoming li")).to_have_count(3)
    expect(page.locator("#no-runs")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # Run now: the run happens in the background; the history shows it with its note once
    # it ends, without a reload (the live channel's task.finished reads the history again).
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    row = page.locator('[data-run-status="succeeded"]')
    expect(row).to_have_count(1, timeout=15_000)
    expect(row).to_contain_text("(run now)")
    screenshot(page, "schedule-detail-phone")
    assert serious_violations(page) == []
    row.locator("[data-note]").click()
    expect(page).to_have_url(re.compile(r"/notes/\w+"))
    expect(page.locator("body")).to_contain_text("Report on the Danube.")

    # Pause and resume.
    page.go_back()
    page.reload()
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#schedule-status")).to_have_text("Paused")
    expect(page.locator("#upcoming")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#schedule-status")).to_have_text("Active")

    page.goto("/schedules")
    card = page.locator(".schedule-card", has_text="Weekday river report")
    expect(card).to_contain_text("Active")
    expect(card).to_contain_text("Last run: Succeeded")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert serious_violations(page) == []
