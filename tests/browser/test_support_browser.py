"""Browser tests of the operator's console (issue #19): a user opens a support ticket from the
Help page, an administrator answers it from the queue, and the user reads the answer (the staff
note stays hidden); an administrator publishes an announcement, the user sees its banner on
their pages, dismisses it, and after a reload it is gone. Both fit a 390px phone and axe finds
nothing serious."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_account, confirm
from tests.browser.test_accessibility import serious_violations
from tests.browser.test_billing_console_browser import no_horizontal_scroll


def test_a_user_opens_a_ticket_and_reads_the_answer(
    browser: Any, server: str, browsing: Any, admin_page: Any, screenshot: Any
) -> None:
    user = api_account(browser, server, "Tess Ticket", "tess@example.com")
    tess = browsing.new_page(storage_state=user.storage_state)
    tess.goto("/account")
    tess.get_by_role("link", name="Help & support").click()
    expect(tess.get_by_role("heading", level=1)).to_have_text("Help & support")
    tess.get_by_label("Subject").fill("Export stops halfway")
    tess.get_by_label("Message").fill("My **PDF** export stops at 50%.")
    tess.get_by_role("button", name="Send").click()
    expect(tess.locator(".flash")).to_contain_text("Your ticket was sent")
    expect(tess.locator("#ticket-subject")).to_have_text("Export stops halfway")
    expect(tess.locator("#thread strong", has_text="PDF")).to_be_visible()
    ticket_path = tess.evaluate("location.pathname")

    admin = admin_page
    admin.goto("/admin/plugins")
    admin.get_by_role("navigation", name="Admin console").get_by_role(
        "link", name="Support"
    ).click()
    admin.get_by_label("Status").select_option("open")
    admin.get_by_role("button", name="Filter").click()
    admin.locator("#support-queue").get_by_role("link", name="Export stops halfway").click()
    admin.get_by_label("Reply or note").fill("Looks like the font bug")
    admin.get_by_label("Internal note").check()
    admin.get_by_role("button", name="Send").click()
    expect(admin.locator(".flash")).to_contain_text("Note added")
    admin.get_by_label("Reply or note").fill("Fixed: please **try again**.")
    admin.get_by_role("button", name="Send").click()
    expect(admin.locator(".flash")).to_contain_text("Reply sent")
    expect(admin.locator("#ticket-status")).to_have_text("Answered")
    expect(admin.locator("#ticket-assignee")).to_have_text("Ada Admin")
    screenshot(admin, "admin-support-ticket")

    tess.goto(ticket_path)
    expect(tess.locator("#ticket-status")).to_have_text("Answered")
    expect(tess.locator("#thread")).to_contain_text("Fixed: please try again.")
    expect(tess.locator("#thread")).not_to_contain_text("font bug")
    tess.get_by_label("Reply").fill("Works now, thank you")
    tess.get_by_role("button", name="Send reply").click()
    expect(tess.locator("#ticket-status")).to_have_text("Waiting for support")

    admin.reload()
    admin.get_by_role("button", name="Close ticket").click()
    expect(admin.locator("#ticket-status")).to_have_text("Closed")

    phone = browsing.new_page(phone=True, storage_state=user.storage_state)
    phone.goto(ticket_path)
    expect(phone.locator("#reply-form")).to_be_visible()
    no_horizontal_scroll(phone)
    screenshot(phone, "support-ticket-phone")
    found: dict[str, list[str]] = {}
    for path in ("/support", ticket_path):
        tess.goto(path)
        if problems := serious_violations(tess):
            found[path] = problems
    assert found == {}, json.dumps(found, indent=1)


def test_an_announcement_shows_until_the_user_dismisses_it(
    browser: Any, server: str, browsing: Any, admin_page: Any, screenshot: Any
) -> None:
    user = api_account(browser, server, "Ann Nouncement", "ann.nouncement@example.com")
    admin = admin_page
    admin.goto("/admin/announcements")
    admin.get_by_label("Title").fill("Maintenance tonight")
    admin.get_by_label("Message").fill("The app is down from **22:00** to 22:30 UTC.")
    admin.get_by_label("Severity").select_option("warning")
    admin.get_by_role("button", name="Publish").click()
    expect(admin.locator(".flash")).to_contain_text("was published")
    expect(admin.locator("#announcement-list")).to_contain_text("Maintenance tonight")

    reader = browsing.new_page(storage_state=user.storage_state)
    reader.goto("/notes")
    banner = reader.locator("#announcement-banners .announcement", has_text="Maintenance tonight")
    expect(banner).to_be_visible()
    expect(banner.locator("strong", has_text="22:00")).to_be_visible()
    screenshot(reader, "announcement-banner")
    phone = browsing.new_page(phone=True, storage_state=user.storage_state)
    phone.goto("/notes")
    expect(phone.locator("#announcement-banners .announcement")).to_be_visible()
    no_horizontal_scroll(phone)
    assert serious_violations(reader) == []

    banner.get_by_role("button", name="Dismiss: Maintenance tonight").click()
    expect(banner).to_have_count(0)
    reader.reload()
    expect(reader.get_by_role("heading", level=1)).to_be_visible()
    reader.wait_for_load_state("networkidle")
    expect(reader.locator("#announcement-banners .announcement")).to_have_count(0)
    reader.goto("/announcements")
    expect(reader.locator("#announcements")).to_contain_text("Maintenance tonight")

    # Leave the shared server as it was: other tests' pages have no banner.
    admin.goto("/admin/announcements")
    admin.locator("#announcement-list tr", has_text="Maintenance tonight").get_by_role(
        "button", name="Remove"
    ).click()
    confirm(admin, "Remove")
    expect(admin.locator(".flash")).to_contain_text("removed")
