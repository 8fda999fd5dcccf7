"""Organisation plans and spaces in a real browser (issue #19 items 3 and 4): the owner buys
seats from the organisation's page through the same Stripe checkout as any plan (the fake
Stripe's payment page, its signed webhook), comes back to "Paid.", and the page shows the seats
and the credits in the shared wallet; then brings one of their prompt templates into the
organisation's space from the same page. axe finds nothing serious."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Browsing
from tests.browser.test_accessibility import serious_violations
from tests.browser.test_billing_browser import Shop, shop, shop_browsing

__all__ = ["shop", "shop_browsing"]  # the fixtures: a fresh app with the fake Stripe


def api(browser: Any, shop: Shop, method: str, path: str, data: dict[str, Any]) -> Any:
    context = browser.new_context(base_url=shop.url)
    try:
        login = context.request.post(
            "/api/auth/login", data={"email": "bea@example.com", "password": PASSWORD}
        )
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        answer = context.request.fetch(path, method=method, headers=csrf, data=data)
        assert answer.ok, answer.text()
        return answer.json()
    finally:
        context.close()


def test_the_owner_buys_seats_and_brings_a_template_into_the_space(
    browser: Any, shop_browsing: Browsing, shop: Shop, screenshot: Any
) -> None:
    api(
        browser,
        shop,
        "POST",
        "/api/admin/plans",
        {"name": "Team", "kind": "organisation", "credits": 1000, "price": 500, "currency": "USD"},
    )
    org = api(browser, shop, "POST", "/api/orgs", {"name": "Bea's team"})
    api(
        browser,
        shop,
        "POST",
        "/api/templates",
        {"title": "Weekly report", "body": "Summarise the week."},
    )

    page = shop_browsing.new_page(storage_state=shop.buyer_state)
    page.goto(f"/organisations/{org['id']}")
    expect(page.locator("#organisation-seats")).to_contain_text("No plan bought")
    plans = page.get_by_label("Organisation plan")
    expect(plans).to_contain_text("Team: 5.00 USD and 1000 credits per seat")
    plans.select_option(index=0)
    page.get_by_role("spinbutton", name="Seats").fill("3")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Buy seats").click()
    expect(page).to_have_url(re.compile(r"/pay/cs_test_"))
    expect(page.locator("#amount")).to_have_text("15.00 USD")
    page.get_by_role("button", name="Pay").click()
    status = page.locator("#payment-status")
    expect(status).to_contain_text("Paid.", timeout=15_000)
    expect(status).to_contain_text("3,000 credits were added to the organisation")
    status.get_by_role("link", name="Back to the organisation").click()
    expect(page.locator("#organisation-seats")).to_contain_text("1 of 3 seats taken")
    expect(page.locator("#organisation-wallet")).to_contain_text("3,000")
    screenshot(page, "organisation-seats")

    page.get_by_label("Bring one of your templates in").select_option(label="Weekly report")
    page.get_by_role("button", name="Move the template in").click()
    expect(page.locator(".flash")).to_contain_text("Moved into the space")
    expect(page.locator("#space-work")).to_contain_text("Weekly report")
    assert serious_violations(page) == []
