"""Buying credits with Razorpay in the browser (issue #14: "the same flow works with Razorpay"):
pick a plan on /pricing, pay in Razorpay's Checkout (the fake's checkout.js opens its payment
form in a frame over our page, as Razorpay's does), and come back to the return page, which
shows the credits once the server has checked the payment signature and fetched the payment from
Razorpay; the signed webhooks that follow change nothing."""

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
from tests.fakes.razorpay_server import FakeRazorpay


@dataclass
class Shop:
    url: str
    razorpay: FakeRazorpay
    buyer_state: dict[str, Any]


@pytest.fixture
def shop(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """A fresh app whose payment backend is the fake Razorpay (Stripe switched off), with one
    plan on sale."""
    fake = FakeRazorpay(webhook_delay=1.0)
    with ServedInThread(fake) as razorpay:
        monkeypatch.setenv("MULTINOTES_PLUGINS__RAZORPAY__KEY_ID", fake.key_id)
        monkeypatch.setenv("MULTINOTES_PLUGINS__RAZORPAY__KEY_SECRET", fake.key_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__RAZORPAY__WEBHOOK_SECRET", fake.webhook_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__RAZORPAY__API_BASE", razorpay.url)
        monkeypatch.setenv(
            "MULTINOTES_PLUGINS__RAZORPAY__CHECKOUT_SCRIPT", f"{razorpay.url}/v1/checkout.js"
        )
        monkeypatch.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(tmp_path / "data") as url:
            fake.webhook_url = f"{url}/api/billing/razorpay/webhook"
            context = browser.new_context(base_url=url)
            try:
                account = {"name": "Ravi Buyer", "email": "ravi@example.com", "password": PASSWORD}
                assert context.request.post("/api/auth/register", data=account).status == 201
                login = context.request.post(
                    "/api/auth/login", data={"email": account["email"], "password": PASSWORD}
                )
                csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
                off = context.request.patch(
                    "/api/admin/plugins/stripe", headers=csrf, data={"enabled": False}
                )
                assert off.status == 200, off.text()
                plan = context.request.post(
                    "/api/admin/plans",
                    headers=csrf,
                    data={
                        "name": "Starter",
                        "kind": "credits",
                        "credits": 500_000,
                        "price": 49_900,
                        "currency": "INR",
                        "duration_days": 30,
                    },
                )
                assert plan.status == 201, plan.text()
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


def test_buy_a_plan_in_razorpays_checkout_and_get_the_credits_once(
    shop_browsing: Browsing, shop: Shop, screenshot: Any
) -> None:
    page = shop_browsing.new_page(storage_state=shop.buyer_state)
    page.goto("/pricing")
    card = page.get_by_role("article", name="Starter")
    expect(card).to_contain_text("499.00 INR")
    card.get_by_role("button", name="Buy Starter").click()

    expect(page).to_have_url(re.compile(r"/billing/razorpay/checkout\?ref=order_"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay for Starter")
    expect(page.locator("#razorpay-total")).to_contain_text("499.00 INR")
    screenshot(page, "razorpay-checkout")

    # Closing Razorpay's form leaves the order to pay later.
    page.get_by_role("button", name="Pay 499.00 INR").click()
    frame = page.frame_locator("iframe.razorpay-checkout-frame")
    expect(frame.locator("#amount")).to_have_text("499.00 INR")
    frame.get_by_role("button", name="Close").click()
    expect(page.locator("#razorpay-status")).to_have_text("Payment cancelled. You can try again.")

    page.get_by_role("button", name="Pay 499.00 INR").click()
    frame = page.frame_locator("iframe.razorpay-checkout-frame")
    screenshot(page, "razorpay-checkout-form")
    frame.get_by_role("button", name="Pay now").click()

    expect(page).to_have_url(re.compile(r"/billing/return\?order="))
    status = page.locator("#payment-status")
    expect(status).to_contain_text("Paid.", timeout=15_000)
    expect(status).to_contain_text("500,000 credits were added")
    expect(page.locator("#available-credits")).to_have_text("500,000")
    screenshot(page, "razorpay-paid")

    # Razorpay's webhooks about the same payment arrive afterwards and change nothing.
    page.wait_for_timeout(2_500)
    assert [event["event"] for event, _ in shop.razorpay.sent] == ["payment.captured", "order.paid"]
    assert [code for _, code in shop.razorpay.sent] == [200, 200]
    page.goto("/billing")
    expect(page.locator("#orders")).to_contain_text("Starter")
    expect(page.locator("#orders")).to_contain_text("499.00 INR")
    expect(page.locator("#available-credits")).to_have_text("500,000")


def test_on_a_phone_the_checkout_fits_and_without_javascript_it_says_what_it_needs(
    shop_browsing: Browsing, shop: Shop, screenshot: Any
) -> None:
    page = shop_browsing.new_page(phone=True, storage_state=shop.buyer_state)
    page.goto("/pricing")
    page.get_by_role("article", name="Starter").get_by_role("button", name="Buy Starter").click()
    expect(page).to_have_url(re.compile(r"/billing/razorpay/checkout\?ref=order_"))
    checkout_url = page.url
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, width
    pay = page.get_by_role("button", name="Pay 499.00 INR")
    box = pay.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    screenshot(page, "razorpay-checkout-phone")
    pay.click()
    page.frame_locator("iframe.razorpay-checkout-frame").get_by_role(
        "button", name="Pay now"
    ).click()
    expect(page.locator("#payment-status")).to_contain_text("Paid.", timeout=15_000)

    paid = shop_browsing.new_page(storage_state=shop.buyer_state, javascript=False)
    paid.goto(checkout_url)  # paid by now: on to its return page, which needs no script
    expect(paid).to_have_url(re.compile(r"/billing/return\?order="))
    expect(paid.locator("#payment-status")).to_contain_text("Paid.")

    # Without JavaScript the Buy form still opens an order, and the page says what it needs.
    no_script = shop_browsing.new_page(storage_state=shop.buyer_state, javascript=False)
    no_script.goto("/pricing")
    no_script.get_by_role("article", name="Starter").get_by_role(
        "button", name="Buy Starter"
    ).click()
    # /billing/pay's meta refresh needs no script either.
    expect(no_script).to_have_url(re.compile(r"/billing/razorpay/checkout\?ref=order_"))
    expect(no_script.get_by_text("Paying with Razorpay needs JavaScript.")).to_be_visible()
    expect(no_script.get_by_role("button", name="Pay 499.00 INR")).to_be_hidden()
