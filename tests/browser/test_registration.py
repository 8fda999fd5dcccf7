"""Signing up, logging out and back in, through the real forms."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

PASSWORD = "correct horse battery staple"


def test_a_newcomer_signs_up_logs_out_and_logs_back_in(
    browsing: Any, fresh_server: str, sign_up: Any, screenshot: Any
) -> None:
    page = browsing.new_page(base_url=fresh_server)
    page.goto("/")
    screenshot(page, "home-anonymous")
    page.get_by_role("button", name="Create an account").click()
    expect(page).to_have_url(re.compile(r"/register$"))
    screenshot(page, "register")

    sign_up(page, "Grace Hopper", "grace@example.com", PASSWORD)

    expect(page).to_have_url(f"{fresh_server}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Grace Hopper")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Account")).to_be_visible()
    # The first account on a fresh install is its administrator.
    expect(nav.get_by_role("link", name="Plugins")).to_be_visible()
    expect(nav.get_by_role("link", name="Log in")).to_have_count(0)
    screenshot(page, "home-admin")

    nav.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    expect(nav.get_by_role("link", name="Account")).to_have_count(0)
    screenshot(page, "login")

    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{fresh_server}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Grace Hopper")
    expect(nav.get_by_role("link", name="Plugins")).to_be_visible()


def test_a_wrong_password_is_refused_on_the_login_form(page: Any, page_problems: Any) -> None:
    page_problems.allow(r"status of 401")  # the refused login answers 401, as it should
    page.goto("/login")
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value("nobody@example.com")
    expect(page.get_by_label("Password")).to_have_value("")


def test_sign_up_errors_are_shown_next_to_their_fields_and_keep_what_was_typed(
    page: Any, page_problems: Any, sign_up: Any, screenshot: Any
) -> None:
    page_problems.allow(r"status of 422")  # the invalid form answers 422, as it should

    sign_up(page, "Alan Turing", "not-an-email", PASSWORD)
    expect(page.get_by_role("alert")).to_be_visible()
    email = page.get_by_label("Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email-error")).not_to_be_empty()
    expect(email).to_have_value("not-an-email")
    expect(page.get_by_label("Name")).to_have_value("Alan Turing")
    expect(page.get_by_label("Password")).to_have_value("")  # never sent back
    screenshot(page, "register-errors")

    sign_up(page, "Alan Turing", "alan@example.com", "short")
    password = page.get_by_label("Password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).not_to_be_empty()
    expect(password).to_have_attribute("aria-describedby", re.compile(r"\bpassword-error\b"))
    expect(page.get_by_label("Name")).to_have_value("Alan Turing")
    expect(page.get_by_label("Email")).to_have_value("alan@example.com")
    expect(page.get_by_label("Email")).not_to_have_attribute("aria-invalid", "true")
