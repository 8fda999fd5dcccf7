"""Tools on the home screen, the token usage page, and the admin console for models, tools and
credits — in a real browser, on a desktop and a phone."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import confirm

PASSWORD = "correct horse battery staple"
TOOL_IDS = [
    "text",
    "image",
    "code",
    "prompt_writer",
    "text_to_speech",
    "speech_to_text",
    "image_to_text",
    "video_to_text",
]


def no_horizontal_scroll(page: Any) -> None:
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"] + 1, f"the page scrolls sideways: {widths}"


def csrf(page: Any) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return str(token)


@pytest.fixture
def user(browser: Any, server: str) -> dict[str, Any]:
    """A fresh user (not the admin), logged in; returns its email, id and cookie jar."""
    email = f"usage-{secrets.token_hex(4)}@example.com"
    context = browser.new_context(base_url=server)
    try:
        registered = context.request.post(
            "/api/auth/register", data={"name": "Una User", "email": email, "password": PASSWORD}
        )
        assert registered.status == 201, registered.text()
        logged_in = context.request.post(
            "/api/auth/login", data={"email": email, "password": PASSWORD}
        )
        assert logged_in.ok, logged_in.text()
        body = logged_in.json()
        return {
            "email": email,
            "id": body["user"]["id"],
            "csrf": body["csrf_token"],
            "state": context.storage_state(),
        }
    finally:
        context.close()


@pytest.fixture
def tools_restored(browser: Any, server: str, admin: Any) -> Iterator[None]:
    """Whatever a test does to the tools, the next test finds the default order, all shown."""
    yield
    context = browser.new_context(base_url=server, storage_state=admin.storage_state)
    try:
        page = context.new_page()
        page.goto("/admin/tools")
        headers = {"X-CSRF-Token": csrf(page)}
        ordered = context.request.post(
            "/api/admin/tools/order", data={"ids": TOOL_IDS}, headers=headers
        )
        assert ordered.ok, ordered.text()
        for tool in TOOL_IDS:
            shown = context.request.patch(
                f"/api/admin/tools/{tool}", data={"hidden": False}, headers=headers
            )
            assert shown.ok, shown.text()
    finally:
        context.close()


# -- home tiles ---------------------------------------------------------------------------------


def test_home_tiles_open_the_workspace_with_their_tool(
    browsing: Any, admin: Any, screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    page.goto("/")
    tools = page.get_by_role("region", name="Tools")
    tiles = tools.get_by_role("link")
    expect(tiles).to_have_count(8)
    image = tools.get_by_role("link", name=re.compile(r"^Image Create"))
    expect(image).to_have_attribute("href", "/chat?tool=image")
    expect(image).to_contain_text("1 model")  # the demo's Swatch
    expect(tools.get_by_role("link", name=re.compile(r"^Text to speech"))).to_contain_text(
        "No model available yet"
    )
    expect(tools.get_by_role("link", name=re.compile(r"^Prompt writer"))).to_have_attribute(
        "href", "/chat?tool=prompt_writer"
    )
    screenshot(page, "home-tools")

    phone = browsing.new_page(phone=True, storage_state=admin.storage_state)
    phone.goto("/")
    expect(phone.get_by_role("region", name="Tools").get_by_role("link")).to_have_count(8)
    no_horizontal_scroll(phone)
    screenshot(phone, "phone-home-tools")


# -- the usage page -----------------------------------------------------------------------------


def test_the_usage_page_shows_the_chart_the_ledger_and_filters(
    browsing: Any, admin: Any, user: dict[str, Any], screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=user["state"])
    headers = {"X-CSRF-Token": user["csrf"]}
    conversation = page.request.post("/api/conversations", data={}, headers=headers).json()["id"]
    for models in (["demo/echo", "demo/reverse"], ["demo/echo"]):
        answer = page.request.post(
            f"/api/conversations/{conversation}/messages",
            data={"content": "Tell me about credit ledgers", "models": models},
            headers=headers,
        )
        assert answer.ok and "event: done" in answer.text()

    # The admin deducts most of the trial on the credits page, which makes the balance low.
    console = browsing.new_page(storage_state=admin.storage_state)
    console.goto(f"/admin/credits?email={user['email']}")
    expect(console.locator("#user-wallet")).to_contain_text("Una User")
    form = console.locator("#credits-form")
    form.get_by_label("Credits").fill("-9500")
    form.get_by_label("Reason").fill("Trial trimmed for the test")
    form.get_by_role("button", name="Apply").click()
    expect(console.locator(".flash")).to_contain_text(
        f"Deducted 9,500 credits from {user['email']}"
    )
    expect(console.locator("#user-ledger")).to_contain_text("Trial trimmed for the test")
    screenshot(console, "admin-credits")
    # Too much: refused with a clear message, nothing changed.
    browsing.problems.allow(r"status of 409 \(Conflict\).*/admin/credits")
    form = console.locator("#credits-form")
    form.get_by_label("Credits").fill("-100000")
    form.get_by_label("Reason").fill("Far too much")
    form.get_by_role("button", name="Apply").click()
    expect(console.locator("#credits-error")).to_contain_text("would take")
    expect(console.locator("#credits-error")).to_contain_text("below zero")

    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Token usage", level=1)).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Your balance is low")
    balance = int(page.locator("#wallet-balance .stat-value").inner_text().replace(",", ""))
    assert 0 < balance < 500
    expect(page.locator("#wallet-reserved .stat-value")).to_have_text("0")

    chart = page.locator(".usage-chart svg")
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() >= 2  # today's bar, stacked by model
    legend = page.locator("#usage-by-model")
    expect(legend.get_by_role("rowheader", name=re.compile("Echo"))).to_be_visible()
    expect(legend.get_by_role("rowheader", name=re.compile("Reverse"))).to_be_visible()
    box = chart.bounding_box()
    assert box and box["width"] > 600 and box["height"] > 150

    ledger = page.locator("#ledger-entries")
    expect(ledger.locator("tbody tr")).to_have_count(5)  # trial, 3 answers, the deduction
    screenshot(page, "usage")

    page.get_by_label("Kind", exact=True).select_option("deduct")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"kind=deduct"))
    expect(ledger.locator("tbody tr")).to_have_count(1)
    expect(ledger).to_contain_text("Trial trimmed for the test")
    page.get_by_role("link", name="Clear filters").click()
    expect(ledger.locator("tbody tr")).to_have_count(5)

    page.get_by_label("From", exact=True).fill("2001-01-01")
    page.get_by_label("To", exact=True).fill("2001-01-31")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#ledger-empty")).to_have_text("No entries match these filters.")

    phone = browsing.new_page(phone=True, storage_state=user["state"])
    phone.goto("/usage")
    expect(phone.locator(".usage-chart svg")).to_be_visible()
    no_horizontal_scroll(phone)
    screenshot(phone, "phone-usage")


def test_the_ledger_pages_back_with_older_entries(
    browsing: Any, admin: Any, user: dict[str, Any]
) -> None:
    console = browsing.new_page(storage_state=admin.storage_state)
    console.goto("/admin/credits")
    headers = {"X-CSRF-Token": csrf(console)}
    for n in range(27):
        granted = console.request.post(
            f"/api/admin/users/{user['id']}/credits",
            data={"amount": 1, "reason": f"drip {n}"},
            headers=headers,
        )
        assert granted.status == 201, granted.text()

    page = browsing.new_page(storage_state=user["state"])
    page.goto("/usage")
    rows = page.locator("#ledger-entries tbody tr")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("drip 26")
    page.get_by_role("link", name="Older entries").click()
    expect(rows).to_have_count(3)  # drip 1, drip 0 and the trial
    expect(rows.last).to_contain_text("Free trial credits")
    expect(page.get_by_role("link", name="Older entries")).to_have_count(0)
    page.get_by_role("link", name="Newest").click()
    expect(rows).to_have_count(25)


# -- the models console -------------------------------------------------------------------------


def test_the_models_console_switches_prices_and_tests_connections(
    browsing: Any, admin: Any, screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    page.goto("/admin/plugins")
    page.get_by_role("navigation", name="Admin console").get_by_role(
        "link", name="Models & pricing"
    ).click()
    expect(page.get_by_role("heading", name="Models & pricing", level=1)).to_be_visible()
    row = page.locator("#model-demo-echo")
    expect(row).to_contain_text("Demo")
    expect(row.locator(".badge.ok")).to_have_text("ok")

    page.evaluate("window.notReloaded = true")
    switch = row.get_by_role("switch", name="Echo enabled")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(row.get_by_role("switch", name="Echo enabled")).to_have_attribute(
        "aria-checked", "false"
    )
    assert page.evaluate("window.notReloaded === true"), "htmx should swap the row in place"
    listed = {m["id"] for m in page.request.get("/api/models").json()}
    assert "demo/echo" not in listed and "demo/reverse" in listed
    row.get_by_role("switch", name="Echo enabled").click()
    expect(row.get_by_role("switch", name="Echo enabled")).to_have_attribute("aria-checked", "true")
    assert "demo/echo" in {m["id"] for m in page.request.get("/api/models").json()}

    row.get_by_role("button", name="Test connection of Echo").click()
    result = row.locator("output.test-result")
    expect(result).to_contain_text("ok")
    expect(result).to_contain_text(re.compile(r"\d+(\.\d+)? ms"))
    expect(result).to_contain_text("model(s) available")
    screenshot(page, "admin-models")

    row.get_by_role("link", name="Prices of Echo").click()
    expect(page.get_by_role("heading", name=re.compile("^Echo"), level=1)).to_be_visible()
    prices = page.locator("#price-form")
    prices.get_by_label("Output, per million tokens").fill("300")
    prices.get_by_label("Markup for this model (%)").fill("10")
    prices.get_by_role("button", name="Save prices").click()
    expect(page.locator(".flash")).to_have_text("Prices of Echo saved.")
    expect(prices).to_contain_text("charged now: 330")
    echo = next(m for m in page.request.get("/api/models").json() if m["id"] == "demo/echo")
    assert echo["pricing"]["output_per_million"] == pytest.approx(330)

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("output.test-result")).to_contain_text("ok")
    screenshot(page, "admin-model-prices")

    prices.get_by_role("button", name="Reset to provider prices").click()
    question = confirm(page, "Reset to provider prices")
    expect(page.locator(".flash")).to_have_text("Echo uses the provider's prices again.")
    assert "Echo" in question
    echo = next(m for m in page.request.get("/api/models").json() if m["id"] == "demo/echo")
    assert echo["pricing"]["output_per_million"] == pytest.approx(200)

    page.goto("/admin/models#pricing")
    pricing = page.locator("#pricing")
    expect(pricing.get_by_label("Trial credits for new users")).to_have_value("10000")
    pricing.get_by_label("Low-balance warning below").fill("1000")
    pricing.get_by_role("button", name="Save pricing").click()
    expect(page.locator(".flash")).to_have_text("Pricing settings saved.")

    phone = browsing.new_page(phone=True, storage_state=admin.storage_state)
    phone.goto("/admin/models")
    expect(phone.locator("#model-demo-echo")).to_be_visible()
    no_horizontal_scroll(phone)
    screenshot(phone, "phone-admin-models")


# -- the tools console --------------------------------------------------------------------------


def test_admins_hide_and_reorder_tools(
    browsing: Any, admin: Any, tools_restored: None, screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    page.goto("/admin/tools")
    expect(page.get_by_role("heading", name="Tools", level=1)).to_be_visible()
    items = page.locator("#tool-list > li")
    expect(items).to_have_count(8)
    expect(items.nth(0)).to_have_attribute("data-tool", "text")

    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Move Image up").click()
    expect(page.locator("#tool-list > li").nth(0)).to_have_attribute("data-tool", "image")
    assert page.evaluate("window.notReloaded === true"), "htmx should swap the list in place"
    expect(page.get_by_role("button", name="Move Image up")).to_be_disabled()

    page.get_by_role("button", name="Hide Video to text").click()
    expect(page.locator(".flash")).to_have_text("Video to text is now hidden from the home screen.")
    expect(page.locator("#tool-video_to_text .badge")).to_have_text("hidden")

    tool = page.locator("#tool-prompt_writer")
    tool.get_by_text("Edit Prompt writer").click()
    expect(tool.get_by_label("System prompt")).to_have_value(re.compile("prompt engineer"))
    tool.get_by_label("Name", exact=True).fill("Prompt coach")
    tool.get_by_role("button", name="Save Prompt writer").click()
    expect(page.locator(".flash")).to_have_text("Prompt coach saved.")
    screenshot(page, "admin-tools")

    home = browsing.new_page(storage_state=admin.storage_state)
    home.goto("/")
    tiles = home.get_by_role("region", name="Tools").get_by_role("link")
    expect(tiles).to_have_count(7)
    expect(tiles.first).to_have_attribute("href", "/chat?tool=image")
    expect(home.get_by_role("link", name=re.compile("^Video to text"))).to_have_count(0)
    expect(home.get_by_role("link", name=re.compile("^Prompt coach"))).to_be_visible()

    # Back as it was (the fixture also restores order and visibility).
    page.get_by_role("button", name="Show Video to text").click()
    expect(page.locator("#tool-video_to_text .badge")).to_have_count(0)
    tool = page.locator("#tool-prompt_writer")
    tool.get_by_text("Edit Prompt coach").click()
    tool.get_by_label("Name", exact=True).fill("Prompt writer")
    tool.get_by_role("button", name="Save Prompt coach").click()
    expect(page.locator(".flash")).to_have_text("Prompt writer saved.")

    phone = browsing.new_page(phone=True, storage_state=admin.storage_state)
    phone.goto("/admin/tools")
    no_horizontal_scroll(phone)
    screenshot(phone, "phone-admin-tools")
