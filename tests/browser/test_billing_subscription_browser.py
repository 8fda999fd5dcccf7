"""A subscription in the browser (issue #14 'Done when'): a buyer subscribes on /pricing through
the fake Stripe's page; the signed webhook delivered again changes nothing; a renewal invoice
adds the plan's credits; the receipt downloads as a PDF from /billing; the referral link is
copied; "Payment methods and invoices" opens Stripe's customer portal; the subscription is
cancelled at the period's end from /billing after a confirmation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from tests.browser.conftest import (
    Account,
    Browsing,
    PageProblems,
    api_account,
    confirm,
    running_server,
)
from tests.fakes.in_thread import ServedInThread
from tests.fakes.stripe_server import FakeStripe


@dataclass
class Shop:
    url: str
    stripe: FakeStripe
    served: ServedInThread
    admin: Account
    buyer: Account


@pytest.fixture
def shop(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    fake = FakeStripe(webhook_delay=0.5)
    with ServedInThread(fake) as served:
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__WEBHOOK_SECRET", fake.webhook_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__STRIPE__API_BASE", served.url)
        monkeypatch.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(tmp_path / "data") as url:
            fake.webhook_url = f"{url}/api/billing/stripe/webhook"
            admin = api_account(browser, url, "Olga Operator", "olga@example.com")
            buyer = api_account(browser, url, "Sam Subscriber", "sam@example.com")
            yield Shop(url, fake, served, admin, buyer)


@pytest.fixture
def shop_browsing(browser: Any, shop: Shop, page_problems: PageProblems) -> Iterator[Browsing]:
    session = Browsing(browser, shop.url, page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


def test_subscribe_renew_download_the_receipt_open_the_portal_and_cancel(
    shop_browsing: Browsing, shop: Shop, screenshot: Any
) -> None:
    admin = shop_browsing.new_page(storage_state=shop.admin.storage_state)
    admin.goto("/admin/billing/plans")
    form = admin.locator("#plan-form")
    form.get_by_label("Name").fill("Monthly")
    form.get_by_label("Credits (credits plans)").fill("100000")
    form.get_by_label("Price").fill("5.00")
    form.get_by_label("Currency").fill("USD")
    form.get_by_label("Billing").select_option("month")
    form.get_by_role("button", name="Create plan").click()
    expect(admin.locator(".flash")).to_contain_text("Plan Monthly created.")

    page = shop_browsing.new_page(storage_state=shop.buyer.storage_state)
    page.goto("/pricing")
    page.get_by_role("article", name="Monthly").get_by_role("button", name="Buy Monthly").click()
    expect(page).to_have_url(re.compile(r"/pay/cs_test_"))
    session_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Pay").click()
    status = page.locator("#payment-status")
    expect(status).to_contain_text("Paid.", timeout=15_000)
    expect(page.locator("#available-credits")).to_have_text("100,000")

    # Stripe delivers the same signed event again (at least once): nothing more is granted.
    paid_event = next(e for e, _ in shop.stripe.sent if e["type"] == "checkout.session.completed")
    for _ in range(3):
        code, body = shop.served.run(shop.stripe.deliver(paid_event))
        assert (code, body["outcome"]) == (200, "duplicate")
    # A forged one is refused.
    code, _ = shop.served.run(shop.stripe.deliver(paid_event, secret="whsec_forged_elsewhere"))
    assert code == 400

    # The next month's invoice is paid: the plan's credits again, once.
    renewal = shop.stripe.event(
        "invoice.paid", shop.stripe.invoice(session_id, "subscription_cycle")
    )
    for _ in range(2):
        shop.served.run(shop.stripe.deliver(renewal))
    page.goto("/billing")
    expect(page.locator("#available-credits")).to_have_text("200,000")
    orders = page.locator("#orders")
    expect(orders).to_contain_text("Monthly")
    expect(orders).to_contain_text("subscription active")
    screenshot(page, "billing-subscription")

    # The receipt downloads as a PDF.
    with page.expect_download() as downloading:
        orders.get_by_role("link", name="Receipt (PDF)").click()
    download = downloading.value
    assert download.suggested_filename.startswith("receipt-")
    pdf = Path(download.path())
    assert pdf.read_bytes().startswith(b"%PDF")
    text = PdfReader(str(pdf)).pages[0].extract_text()
    assert "Monthly" in text and "5.00 USD" in text

    # The referral link, copied.
    referral = page.locator("#referral")
    if referral.get_by_role("button", name="Get my referral link").count():
        referral.get_by_role("button", name="Get my referral link").click()
    link = page.locator("#referral-url")
    expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/"))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("#referral").get_by_role("button", name="Copy").click()
    expect(page.locator("#referral")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link.input_value()

    # The customer portal: Stripe's page for this customer (stood in for here).
    page.route(
        re.compile(r".*/portal/cus_.*"),
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body="<!doctype html><html lang=en><title>Portal</title><h1>Fake portal</h1></html>",
        ),
    )
    page.get_by_role("button", name="Payment methods and invoices").click()
    expect(page).to_have_url(re.compile(r"/portal/cus_"))
    assert len(shop.stripe.portal_sessions) == 1

    # Cancelled at the end of the period, after the confirmation.
    page.goto("/billing")
    page.get_by_role("button", name="Cancel subscription").click()
    assert "Cancel this subscription?" in confirm(page, "Cancel subscription")
    expect(page.locator("#orders")).to_contain_text("subscription cancelling")
    expect(page.locator("#available-credits")).to_have_text("200,000")  # the credits stay
    subscription = next(iter(shop.stripe.subscriptions.values()))
    assert subscription["cancel_at_period_end"] is True
    screenshot(page, "billing-subscription-cancelling")
