"""Account security in the browser: verifying the address from the mailed link, resetting a
forgotten password, and logging out everywhere. The server requires verification and writes
its mail to ``<data dir>/outbox/``, where these tests read the links."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import confirm

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def verifying_server(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh server that requires email verification (as production does by default)."""
    monkeypatch.setenv("MULTINOTES_EMAIL_VERIFICATION_REQUIRED", "true")
    yield request.getfixturevalue("fresh_server")


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "data" / "outbox"  # fresh_server's data dir


def mailed_link(outbox: Path, to: str, path: str, timeout: float = 10) -> str:
    """The link to ``path`` in the newest mail to ``to`` that has one."""
    deadline = time.monotonic() + timeout
    while True:
        for eml in sorted(outbox.glob("*.eml"), reverse=True) if outbox.exists() else []:
            message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
            if message["To"] != to:
                continue
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            for link in re.findall(r"https?://\S+", str(body.get_content())):
                if path in link:
                    return str(link)
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {to} with a link to {path}")
        time.sleep(0.1)


def register(browsing: Any, base_url: str, name: str, email_address: str) -> None:
    context = browsing.browser.new_context(base_url=base_url)
    try:
        response = context.request.post(
            "/api/auth/register",
            data={"name": name, "email": email_address, "password": PASSWORD},
        )
        assert response.status == 201, response.text()
    finally:
        context.close()


def log_in(page: Any, email_address: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email_address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_newcomer_verifies_their_address_from_the_mailed_link(
    browsing: Any, verifying_server: str, outbox: Path, sign_up: Any, screenshot: Any
) -> None:
    page = browsing.new_page(base_url=verifying_server)
    sign_up(page, "Rosa Parks", "rosa@example.com")  # (signing up, then logging in)

    banner = page.get_by_role("region", name="Verify your email address.")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("not generate")
    screenshot(page, "verify-banner")

    # Asking again right away is answered kindly (the first mail is on its way).
    banner.get_by_role("button", name="Send a new link").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a new link to rosa@example.com")
    expect(page).to_have_url(f"{verifying_server}/")

    page.goto(mailed_link(outbox, "rosa@example.com", "/verify?token="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Email verified")
    expect(page.get_by_role("status")).to_have_text(
        "Your email address rosa@example.com is verified."
    )
    expect(banner).to_have_count(0)
    screenshot(page, "verified")

    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{verifying_server}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Rosa Parks")
    expect(banner).to_have_count(0)
    page.goto("/account")
    expect(page.locator("dl.details")).to_contain_text("Email verified")


def test_a_forgotten_password_is_reset_through_the_mailed_link(
    browsing: Any, verifying_server: str, outbox: Path, screenshot: Any
) -> None:
    register(browsing, verifying_server, "Alan Kay", "alan@example.com")
    page = browsing.new_page(base_url=verifying_server)
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Forgot your password?")
    page.get_by_label("Email").fill("alan@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("status")).to_contain_text("If an account uses alan@example.com")
    screenshot(page, "password-forgot-sent")

    page.goto(mailed_link(outbox, "alan@example.com", "/password/reset?token="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    page.get_by_label(re.compile(r"^New password")).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    screenshot(page, "password-reset")
    page.get_by_role("button", name="Change my password").click()

    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("status")).to_have_text(
        "Your password was changed. Log in with your new password."
    )
    log_in(page, "alan@example.com", NEW_PASSWORD)
    expect(page).to_have_url(f"{verifying_server}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Alan Kay")


def test_log_out_everywhere_ends_the_sessions_of_every_browser(
    browsing: Any, verifying_server: str, screenshot: Any
) -> None:
    register(browsing, verifying_server, "Ada Admin", "first@example.com")  # the admin
    register(browsing, verifying_server, "Grace Hopper", "grace@example.com")
    laptop = browsing.new_page(base_url=verifying_server)
    log_in(laptop, "grace@example.com", PASSWORD)
    phone = browsing.new_page(base_url=verifying_server, phone=True)
    log_in(phone, "grace@example.com", PASSWORD)
    expect(phone).to_have_url(f"{verifying_server}/")

    laptop.goto("/account")
    sessions = laptop.locator("#sessions")
    expect(sessions.get_by_role("row")).to_have_count(3)  # the header and two sessions
    expect(sessions.get_by_role("row").filter(has_text="This browser")).to_have_count(1)
    screenshot(laptop, "account-sessions")

    dialogs: list[str] = []

    sessions.get_by_role("button", name="Log out everywhere").click()
    dialogs.append(confirm(laptop, "Log out everywhere"))
    expect(laptop).to_have_url(re.compile(r"/login$"))
    expect(laptop.get_by_role("status")).to_have_text("You are logged out everywhere.")
    assert dialogs and "every browser" in dialogs[0]

    phone.goto("/account")
    expect(phone).to_have_url(re.compile(r"/login\?next=/account$"))
    laptop.goto("/account")
    expect(laptop).to_have_url(re.compile(r"/login\?next=/account$"))
