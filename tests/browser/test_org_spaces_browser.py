"""Browser test of the workspace switcher (issue #19 item 4): someone in an organisation picks
its space in the top bar and stays on the page they were on, now working there (uploads go to
its storage, the chat pays from its wallet); they bring a note into the space from the
organisation's page and switch back to their personal space. Someone in no organisation sees
no switcher. axe finds nothing serious."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_account
from tests.browser.test_accessibility import serious_violations


def test_the_top_bar_switches_between_personal_and_organisation_space(
    browsing: Any, browser: Any, server: str, screenshot: Any, page_problems: Any
) -> None:
    tag = secrets.token_hex(3)
    olive = api_account(browser, server, "Olive Owner", f"olive.{tag}@example.com")
    loner = api_account(browser, server, "Lou Loner", f"lou.{tag}@example.com")
    team = f"Acme {tag}"
    org_id = olive.post(browser, server, "/api/orgs", {"name": team})
    olive.post(browser, server, "/api/documents", {"title": f"Plan {tag}", "content": "# Plan"})

    page = browsing.new_page(storage_state=olive.storage_state)
    page.goto("/files")
    switcher = page.locator("#workspace-switcher")
    expect(switcher).to_be_visible()
    space = page.get_by_label("Working in")
    expect(space).to_have_value("personal")
    expect(page.locator("#upload-space")).to_have_count(0)
    space.select_option(label=team)
    switcher.get_by_role("button", name="Switch").click()
    expect(page.locator(".flash")).to_contain_text(f"You are working in {team}")
    assert page.evaluate("location.pathname") == "/files"
    expect(page.get_by_label("Working in")).to_have_value(org_id)
    expect(page.locator("#upload-space")).to_contain_text(team)
    screenshot(page, "workspace-switcher")
    assert serious_violations(page) == []

    page.goto("/chat")
    expect(page.locator("#ws-workspace")).to_contain_text(f"Paid by {team}")

    page.goto(f"/organisations/{org_id}")
    expect(page.locator("#space-empty")).to_be_visible()
    page.get_by_label("Bring one of your notes in").select_option(label=f"Plan {tag}")
    page.get_by_role("button", name="Move into the space").click()
    expect(page.locator(".flash")).to_contain_text("Moved into the space")
    expect(page.locator("#space-items")).to_contain_text(f"Plan {tag}")
    assert serious_violations(page) == []
    # ... and takes it out again: it is back in the list of their notes to bring in.
    page.get_by_role("button", name=f"Take out Plan {tag}").click()
    expect(page.locator(".flash")).to_contain_text("Moved out of the space")
    expect(page.locator("#space-empty")).to_be_visible()
    expect(page.get_by_label("Bring one of your notes in")).to_contain_text(f"Plan {tag}")

    page.get_by_label("Working in").select_option("personal")
    page.locator("#workspace-switcher").get_by_role("button", name="Switch").click()
    expect(page.locator(".flash")).to_contain_text("personal space")
    expect(page.get_by_label("Working in")).to_have_value("personal")

    lonely = browsing.new_page(storage_state=loner.storage_state)
    lonely.goto("/files")
    expect(lonely.locator(".workspace-slot")).to_have_count(1)  # empty: nothing to switch
    expect(lonely.locator("#workspace-switcher")).to_have_count(0)
