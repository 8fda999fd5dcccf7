"""The admin plugins console: switch plugins on and off, edit their settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_for_js


def plugin_row(page: Any, name: str) -> Any:
    return page.locator(f"#plugin-{name}")


@pytest.fixture
def demo_enabled_afterwards(browser: Any, server: str, admin: Any) -> Iterator[None]:
    """Whatever the test does, the demo plugin is enabled again for the tests after it."""
    yield
    context = browser.new_context(base_url=server, storage_state=admin.storage_state)
    try:
        page = context.new_page()
        page.goto("/admin/plugins")
        token = page.locator('meta[name="csrf-token"]').get_attribute("content")
        response = context.request.patch(
            "/api/admin/plugins/demo", data={"enabled": True}, headers={"X-CSRF-Token": token}
        )
        assert response.ok, response.text()
    finally:
        context.close()


def test_the_console_lists_the_built_in_plugins(admin_page: Any, screenshot: Any) -> None:
    page = admin_page
    page.goto("/admin/plugins")
    expect(page.get_by_role("heading", name="Plugins", level=1)).to_be_visible()
    demo, markdown = plugin_row(page, "demo"), plugin_row(page, "markdown")
    expect(demo.get_by_role("cell").nth(0)).to_have_text("provider")
    expect(demo).to_contain_text("enabled")
    expect(demo.get_by_role("button", name="Disable demo")).to_be_visible()
    expect(markdown.get_by_role("cell").nth(0)).to_have_text("exporter")
    expect(markdown).to_contain_text("enabled")
    expect(markdown.get_by_role("button", name="Disable markdown")).to_be_visible()
    screenshot(page, "admin-plugins")


def test_disabling_a_provider_swaps_its_row_and_removes_its_models(
    admin_page: Any, demo_enabled_afterwards: None, screenshot: Any
) -> None:
    page = admin_page
    page.goto("/")
    expect(page.get_by_role("rowheader", name="Echo Demo")).to_be_visible()

    page.goto("/admin/plugins")
    page.evaluate("window.notReloaded = true")
    demo = plugin_row(page, "demo")
    demo.get_by_role("button", name="Disable demo").click()

    expect(demo.locator(".badge")).to_have_text("disabled")
    expect(demo.get_by_role("button", name="Enable demo")).to_be_visible()
    assert page.evaluate("window.notReloaded === true"), "htmx should swap the row in place"
    expect(plugin_row(page, "markdown").locator(".badge")).to_have_text("enabled")
    screenshot(page, "admin-plugins-demo-disabled")

    listed = {p["name"]: p for p in page.request.get("/api/admin/plugins").json()}
    assert listed["demo"]["enabled"] is False
    assert listed["markdown"]["enabled"] is True

    page.goto("/")
    expect(page.get_by_role("heading", name="Models available to you")).to_be_visible()
    expect(page.get_by_role("rowheader", name="Echo Demo")).to_have_count(0)
    screenshot(page, "home-no-providers")

    page.goto("/admin/plugins")
    expect(demo.locator(".badge")).to_have_text("disabled")  # the state was stored
    page.evaluate("window.notReloaded = true")
    demo.get_by_role("button", name="Enable demo").click()
    expect(demo.locator(".badge")).to_have_text("enabled")
    assert page.evaluate("window.notReloaded === true")
    assert page.request.get("/api/admin/plugins/demo").json()["enabled"] is True

    page.goto("/")
    expect(page.get_by_role("rowheader", name="Echo Demo")).to_be_visible()


HOLD_PAGE_READS = """() => {
  // Reads of this page's own address (live.js's refresh) answer only once released.
  const real = window.fetch.bind(window);
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  window.releaseReads = () => release();
  window.heldReads = 0;
  window.fetch = (url, options) => {
    if (String(url) !== location.href) return real(url, options);
    window.heldReads += 1;
    return real(url, options).then((response) => released.then(() => response));
  };
}"""


def test_a_live_refresh_read_before_a_click_does_not_undo_it(
    admin_page: Any, demo_enabled_afterwards: None
) -> None:
    """The console's table is read again on plugin.changed; a copy read before the admin's own
    click lands after the click's row: it must not put the old state back."""
    page = admin_page
    page.goto("/admin/plugins")
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    page.evaluate(HOLD_PAGE_READS)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    # Another tab changes a plugin: this tab reads the table again (held: the demo is enabled).
    markdown = page.request.patch(
        "/api/admin/plugins/markdown", data={"enabled": True}, headers={"X-CSRF-Token": token}
    )
    assert markdown.ok, markdown.text()
    wait_for_js(page, "window.heldReads > 0")
    plugin_row(page, "demo").get_by_role("button", name="Disable demo").click()
    expect(plugin_row(page, "demo").locator(".badge")).to_have_text("disabled")

    page.evaluate("window.releaseReads()")
    page.wait_for_timeout(500)
    expect(plugin_row(page, "demo").locator(".badge")).to_have_text("disabled")
    expect(plugin_row(page, "demo").get_by_role("button", name="Enable demo")).to_be_visible()


def test_plugin_settings_are_validated_and_saved(
    admin_page: Any, page_problems: Any, screenshot: Any
) -> None:
    page_problems.allow(r"status of 422")  # the invalid form answers 422, as it should
    page = admin_page
    page.goto("/admin/plugins")
    page.get_by_role("link", name="demo", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/plugins/demo$"))
    expect(page.get_by_role("heading", name="demo", level=1)).to_be_visible()
    delay = page.locator('input[name="delay_ms"]')
    expect(delay).to_be_visible()
    screenshot(page, "admin-plugin-demo")

    delay.fill("-5")
    page.get_by_role("button", name="Save settings").click()
    delay = page.locator('input[name="delay_ms"]')
    expect(delay).to_have_attribute("aria-invalid", "true")
    expect(delay).to_have_value("-5")  # what was typed, shown next to its error
    error = page.locator("#setting-delay_ms-error")
    expect(error).not_to_be_empty()
    expect(page.get_by_role("alert")).to_be_visible()
    screenshot(page, "admin-plugin-demo-error")

    delay.fill("0")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(page).to_have_url(re.compile(r"/admin/plugins/demo$"))
    expect(page.locator('input[name="delay_ms"]')).to_have_value("0")
    expect(page.locator('input[name="delay_ms"]')).not_to_have_attribute("aria-invalid", "true")
    settings = page.request.get("/api/admin/plugins/demo").json()["settings"]
    assert {f["name"]: f["value"] for f in settings}["delay_ms"] == 0


def test_members_cannot_reach_the_console(
    browsing: Any, admin: Any, page_problems: Any, sign_up: Any, screenshot: Any
) -> None:
    page_problems.allow(r"status of 403")  # the refusal itself
    page = browsing.new_page()
    sign_up(page, "Max Member", "max@example.com")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Max Member")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Account")).to_be_visible()
    expect(nav.get_by_role("link", name="Plugins")).to_have_count(0)

    response = page.goto("/admin/plugins")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_role("link", name="Back to the start page")).to_be_visible()
    expect(page.locator("#plugins")).to_have_count(0)
    screenshot(page, "forbidden")
    assert page.request.get("/api/admin/plugins").status == 403
