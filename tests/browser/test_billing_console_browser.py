"""The operator's billing console in the browser (issue #14, item 13): a plan made in the console
is sold on /pricing, a coupon made there is taken by the pricing page's live quote, and a paid
order is refunded from its page after the confirmation dialog. Payments go through the fake
Stripe's hosted page and its signed webhook."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    Account,
    Browsing,
    PageProblems,
    api_account,
    confirm,
    running_server,
)
from tests.browser.test_accessibility import serious_violations
from tests.fakes.in_thread import ServedInThread
from tests.fakes.stripe_server import FakeStripe


@dataclass
class Console:
    url: str
    stripe: FakeStripe
    admin: Account
    buyer: Account


@pytest.fixture
def console(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """A fresh app whose Stripe is the fake: an administrator (the first account), a buyer,
    and nothing on sale yet."""
    fake = FakeStripe(webhook_delay=0.5)
    with ServedInThread(fake) as stripe:
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__WEBHOOK_SECRET", fake.webhook_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__API_BASE", stripe.url)
        monkeypatch.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(tmp_path / "data") as url:
            fake.webhook_url = f"{url}/api/billing/stripe/webhook"
            admin = api_account(browser, url, "Olga Operator", "olga@example.com")
            buyer = api_account(browser, url, "Bo Buyer", "bo@example.com")
            yield Console(url, fake, admin, buyer)


@pytest.fixture
def console_browsing(
    browser: Any, console: Console, page_problems: PageProblems
) -> Iterator[Browsing]:
    session = Browsing(browser, console.url, page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


def no_horizontal_scroll(page: Any) -> None:
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"] + 1, f"the page scrolls sideways: {widths}"


def create_plan(page: Any, name: str, price: str, credits: str = "500000") -> None:
    page.goto("/admin/billing/plans")
    form = page.locator("#plan-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Credits (credits plans)").fill(credits)
    form.get_by_label("Price").fill(price)
    form.get_by_label("Currency").fill("USD")
    form.get_by_label("Valid for (days)").fill("30")
    form.get_by_role("button", name="Create plan").click()
    expect(page.locator(".flash")).to_contain_text(f"Plan {name} created.")


def test_a_plan_made_in_the_console_is_sold_on_pricing(
    console_browsing: Browsing, console: Console, screenshot: Any, page_problems: PageProblems
) -> None:
    page_problems.allow(r"status of 422 .*/admin/billing/plans")  # the refused form, below
    admin = console_browsing.new_page(storage_state=console.admin.storage_state)
    admin.goto("/admin/plugins")
    admin.get_by_role("navigation", name="Admin console").get_by_role(
        "link", name="Billing"
    ).click()
    expect(admin.get_by_role("heading", name="Revenue", level=1)).to_be_visible()
    admin.get_by_role("navigation", name="Billing").get_by_role("link", name="Plans").click()
    expect(admin.locator("#no-plans")).to_be_visible()

    # A mistake first: the form says which field, keeps what was typed, and saves nothing.
    form = admin.locator("#plan-form")
    form.get_by_label("Name").fill("Pro pack")
    form.get_by_label("Credits (credits plans)").fill("2000000")
    form.get_by_label("Price").fill("twelve")
    form.get_by_label("Currency").fill("USD")
    form.get_by_label("Valid for (days)").fill("30")
    form.get_by_role("button", name="Create plan").click()
    expect(admin.locator("#billing-error")).to_contain_text("Nothing was saved")
    price = admin.locator("#plan-form").get_by_label("Price")
    expect(price).to_have_attribute("aria-invalid", "true")
    expect(admin.locator("#f-price-error")).to_have_text("Enter an amount such as 10.00.")
    expect(admin.locator("#plan-form").get_by_label("Name")).to_have_value("Pro pack")
    screenshot(admin, "console-plan-error")

    price.fill("12.00")
    admin.locator("#plan-form").get_by_role("button", name="Create plan").click()
    expect(admin.locator(".flash")).to_contain_text("Plan Pro pack created.")
    row = admin.locator("#plans tr", has_text="Pro pack")
    expect(row).to_contain_text("12.00 USD")
    expect(row).to_contain_text("on sale")
    admin.reload()  # the flash was one-time: a reload repeats nothing
    expect(admin.locator(".flash")).to_have_count(0)
    expect(admin.locator("#plans tbody tr")).to_have_count(1)

    buyer = console_browsing.new_page(storage_state=console.buyer.storage_state)
    buyer.goto("/pricing")
    card = buyer.get_by_role("article", name="Pro pack")
    expect(card).to_contain_text("12.00 USD")
    expect(card).to_contain_text("2,000,000 credits, valid 30 days")

    # Edited and archived from the console: /pricing follows.
    row.get_by_role("link", name="Edit Pro pack").click()
    admin.get_by_label("Price (USD)").fill("15")
    admin.get_by_role("button", name="Save plan").click()
    expect(admin.locator(".flash")).to_contain_text("Plan Pro pack saved.")
    buyer.reload()
    expect(buyer.get_by_role("article", name="Pro pack")).to_contain_text("15.00 USD")
    admin.locator("#plans tr", has_text="Pro pack").get_by_role(
        "button", name="Archive Pro pack"
    ).click()
    assert "Archive Pro pack?" in confirm(admin, "Archive")
    expect(admin.locator("#plans tr", has_text="Pro pack")).to_contain_text("archived")
    buyer.reload()
    expect(buyer.get_by_role("article", name="Pro pack")).to_have_count(0)

    phone = console_browsing.new_page(phone=True, storage_state=console.admin.storage_state)
    phone.goto("/admin/billing/plans")
    expect(phone.get_by_role("heading", name="Plans", level=1)).to_be_visible()
    no_horizontal_scroll(phone)
    screenshot(phone, "console-plans-phone")


def test_a_coupon_made_in_the_console_is_taken_by_the_checkout_quote(
    console_browsing: Browsing, console: Console, screenshot: Any
) -> None:
    admin = console_browsing.new_page(storage_state=console.admin.storage_state)
    create_plan(admin, "Starter", "10.00")
    admin.goto("/admin/billing/coupons")
    form = admin.locator("#coupon-form")
    form.get_by_label("Code").fill("autumn")
    form.get_by_label("Amount off").check()
    form.get_by_label("Discount (percent, or an amount such as 5.00)").fill("2.50")
    form.get_by_label("Bonus credits").fill("10000")
    form.get_by_label("Uses in total").fill("100")
    form.get_by_role("button", name="Create coupon").click()
    expect(admin.locator(".flash")).to_contain_text("Coupon AUTUMN created.")
    row = admin.locator("#coupons tr", has_text="AUTUMN")
    expect(row).to_contain_text("2.50 off")
    expect(row).to_contain_text("0 / 100")
    expect(row).to_contain_text("active")
    screenshot(admin, "console-coupons")

    buyer = console_browsing.new_page(storage_state=console.buyer.storage_state)
    buyer.goto("/pricing")
    card = buyer.get_by_role("article", name="Starter")
    card.get_by_label("Coupon code").fill("autumn")
    card.get_by_role("button", name="Apply").click()
    expect(card.locator(".quote-discount")).to_contain_text("2.50 USD")
    expect(card.locator(".quote-total")).to_have_text("7.50 USD")
    expect(card.locator(".quote-bonus")).to_contain_text("+10,000 credits")

    # Deactivated in the console: the quote refuses it, naming the field.
    row.get_by_role("button", name="Deactivate AUTUMN").click()
    confirm(admin, "Deactivate")
    expect(admin.locator("#coupons tr", has_text="AUTUMN")).to_contain_text("deactivated")
    card.get_by_role("button", name="Apply").click()
    expect(card.locator(".quote-error")).to_have_text("Coupon code: No such coupon.")


def test_an_order_is_refunded_from_its_page_after_a_confirmation(
    console_browsing: Browsing, console: Console, screenshot: Any
) -> None:
    admin = console_browsing.new_page(storage_state=console.admin.storage_state)
    create_plan(admin, "Starter", "10.00")

    buyer = console_browsing.new_page(storage_state=console.buyer.storage_state)
    buyer.goto("/pricing")
    buyer.get_by_role("article", name="Starter").get_by_role("button", name="Buy Starter").click()
    expect(buyer).to_have_url(re.compile(r"/pay/cs_test_"))
    buyer.get_by_role("button", name="Pay").click()
    expect(buyer.locator("#payment-status")).to_contain_text("Paid.", timeout=15_000)

    admin.goto("/admin/billing/orders")
    admin.get_by_label("Status").select_option("paid")
    admin.get_by_role("button", name="Filter").click()
    orders = admin.locator("#orders")
    expect(orders).to_contain_text("bo@example.com")
    orders.get_by_role("link").first.click()
    expect(admin.locator("#order-status")).to_contain_text("paid")
    expect(admin.locator("#order-ledger")).to_contain_text("purchase")
    expect(admin.locator("#order-events")).to_contain_text("checkout.session.completed")

    # Cancelling the dialog refunds nothing.
    admin.get_by_label("Reason").fill("Bought by mistake")
    admin.get_by_role("button", name="Refund", exact=True).click()
    assert "Refund bo@example.com's order through stripe?" in confirm(admin, "Cancel")
    assert console.stripe.refunds == []

    # A part, then the rest.
    admin.get_by_label("Amount (USD)").fill("4.00")
    admin.get_by_role("button", name="Refund", exact=True).click()
    confirm(admin, "Refund")
    expect(admin.locator(".flash")).to_contain_text("Refunded 4.00 USD; 200,000 unspent credits")
    expect(admin.locator("#refunded-so-far")).to_contain_text("4.00 USD of 10.00 USD")
    expect(admin.locator("#order-status")).to_contain_text("paid")
    admin.get_by_label("Reason").fill("Bought by mistake")
    admin.get_by_role("button", name="Refund", exact=True).click()
    confirm(admin, "Refund")
    expect(admin.locator(".flash")).to_contain_text("Refunded 6.00 USD; 300,000 unspent credits")
    expect(admin.locator("#order-status")).to_contain_text("refunded")
    expect(admin.locator("#order-ledger")).to_contain_text("refund")
    expect(admin.locator("#order-refunds tbody tr")).to_have_count(2)
    expect(admin.locator("#refund-state")).to_have_text("This order has been refunded in full.")
    assert [r["amount"] for r in console.stripe.refunds] == [400, 600]
    screenshot(admin, "console-order-refunded")
    admin.reload()  # post-redirect-get: reloading shows the page, it does not refund again
    assert len(console.stripe.refunds) == 2

    order_path = admin.evaluate("location.pathname")
    admin.goto("/admin/billing/revenue")
    expect(admin.locator("#revenue-refunds")).to_have_text("10.00 USD")
    expect(admin.locator("#revenue-30d")).to_have_text("0.00 USD")
    expect(admin.get_by_role("img", name="Revenue per day in USD")).to_be_visible()
    expect(admin.locator("#revenue-table")).to_contain_text("10.00 USD")
    screenshot(admin, "console-revenue")
    phone = console_browsing.new_page(phone=True, storage_state=console.admin.storage_state)
    phone.goto("/admin/billing/revenue")
    no_horizontal_scroll(phone)
    screenshot(phone, "console-revenue-phone")

    # axe finds nothing serious on any console page, with data on them, in either theme.
    found: dict[str, list[str]] = {}
    for scheme in ("light", "dark"):
        admin.emulate_media(color_scheme=scheme)
        for path in (
            "/admin/billing/revenue",
            "/admin/billing/orders",
            order_path,
            "/admin/billing/plans",
            "/admin/billing/coupons",
        ):
            admin.goto(path)
            if problems := serious_violations(admin):
                found[f"{scheme} {path}"] = problems
    assert found == {}, json.dumps(found, indent=1)
