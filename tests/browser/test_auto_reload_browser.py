"""Auto-reload in the browser, on a phone (issue #14 item 9): after a first payment on the fake
Stripe's page saved the card, the buyer switches auto-reload on from /billing; when their credits
then fall under the threshold, the plan is bought off-session and its credits arrive with the
signed webhook, which /billing shows as a second paid order."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Browsing, PageProblems, running_server
from tests.fakes.in_thread import ServedInThread
from tests.fakes.stripe_server import FakeStripe


@pytest.fixture
def shop(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh app whose Stripe is the fake, with one one-time plan on sale; yields
    ``(url, fake, the buyer's logged-in state, their CSRF header)``."""
    fake = FakeStripe(webhook_delay=0.5)
    with ServedInThread(fake) as stripe:
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__WEBHOOK_SECRET", fake.webhook_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__API_BASE", stripe.url)
        monkeypatch.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(tmp_path / "data") as url:
            fake.webhook_url = f"{url}/api/billing/stripe/webhook"
            context = browser.new_context(base_url=url)
            try:
                account = {"name": "Ray Reload", "email": "ray@example.com", "password": PASSWORD}
                assert context.request.post("/api/auth/register", data=account).status == 201
                login = context.request.post(
                    "/api/auth/login", data={"email": account["email"], "password": PASSWORD}
                )
                csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
                plan = context.request.post(
                    "/api/admin/plans",
                    headers=csrf,
                    data={
                        "name": "Refill",
                        "kind": "credits",
                        "credits": 500_000,
                        "price": 1000,
                        "currency": "USD",
                    },
                )
                assert plan.status == 201, plan.text()
                state = context.storage_state()
            finally:
                context.close()
            yield url, fake, state, csrf


@pytest.fixture
def shop_browsing(browser: Any, shop: Any, page_problems: PageProblems) -> Iterator[Browsing]:
    session = Browsing(browser, shop[0], page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


def test_switch_auto_reload_on_from_billing_on_a_phone_and_get_reloaded(
    shop_browsing: Browsing, shop: Any, screenshot: Any
) -> None:
    _, fake, state, csrf = shop
    page = shop_browsing.new_page(storage_state=state, phone=True)

    page.goto("/billing")
    section = page.locator("#auto-reload")
    expect(section).to_contain_text("Buy a one-time plan once")  # no saved card yet

    page.goto("/pricing")
    page.get_by_role("article", name="Refill").get_by_role("button", name="Buy Refill").click()
    expect(page).to_have_url(re.compile(r"/pay/cs_test_"))
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("#payment-status")).to_contain_text("Paid.", timeout=15_000)

    page.goto("/billing")
    section = page.locator("#auto-reload")
    switch = section.get_by_role("switch", name="Reload automatically")
    expect(switch).not_to_be_checked()
    switch.check()
    section.get_by_label("When available credits fall below").fill("100000")
    expect(section.get_by_label("Buy")).to_have_value(re.compile(".+"))
    section.get_by_role("button", name="Save auto-reload").click()
    expect(page.get_by_text("Auto-reload is on.")).to_be_visible()
    expect(page.locator("#auto-reload").get_by_role("switch")).to_be_checked()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the billing page scrolls sideways on a phone ({width}px)"
    screenshot(page, "billing-auto-reload-phone")

    # The credits are spent (an admin deduction stands in for answers): under the threshold.
    me = page.context.request.get("/api/me").json()
    available = page.context.request.get("/api/wallet").json()["available"]
    spent = page.context.request.post(
        f"/api/admin/users/{me['id']}/credits",
        headers=csrf,
        data={"amount": -(available - 500), "reason": "spent on answers"},
    )
    assert spent.status == 201, spent.text()

    def reloaded() -> bool:
        orders = page.context.request.get("/api/billing/orders").json()
        return [o["status"] for o in orders] == ["paid", "paid"]

    # Three hops in the background (the wallet's event, the off-session payment at the fake
    # Stripe, its signed webhook 0.5 s later): up to 30 s on a loaded CI machine.
    deadline = time.monotonic() + 30
    while not reloaded() and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert reloaded(), page.context.request.get("/api/billing/orders").json()
    [intent] = fake.payment_intents.values()
    assert intent["off_session"] is True and intent["status"] == "succeeded"

    page.goto("/billing")
    expect(page.locator("#available-credits")).to_have_text("500,500")
    expect(page.locator("#orders tbody tr")).to_have_count(2)
