"""Answers outlive the page that asked for them: a new chat's URL is the conversation's as soon
as it exists, leaving the page does not stop the answer, and coming back shows it finish."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_workspace import ECHO, _account, answer, choose_models, send

CONVERSATION_URL = re.compile(r"/chat/[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def member(browser: Any, server: str, admin: Any) -> Any:
    return _account(browser, server, "Lea Leaving", "lea.leaving@example.com")


@pytest.fixture
def chat(browsing: Any, member: Any) -> Any:
    page = browsing.new_page(storage_state=member)
    page.goto("/chat")
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    return page


@pytest.fixture
def slow_demo(browsing: Any, admin: Any) -> Any:
    from tests.browser.test_workspace import demo_delay

    with demo_delay(browsing, admin, 150):
        yield


def test_the_url_is_the_conversations_while_the_first_answer_streams(
    chat: Any, slow_demo: None
) -> None:
    page = chat
    choose_models(page, ECHO)
    send(page, " ".join(f"word{n}" for n in range(30)))
    card = answer(page, ECHO)
    expect(card.locator(".streaming-text")).to_contain_text("word1 ")
    expect(page).to_have_url(CONVERSATION_URL)
    expect(card.locator('[data-field="status"]')).to_have_text("Streaming…")
    # A reload now keeps the conversation.
    expect(card.locator('[data-field="status"]')).to_have_text("Complete", timeout=30_000)


def test_leaving_and_coming_back_shows_the_answer_finish(chat: Any, slow_demo: None) -> None:
    page = chat
    choose_models(page, ECHO)
    send(page, " ".join(f"word{n}" for n in range(40)))
    expect(answer(page, ECHO).locator(".streaming-text")).to_contain_text("word2 ")
    expect(page).to_have_url(CONVERSATION_URL)
    conversation = page.url

    page.goto("/notes")  # leave while it streams
    page.wait_for_timeout(1500)
    page.goto(conversation)  # come back: it is still being written, and is followed live
    card = answer(page, ECHO)
    expect(card.locator('[data-field="status"]')).to_have_text("Streaming…")
    expect(card.locator(".streaming-text")).to_contain_text("word")
    expect(card.locator('[data-field="status"]')).to_have_text("Complete", timeout=30_000)
    text = card.locator(".answer-body").inner_text()
    assert text.startswith("You asked: word0 word1") and "word39" in text
    expect(card.locator('[data-field="stats"]')).to_be_visible()


def test_stop_still_stops_an_answer_followed_after_coming_back(chat: Any, slow_demo: None) -> None:
    page = chat
    choose_models(page, ECHO)
    send(page, " ".join(f"word{n}" for n in range(80)))
    expect(answer(page, ECHO).locator(".streaming-text")).to_contain_text("word1 ")
    expect(page).to_have_url(CONVERSATION_URL)
    page.reload()  # leave and come back at once
    card = answer(page, ECHO)
    expect(card.locator(".streaming-text")).to_contain_text("word3 ")
    card.get_by_role("button", name="Stop").click()
    card = answer(page, ECHO)
    expect(card.locator('[data-field="status"]')).to_have_text("Stopped", timeout=15_000)
    text = card.locator(".answer-body").inner_text()
    assert text.startswith("You asked: word0") and "word79" not in text


def test_the_image_tool_works_on_first_send_with_a_wide_only_model(
    browser: Any, fresh_server: str, browsing: Any
) -> None:
    """With an OpenAI key set, the image tool offers DALL·E 3 wide, which draws no square
    images: the tool's size (square by default) must not make the first Send invalid, and
    a refused request leaves no empty chat behind."""
    from tests.browser.conftest import api_account

    owner = api_account(browser, fresh_server, "Ivy Images", "ivy@example.com")
    page = browsing.new_page(storage_state=owner.storage_state, base_url=fresh_server)
    page.goto("/account")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    configured = page.request.patch(
        "/api/admin/plugins/openai",
        data={"enabled": True, "settings": {"api_key": "sk-test-key"}},
        headers={"X-CSRF-Token": token or ""},
    )
    assert configured.ok, configured.text()

    page.goto("/chat?tool=image")
    choose_models(page, "openai/dall-e-3-wide")
    expect(page.locator("#tool-size")).to_have_value("1024x1024")
    with page.expect_request(re.compile(r"/api/messages$")) as sent:
        send(page, "a lighthouse at dusk")
    options = sent.value.post_data_json.get("options", {}).get("openai/dall-e-3-wide", {})
    assert options.get("size") in (None, "1792x1024", "1024x1792"), options
    # Accepted: the conversation exists and the answer card is there (the provider itself is
    # not reachable from this test, so the answer may fail; the request was valid).
    card = answer(page, "openai/dall-e-3-wide")
    # The process's first OpenAI media call imports the SDK first (in a thread; seconds under load).
    expect(card).to_be_visible(timeout=20_000)
    expect(page.locator("#composer-alert")).to_be_hidden()
    expect(page).to_have_url(CONVERSATION_URL)
    expect(card.locator('[data-field="status"]')).not_to_have_text("Streaming…", timeout=20_000)
    page.close()  # before its server stops
