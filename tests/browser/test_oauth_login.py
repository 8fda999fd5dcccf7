"""Sign in with Google and Facebook in a real browser, against the fake provider.

The fake (tests/fakes/oidc_server.py) runs in a thread of the test process and the app in its own
process, configured through the environment to use it as Google and Facebook.
"""

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
from tests.fakes.oidc_server import FakeOIDC


@dataclass
class OAuthServer:
    url: str
    fake: FakeOIDC


@pytest.fixture
def oauth_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthServer]:
    """A fresh app whose Google and Facebook are the fake provider."""
    fake = FakeOIDC()
    with ServedInThread(fake) as provider:
        for name, value in fake.settings(provider.url).items():
            monkeypatch.setenv(f"MULTINOTES_{name.upper()}", str(value))
        with running_server(tmp_path / "data") as url:
            yield OAuthServer(url, fake)


@pytest.fixture
def oauth_browsing(
    browser: Any, oauth_server: OAuthServer, page_problems: PageProblems
) -> Iterator[Browsing]:
    session = Browsing(browser, oauth_server.url, page_problems)
    yield session
    session.close()
    unexpected = page_problems.unexpected()
    assert not unexpected, "The browser reported problems:\n" + "\n".join(unexpected)


def test_continue_with_google_logs_in(
    oauth_browsing: Browsing, oauth_server: OAuthServer, screenshot: Any
) -> None:
    page = oauth_browsing.new_page()
    page.goto("/login")
    screenshot(page, "login-with-providers")
    page.get_by_role("button", name="Continue with Google").click()

    expect(page).to_have_url(f"{oauth_server.url}/")
    expect(page.get_by_role("status")).to_contain_text("Welcome, Gina Google!")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Account")).to_be_visible()
    expect(nav.get_by_role("link", name="Log in")).to_have_count(0)

    nav.get_by_role("link", name="Account").click()
    expect(page.get_by_text("gina@example.com").first).to_be_visible()
    linked = page.locator("#linked-accounts")
    expect(linked.get_by_role("rowheader", name="Google")).to_be_visible()
    expect(linked.get_by_role("button", name="Link Facebook")).to_be_visible()
    screenshot(page, "account-linked-accounts")


def test_an_existing_account_is_told_to_log_in_then_links_facebook(
    oauth_browsing: Browsing, page_problems: PageProblems, screenshot: Any
) -> None:
    page_problems.allow(r"status of 409")  # the refusal page answers 409 Conflict
    page = oauth_browsing.new_page()
    page.goto("/register")
    page.get_by_label("Name").fill("Fay")
    page.get_by_label("Email").fill("fay@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    # Signing up does not log in (it answers a taken address alike): the login page follows.
    expect(page).to_have_url(re.compile(r"/login$"))
    nav = page.get_by_role("navigation", name="Main")

    page.get_by_role("button", name="Continue with Facebook").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You already have an account")
    expect(nav.get_by_role("link", name="Account")).to_have_count(0)  # not logged in
    screenshot(page, "oauth-account-exists")

    page.get_by_role("button", name="Log in with your password").click()
    page.get_by_label("Email").fill("fay@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/account#linked-accounts$"))

    # The form redirects to the provider: the page's policy must let it (Chrome checks).
    page.get_by_role("button", name="Link Facebook").click()
    expect(page).to_have_url(re.compile(r"/account#linked-accounts$"))
    expect(page.get_by_role("status")).to_contain_text("Your Facebook account is linked")
    expect(
        page.locator("#linked-accounts").get_by_role("rowheader", name="Facebook")
    ).to_be_visible()

    # From now on Facebook logs in to that account.
    nav.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Continue with Facebook").click()
    expect(nav.get_by_role("link", name="Account")).to_be_visible()
    nav.get_by_role("link", name="Account").click()
    expect(page.get_by_text("fay@example.com").first).to_be_visible()
