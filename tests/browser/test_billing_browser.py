"""Buying credits in the browser (issue #14 'Done when'): pick a plan on /pricing, apply a coupon
and see the live quote, pay on the fake Stripe's page, come back to "confirming…", and see the
credits once the signed webhook lands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Browsing, PageProblems, running_server
from tests.fakes.in_thread import ServedInThread
from tests.fakes.stripe_server import FakeStripe


@dataclass
class Shop:
    url: str
    stripe: FakeStripe
    buyer_state: dict[str, Any]


@pytest.fixture
def shop(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """A fresh app whose Stripe is the fake, with one plan and one coupon on sale."""
    fake = FakeStripe(webhook_delay=1.5)
    with ServedInThread(fake) as stripe:
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__WEBHOOK_SECRET", fake.webhook_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__API_BASE", stripe.url)
        monkeypatch.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(tmp_path / "data") as url:
            fake.webhook_url = f"{url}/api/billing/stripe/webhook"
            context = browser.new_context(base_url=url)
            try:
                account = {"name": "Bea Buyer", "email": "bea@example.com", "password": PASSWORD}
                assert context.request.post("/api/auth/register", data=account).status == 201
                login = context.request.post(
                    "/api/auth/login", data={"email": account["email"], "password": PASSWORD}
                )
                csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
                plan = context.request.post(
                    "/api/admin/plans",
                    headers=csrf,
                    data={
                        "name": "Starter",
                        "kind": "credits",
                        "credits": 500_000,
                        "price": 1000,
                        "currency": "USD",
                        "duration_days": 30,
                    },
                )
                assert plan.status == 201, plan.text()
                coupon = context.request.post(
                    "/api/admin/coupons",
                    headers=csrf,
                    data={"code": "LAUNCH", "percent_off": 30, "bonus_credits": 25_000},
                )
                assert coupon.status == 201, coupon.text()
                state = context.storage_state()
            finally:
                context.close()
            yield Shop(url, fake, state)


@pytest.fixture
def shop_browsing(browser: Any, shop: Shop, page_problems: PageProblems) -> Iterator[Browsing]:
    session = Browsing(browser, shop.url, page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


def test_buy_a_plan_with_a_coupon_and_get_the_credits_when_the_webhook_lands(
    shop_browsing: Browsing, shop: Shop, screenshot: Any
) -> None:
    page = shop_browsing.new_page(storage_state=shop.buyer_state)
    page.goto("/pricing")
    card = page.get_by_role("article", name="Starter")
    expect(card).to_contain_text("10.00 USD")
    expect(card).to_contain_text("500,000 credits, valid 30 days")

    card.get_by_label("Coupon code").fill("nope")
    card.get_by_role("button", name="Apply").click()
    expect(card.locator(".quote")).to_contain_text("No such coupon.")
    card.get_by_label("Coupon code").fill("launch")
    card.get_by_role("button", name="Apply").click()
    expect(card.locator(".quote-total")).to_have_text("7.00 USD")
    expect(card.locator(".quote-bonus")).to_contain_text("+25,000 credits")
    screenshot(page, "pricing-with-coupon")

    card.get_by_role("button", name="Buy Starter").click()
    expect(page).to_have_url(re.compile(r"/pay/cs_test_"))
    expect(page.locator("#amount")).to_have_text("7.00 USD")
    page.get_by_role("button", name="Pay").click()

    expect(page).to_have_url(re.compile(r"/billing/return\?order="))
    status = page.locator("#payment-status")
    expect(status).to_contain_text("Confirming your payment")
    screenshot(page, "billing-confirming")
    expect(status).to_contain_text("Paid.", timeout=15_000)
    expect(status).to_contain_text("525,000 credits were added")
    expect(page.locator("#available-credits")).to_have_text("525,000")
    screenshot(page, "billing-paid")
    assert [code for _, code in shop.stripe.sent] == [200]

    page.goto("/billing")
    expect(page.locator("#orders")).to_contain_text("Starter")
    expect(page.locator("#orders")).to_contain_text("7.00 USD")
    expect(page.locator("#orders")).to_contain_text("paid")
    expect(page.locator("#current-plan")).to_contain_text("Starter")
