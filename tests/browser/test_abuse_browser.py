"""Abuse reports in a real browser (issue #19 item 9): someone signs up with a throw-away
address while the rule only reports it; the administrator finds Abuse in the console's nav,
filters the queue by rule, blocks the account with a reason; the person's open session ends at
their next page and the login form tells them why they cannot log in."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Account, Browsing, api_account
from tests.browser.test_accessibility import serious_violations


def set_disposable_rule(browser: Any, server: str, admin: Account, action: str) -> None:
    context = browser.new_context(base_url=server, storage_state=admin.storage_state)
    try:
        saved = context.request.put(
            "/api/admin/abuse/rules/disposable_email",
            headers={"X-CSRF-Token": admin.csrf},
            data={"enabled": True, "action": action, "threshold": 1, "window_minutes": 60},
        )
        assert saved.ok, saved.text()
    finally:
        context.close()


def test_an_administrator_blocks_a_reported_account_from_the_queue(
    browsing: Browsing,
    browser: Any,
    server: str,
    admin: Account,
    admin_page: Any,
    screenshot: Any,
) -> None:
    tag = secrets.token_hex(3)
    set_disposable_rule(browser, server, admin, "none")  # report, let in
    try:
        spammer = api_account(browser, server, "Sid Spammer", f"sid.{tag}@mailinator.com")
    finally:
        set_disposable_rule(browser, server, admin, "rate_limit")  # the default again
    sid = browsing.new_page(storage_state=spammer.storage_state)
    sid.goto("/notes")
    expect(sid).to_have_url(f"{server}/notes")

    page = admin_page
    page.goto("/admin/plugins")
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Abuse").click()
    expect(page.get_by_role("heading", name="Abuse reports")).to_be_visible()
    page.get_by_label("Rule").select_option(label="Disposable email domain")
    page.get_by_label("Status").select_option("open")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("#abuse-queue tr", has_text=spammer.email)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("domain: mailinator.com")
    assert serious_violations(page) == []
    screenshot(page, "admin-abuse-queue")

    row.get_by_label("Message or reason (optional)").fill("Throw-away accounts sending spam.")
    row.get_by_role("button", name="Block").click()
    expect(page.locator(".flash")).to_contain_text("Report blocked.")
    page.goto("/admin/abuse?status=blocked")
    blocked = page.locator("#abuse-queue tr", has_text=spammer.email)
    expect(blocked.locator(".abuse-status")).to_contain_text("Blocked")

    # Sid's session is over at the next page; the login form says why.
    browsing.problems.allow(r"status of 403")  # the refused login answers 403
    sid.goto("/notes")
    expect(sid).to_have_url(f"{server}/login?next=/notes")
    sid.get_by_label("Email").fill(spammer.email)
    sid.get_by_label("Password").fill(PASSWORD)
    sid.get_by_role("button", name="Log in").click()
    expect(sid.get_by_role("alert")).to_have_text(
        "This account is blocked: Throw-away accounts sending spam."
    )


def put_rule(browser: Any, server: str, admin: Account, rule: str, body: dict[str, Any]) -> None:
    context = browser.new_context(base_url=server, storage_state=admin.storage_state)
    try:
        saved = context.request.put(
            f"/api/admin/abuse/rules/{rule}", headers={"X-CSRF-Token": admin.csrf}, data=body
        )
        assert saved.ok, saved.text()
    finally:
        context.close()


def test_a_misused_api_key_shows_in_the_queue_with_its_evidence(
    browsing: Browsing,
    browser: Any,
    server: str,
    admin: Account,
    admin_page: Any,
    screenshot: Any,
) -> None:
    tag = secrets.token_hex(3)
    page = admin_page
    # The administrator tightens the rule in its form: three refusals to one key report it.
    page.goto("/admin/abuse/rules")
    section = page.locator("#rule-api_key_misuse")
    expect(section.get_by_role("heading", name="API key misuse")).to_be_visible()
    section.get_by_label("or answered 403 / 429 this many times within the window").fill("3")
    section.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Rule saved.")
    try:
        prober = api_account(browser, server, "Pat Prober", f"pat.{tag}@example.com")
        context = browser.new_context(base_url=server, storage_state=prober.storage_state)
        try:
            made = context.request.post(
                "/api/keys",
                headers={"X-CSRF-Token": prober.csrf},
                data={"name": "scraper", "scopes": ["read"]},
            )
            assert made.status == 201, made.text()
            key = made.json()["key"]
        finally:
            context.close()
        bearer = browser.new_context(base_url=server)
        try:
            for _ in range(3):  # a read-only key trying to write, again and again
                refused = bearer.request.post(
                    "/api/conversations", headers={"Authorization": f"Bearer {key}"}, data={}
                )
                assert refused.status == 403
        finally:
            bearer.close()

        page.goto("/admin/abuse")
        page.get_by_label("Rule").select_option(label="API key misuse")
        page.get_by_role("button", name="Filter").click()
        row = page.locator("#abuse-queue tr", has_text=prober.email)
        expect(row).to_have_count(1)
        expect(row).to_contain_text("signal: many refusals")
        expect(row).to_contain_text("refusals in window: 3")
        expect(row).to_contain_text("last code: insufficient_scope")
        assert serious_violations(page) == []
        screenshot(page, "admin-abuse-key-misuse")
        row.get_by_role("button", name="Dismiss").click()
        expect(page.locator(".flash")).to_contain_text("Report dismissed.")
    finally:
        put_rule(
            browser,
            server,
            admin,
            "api_key_misuse",
            {"enabled": True, "action": "none", "threshold": 5, "window_minutes": 60},
        )
