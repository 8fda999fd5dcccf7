"""An operator marks a bank-transfer order paid from its console page (issue #14, item 13).

The buyer opens an order on /pricing and leaves the fake Stripe's page without paying (they pay
by bank transfer instead); the operator finds the pending order, records the transfer after the
confirmation dialog, and the buyer's /billing shows the order paid with the plan's credits."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.browser import test_billing_console_browser as console_tests
from tests.browser.conftest import Browsing, PageProblems, confirm
from tests.browser.test_accessibility import serious_violations
from tests.browser.test_billing_console_browser import Console, create_plan, no_horizontal_scroll

console = console_tests.console
console_browsing = console_tests.console_browsing


def test_a_pending_order_is_marked_paid_by_bank_transfer_after_a_confirmation(
    console_browsing: Browsing, console: Console, screenshot: Any, page_problems: PageProblems
) -> None:
    page_problems.allow(r"status of 422 .*/mark-paid")  # the wrong amount, below
    admin = console_browsing.new_page(storage_state=console.admin.storage_state)
    create_plan(admin, "Starter", "10.00")

    buyer = console_browsing.new_page(storage_state=console.buyer.storage_state)
    buyer.goto("/pricing")
    buyer.get_by_role("article", name="Starter").get_by_role("button", name="Buy Starter").click()
    expect(buyer).to_have_url(re.compile(r"/pay/cs_test_"))  # leaves without paying by card

    admin.goto("/admin/billing/orders")
    admin.get_by_label("Status").select_option("pending")
    admin.get_by_role("button", name="Filter").click()
    orders = admin.locator("#orders")
    expect(orders).to_contain_text("bo@example.com")
    orders.get_by_role("link").first.click()
    expect(admin.locator("#order-status")).to_contain_text("pending")
    expect(admin.locator("#no-ledger")).to_be_visible()
    form = admin.locator("#mark-paid-form")

    # A wrong amount: the field says so, keeps what was typed, and nothing is paid.
    form.get_by_label("Amount received (USD)").fill("12.00")
    form.get_by_label("Bank reference").fill("SEPA-2026-118")
    form.get_by_role("button", name="Mark paid").click()
    confirm(admin, "Mark paid")
    expect(admin.locator("#mark-paid-error")).to_contain_text("Not marked paid")
    amount = admin.get_by_label("Amount received (USD)")
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(admin.locator("#paid-amount-error")).to_contain_text("10.00 USD")
    expect(amount).to_have_value("12.00")
    expect(admin.locator("#order-status")).to_contain_text("pending")

    # Cancelling the dialog records nothing.
    amount.fill("10.00")
    admin.get_by_label("Note (optional)").fill("Arrived on Monday's statement")
    admin.get_by_role("button", name="Mark paid").click()
    question = confirm(admin, "Cancel")
    assert "Mark bo@example.com's order paid by bank transfer?" in question
    expect(admin.locator("#order-status")).to_contain_text("pending")

    admin.get_by_role("button", name="Mark paid").click()
    confirm(admin, "Mark paid")
    expect(admin.locator(".flash")).to_contain_text(
        "Marked paid: 10.00 USD by bank transfer (SEPA-2026-118)"
    )
    expect(admin.locator("#order-status")).to_contain_text("paid")
    expect(admin.locator("#order-ledger")).to_contain_text("purchase")
    expect(admin.locator("#order-events")).to_contain_text("bank_transfer")
    expect(admin.locator("#mark-paid-form")).to_have_count(0)
    screenshot(admin, "console-order-marked-paid")
    order_path = admin.evaluate("location.pathname")
    admin.reload()  # post-redirect-get: a reload records nothing again
    expect(admin.locator("#order-ledger tbody tr", has_text="purchase")).to_have_count(1)

    buyer.goto("/billing")
    expect(buyer.locator("#orders")).to_contain_text("paid")
    expect(buyer.locator("#available-credits")).to_have_text("500,000")

    # A pending order's page, with the form, fits a phone and has no serious axe findings.
    buyer.goto("/pricing")
    buyer.get_by_role("article", name="Starter").get_by_role("button", name="Buy Starter").click()
    expect(buyer).to_have_url(re.compile(r"/pay/cs_test_"))
    admin.goto("/admin/billing/orders?status=pending")
    admin.locator("#orders").get_by_role("link").first.click()
    expect(admin.locator("#mark-paid-form")).to_be_visible()
    pending_path = admin.evaluate("location.pathname")
    assert pending_path != order_path
    phone = console_browsing.new_page(phone=True, storage_state=console.admin.storage_state)
    phone.goto(pending_path)
    expect(phone.locator("#mark-paid-form")).to_be_visible()
    no_horizontal_scroll(phone)
    screenshot(phone, "console-order-mark-paid-phone")
    found: dict[str, list[str]] = {}
    for scheme in ("light", "dark"):
        admin.emulate_media(color_scheme=scheme)
        for path in (pending_path, order_path):
            admin.goto(path)
            if problems := serious_violations(admin):
                found[f"{scheme} {path}"] = problems
    assert found == {}, json.dumps(found, indent=1)
