"""The Slack and Discord sections of /integrations, on a phone: "Add to Slack" goes through
Slack's consent page (the fake) and back; a Slack user who ran /multinotes opens the link it
sent, confirms, and the account shows with its default model and an Unlink button; the Discord
section offers its install link. Accessible, nothing wider than the screen."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from multinotes.plugins.integrations.slack.tests.fakes.slack_server import FakeSlack
from tests.browser.conftest import api_account, running_server
from tests.browser.test_accessibility import serious_violations
from tests.fakes.in_thread import ServedInThread


@pytest.fixture
def slack_app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, FakeSlack]]:
    """A fresh app whose Slack is the fake (its settings from the environment)."""
    fake = FakeSlack()
    with ServedInThread(fake) as served:
        fake.url = served.url
        monkeypatch.setenv("MULTINOTES_PLUGINS__SLACK__CLIENT_ID", fake.client_id)
        monkeypatch.setenv("MULTINOTES_PLUGINS__SLACK__CLIENT_SECRET", fake.client_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__SLACK__SIGNING_SECRET", fake.signing_secret)
        monkeypatch.setenv("MULTINOTES_PLUGINS__SLACK__API_BASE", served.url + "/api/")
        monkeypatch.setenv("MULTINOTES_PLUGINS__DISCORD__APPLICATION_ID", "1100000000000000001")
        monkeypatch.setenv("MULTINOTES_PLUGINS__DISCORD__PUBLIC_KEY", "00" * 32)
        monkeypatch.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(tmp_path / "data") as url:
            yield url, fake


def slash_command(app_url: str, fake: FakeSlack, text: str) -> dict[str, Any]:
    """What Slack does when someone types /multinotes: a signed form POST."""
    body = urlencode(fake.command_form(text)).encode()
    request = urllib.request.Request(
        app_url + "/api/integrations/slack/events",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **fake.headers(body)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def test_slack_is_added_and_a_slack_user_linked_and_unlinked_on_a_phone(
    slack_app: tuple[str, FakeSlack], browsing: Any, browser: Any, screenshot: Any
) -> None:
    url, fake = slack_app
    sam = api_account(browser, url, "Sam Slack", "sam@example.com")
    page = browsing.new_page(storage_state=sam.storage_state, base_url=url, phone=True)
    page.goto("/integrations")
    slack = page.get_by_role("region", name="Slack")
    discord = page.get_by_role("region", name="Discord")
    expect(discord.get_by_role("button", name="Add to Discord")).to_have_attribute(
        "href", re.compile(r"oauth2/authorize\?client_id=1100000000000000001")
    )

    slack.get_by_role("button", name="Add to Slack").click()  # Slack's consent page, and back
    expect(slack.get_by_role("status")).to_contain_text("Slack is connected")
    expect(slack.get_by_role("listitem").filter(has_text="Acme").first).to_be_visible()

    # Someone in that workspace runs the command before linking: the reply carries a link.
    reply = slash_command(url, fake, "hello")
    assert reply["response_type"] == "ephemeral"
    link = re.search(r"<([^|>]+)\|link your account>", reply["text"]).group(1)
    parts = urlsplit(link)
    page.goto(f"{parts.path}?{parts.query}")
    expect(page.get_by_role("heading", name="Link your Slack account")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("@ann")
    page.get_by_role("button", name="Link Slack account").click()

    expect(slack.get_by_role("status")).to_contain_text("Your Slack account is linked")
    ann = slack.get_by_role("listitem").filter(has_text="@ann in acme")
    ann.get_by_label("Default model").select_option("demo/echo")
    ann.get_by_role("button", name="Save default model").click()
    expect(slack.get_by_role("status")).to_contain_text("Saved")
    ann = slack.get_by_role("listitem").filter(has_text="@ann in acme")
    expect(ann.get_by_label("Default model")).to_have_value("demo/echo")

    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert not serious_violations(page)
    screenshot(page, "integrations-slack-phone")

    ann.get_by_role("button", name="Unlink @ann in acme").click()
    expect(slack.get_by_role("status")).to_contain_text("unlinked")
    expect(slack.get_by_role("listitem").filter(has_text="@ann in acme")).to_have_count(0)
    # Unlinked again: the next command asks to link instead of answering.
    assert "link your account" in slash_command(url, fake, "hello")["text"]
