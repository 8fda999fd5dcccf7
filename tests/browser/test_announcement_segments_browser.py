"""Announcements for a segment in a real browser (issue #19 item 6, "an announcement shows to one
segment only"): an administrator publishes an in-app message for one organisation from the
console's form; a member of that organisation sees it as a dialog on their next page and closes
it for good, while someone outside the organisation never sees it. axe finds nothing serious."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_account, confirm
from tests.browser.test_accessibility import serious_violations


def test_an_in_app_message_for_one_organisation_shows_to_its_members_only(
    browser: Any, server: str, browsing: Any, admin_page: Any, screenshot: Any
) -> None:
    tag = secrets.token_hex(3)
    insider = api_account(browser, server, "Ivy Insider", f"ivy.{tag}@example.com")
    outsider = api_account(browser, server, "Oscar Outsider", f"oscar.{tag}@example.com")
    team = f"Segment team {tag}"
    insider.post(browser, server, "/api/orgs", {"name": team})
    title = f"Team templates {tag}"

    admin = admin_page
    admin.goto("/admin/announcements")
    admin.get_by_label("Title").fill(title)
    admin.get_by_label("Message").fill("Your team can now **share templates**.")
    admin.get_by_label("Shown as").select_option("message")
    admin.get_by_label("Organisation (member of any)").select_option(label=team)
    assert serious_violations(admin) == []
    admin.get_by_role("button", name="Publish").click()
    expect(admin.locator(".flash")).to_contain_text("was published")
    row = admin.locator("#announcement-list tr", has_text=title)
    expect(row).to_contain_text("in-app message")
    expect(row).to_contain_text("organisation: 1")
    screenshot(admin, "admin-announcement-segment")

    reader = browsing.new_page(storage_state=insider.storage_state)
    reader.goto("/notes")
    dialog = reader.get_by_role("dialog", name=title)
    expect(dialog).to_be_visible()
    expect(dialog.locator("strong", has_text="share templates")).to_be_visible()
    assert serious_violations(reader) == []
    screenshot(reader, "announcement-in-app-message")

    stranger = browsing.new_page(storage_state=outsider.storage_state)
    stranger.goto("/notes")
    stranger.wait_for_load_state("networkidle")
    expect(stranger.locator("#announcement-banners")).to_be_attached()
    expect(stranger.get_by_role("dialog", name=title)).to_have_count(0)
    stranger.goto("/announcements")
    expect(stranger.locator("main")).not_to_contain_text(title)

    # The dialog closes at once; the dismissal is stored by the request it sends, which the
    # reload must not overtake (on a loaded machine it did).
    with reader.expect_response(
        lambda response: response.url.endswith("/dismiss") and response.request.method == "POST"
    ):
        dialog.get_by_role("button", name="Got it").click()
    expect(dialog).to_have_count(0)
    reader.reload()
    reader.wait_for_load_state("networkidle")
    expect(reader.get_by_role("dialog", name=title)).to_have_count(0)

    # Leave the shared server as it was.
    admin.goto("/admin/announcements")
    admin.locator("#announcement-list tr", has_text=title).get_by_role(
        "button", name="Remove"
    ).click()
    confirm(admin, "Remove")
    expect(admin.locator(".flash")).to_contain_text("removed")
