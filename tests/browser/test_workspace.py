"""The chat workspace in a real browser: several models stream side by side, stop, regenerate and
switch branches, rate, generate images, meter the wallet, and never run script from a prompt.

Every test runs against the shared embedded server, whose demo models answer offline.
"""

from __future__ import annotations

import contextlib
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_for_js

ECHO, REVERSE, SWATCH = "demo/echo", "demo/reverse", "demo/swatch"


PASSWORD = "correct horse battery staple"


def _account(browser: Any, server: str, name: str, email: str) -> Any:
    """Register and log in over the JSON API; returns the logged-in storage state."""
    context = browser.new_context(base_url=server)
    try:
        registered = context.request.post(
            "/api/auth/register", data={"name": name, "email": email, "password": PASSWORD}
        )
        assert registered.status == 201, registered.text()
        logged_in = context.request.post(
            "/api/auth/login", data={"email": email, "password": PASSWORD}
        )
        assert logged_in.ok, logged_in.text()
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture(scope="module")
def member(browser: Any, server: str, admin: Any) -> Any:
    """A user of the shared server (not its admin), for this module's tests."""
    return _account(browser, server, "Wanda Workspace", "wanda@example.com")


@pytest.fixture
def chat(browsing: Any, member: Any) -> Any:
    """A desktop page, logged in as ``member``, on a new chat."""
    page = browsing.new_page(storage_state=member)
    page.goto("/chat")
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    return page


def csrf(page: Any) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return str(token)


def choose_models(page: Any, *model_ids: str) -> None:
    """Tick exactly ``model_ids`` in the model picker."""
    page.locator("#model-summary").click()
    for box in page.locator('#model-picker input[name="models"]:not([disabled])').all():
        box.set_checked(box.get_attribute("value") in model_ids)
    page.locator("#model-summary").click()


def send(page: Any, prompt: str) -> None:
    """Send ``prompt`` as a person does: once Send is back from the last answer (a Ctrl+Enter
    while answers still come in sends nothing)."""
    expect(page.locator("#send")).to_be_enabled(timeout=15_000)
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Prompt", exact=True).press("Control+Enter")


def answer(page: Any, model_id: str, turn: int = -1) -> Any:
    """The visible answer card of ``model_id`` in a turn (default: the last)."""
    turns = page.locator("#thread > li.turn")
    scope = turns.last if turn == -1 else turns.nth(turn)
    return scope.locator(f'.answer[data-model="{model_id}"]:visible')


def balance(page: Any) -> int:
    return int(page.request.get("/api/wallet").json()["available"])


def no_horizontal_scroll(page: Any) -> None:
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"] + 1, f"the page scrolls sideways: {widths}"


class HeldRequests:
    """Requests matching ``pattern`` wait, as on a slow line, until ``release()``."""

    def __init__(self, page: Any, pattern: str) -> None:
        self.holding = True
        self.held: list[Any] = []
        page.route(pattern, self._hold)

    def _hold(self, route: Any) -> None:
        if self.holding:
            self.held.append(route)
        else:
            route.continue_()

    def release(self) -> None:
        self.holding = False
        for route in self.held:
            route.continue_()


@contextlib.contextmanager
def demo_delay(browsing: Any, admin: Any, ms: int) -> Iterator[None]:
    """The demo models pause ``ms`` between words while the test runs (an admin setting)."""
    page = browsing.new_page(storage_state=admin.storage_state)
    page.goto("/account")

    def set_delay(value: int) -> None:
        response = page.request.patch(
            "/api/admin/plugins/demo",
            data={"settings": {"delay_ms": value}},
            headers={"X-CSRF-Token": csrf(page)},
        )
        assert response.ok, response.text()

    set_delay(ms)
    try:
        yield
    finally:
        set_delay(15)


@pytest.fixture
def slow_demo(browsing: Any, admin: Any) -> Iterator[None]:
    """Slow enough to press Stop half-way."""
    with demo_delay(browsing, admin, 200):
        yield


@pytest.fixture
def paced_demo(browsing: Any, admin: Any) -> Iterator[None]:
    """Each word reaches the page on its own, even on a busy machine."""
    with demo_delay(browsing, admin, 60):
        yield


PROMPT = "Hello **bold** world, one word at a time"
WATCH_STREAMING = """() => {
  window.__streamed = {};
  new MutationObserver(() => {
    for (const card of document.querySelectorAll('.answer[data-status="pending"]')) {
      const text = card.querySelector('.streaming-text');
      if (text && text.textContent) window.__streamed[card.dataset.model] = text.textContent;
    }
  }).observe(document.getElementById('thread'), {subtree: true, childList: true,
                                                  characterData: true});
}"""


SIDE_BY_SIDE = """() => {
  const [first, second] = [...document.querySelectorAll('#thread .answer:not([hidden])')]
    .map(card => card.getBoundingClientRect());
  return first && second && first.height > 0 && Math.abs(first.top - second.top) < 2
    && second.left >= first.right;
}"""


def test_two_models_stream_side_by_side_and_finish_with_stats_and_markdown(
    chat: Any, paced_demo: None, screenshot: Any
) -> None:
    # Paced words, so the test can watch the streamed text before the rendered Markdown
    # replaces it (on a busy machine a fast stream can arrive in one piece).
    page = chat
    before = balance(page)
    choose_models(page, ECHO, REVERSE)
    expect(page.locator("#model-summary")).to_have_text("Models: Echo, Reverse")
    page.evaluate(WATCH_STREAMING)

    # Eight words: Reverse streams them too, and three (paced 60 ms apart) arrived in one piece
    # with the answer's end on a loaded machine.
    send(page, PROMPT)

    echo, reverse = answer(page, ECHO), answer(page, REVERSE)
    for card in (echo, reverse):
        expect(card.locator('[data-field="status"]')).to_have_text("Complete")
        expect(card.locator(".answer-stats")).to_contain_text(re.compile(r"\d+ in / \d+ out"))
        expect(card.locator('[data-stat="cost"]')).to_have_text(re.compile(r"^\d+ credits?$"))
        expect(card.locator('[data-stat="latency"]')).to_have_text(re.compile(r"\d+ m?s$"))
        expect(card.locator('[data-stat="duration"]')).to_have_text(re.compile(r"\d+ m?s$"))
        expect(card.locator(".badge.demo")).to_have_text("Demo")
    # Streamed as text first, then replaced by the server's rendered Markdown.
    streamed = page.evaluate("window.__streamed")
    assert set(streamed) >= {ECHO, REVERSE}, streamed
    expect(echo.locator(".answer-body strong")).to_have_text("bold")
    expect(echo.locator(".answer-body")).to_contain_text(
        "You asked: Hello bold world, one word at a time"
    )
    expect(reverse.locator(".answer-body")).to_have_text("time a at word one world, bold Hello")
    wait_for_js(page, SIDE_BY_SIDE)

    # The page now is the conversation, listed first in the sidebar under its new title.
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))
    current = page.locator('#conversation-list a[aria-current="page"]')
    expect(current).to_have_text(PROMPT)
    expect(page.get_by_role("heading", level=1)).to_have_text(PROMPT)
    expect(page.locator("#ws-announcer")).to_contain_text("Answers finished")

    # The wallet meter followed the charges.
    after = balance(page)
    assert after < before
    expect(page.locator("#wallet-balance")).to_have_text(f"{after:,}")
    screenshot(page, "workspace-two-models")

    # A reload shows the same thread, rendered by the server.
    page.reload()
    expect(answer(page, ECHO).locator(".answer-body strong")).to_have_text("bold")
    expect(answer(page, REVERSE).locator('[data-field="status"]')).to_have_text("Complete")

    # A follow-up continues the thread as a second turn.
    choose_models(page, ECHO)
    send(page, "And a follow-up")
    # Marked now, gone once the server renders the thread again after this answer.
    answer(page, ECHO, 0).evaluate("card => { card.dataset.liveCard = 'yes'; }")
    expect(page.locator("#thread > li.turn")).to_have_count(2)
    expect(answer(page, ECHO).locator(".answer-body")).to_contain_text("And a follow-up")
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Complete")

    # Copy puts the answer's Markdown on the clipboard. Clicked once the thread's new copy is
    # in place: a click on the old one as it is swapped out copies nothing.
    expect(page.locator("#thread .answer[data-live-card]")).to_have_count(0)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer(page, ECHO, 0).get_by_role("button", name="Copy").click()
    # The "Copied" label lasts 1.5 s, too short to assert reliably on a busy machine; the
    # clipboard is what matters.
    wait_for_js(
        page, "async () => (await navigator.clipboard.readText()).includes('Hello **bold** world')"
    )


def test_stop_keeps_the_partial_answer(chat: Any, slow_demo: None, screenshot: Any) -> None:
    page = chat
    choose_models(page, ECHO, REVERSE)
    words = " ".join(f"word{n}" for n in range(60))
    send(page, words)

    echo, reverse = answer(page, ECHO), answer(page, REVERSE)
    expect(echo.locator(".streaming-text")).to_contain_text("word2 ")
    expect(page.get_by_role("button", name="Stop all")).to_be_enabled()
    screenshot(page, "workspace-streaming")
    echo.get_by_role("button", name="Stop").click()
    expect(echo.locator('[data-field="status"]')).to_have_text("Stopped")
    expect(reverse.locator('[data-field="status"]')).to_have_text("Streaming…")

    page.keyboard.press("Escape")  # stops everything still running
    expect(reverse.locator('[data-field="status"]')).to_have_text("Stopped")
    expect(page.get_by_role("button", name="Stop all")).to_be_disabled()

    # What was written before the stop is kept (the server's copy, after the re-render).
    echo_text = echo.locator(".answer-body").inner_text()
    assert echo_text.startswith("You asked: word0 word1") and "word59" not in echo_text
    reverse_text = reverse.locator(".answer-body").inner_text()
    assert reverse_text.startswith("word59 word58") and "word0" not in reverse_text.split()
    expect(echo.get_by_role("button", name="Stop")).to_be_hidden()
    page.reload()
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Stopped")
    assert answer(page, ECHO).locator(".answer-body").inner_text() == echo_text


def test_regenerate_adds_a_sibling_and_the_switcher_switches_branches(chat: Any) -> None:
    page = chat
    choose_models(page, ECHO, REVERSE)
    send(page, "Once more")
    expect(answer(page, REVERSE).locator('[data-field="status"]')).to_have_text("Complete")
    first_id = answer(page, ECHO).get_attribute("data-message-id")

    answer(page, ECHO).get_by_role("button", name="Regenerate").click()
    switcher = page.get_by_role("navigation", name="Echo answers")
    expect(switcher).to_contain_text("2/2")
    second_id = answer(page, ECHO).get_attribute("data-message-id")
    assert second_id != first_id
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Complete")
    expect(page.locator(".answer-column")).to_have_count(2)  # still one column per model
    # The new answer can be regenerated again (whether focus follows it depends on when the
    # thread's re-render lands, so that is not asserted here).
    expect(answer(page, ECHO).get_by_role("button", name="Regenerate")).to_be_enabled()
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))

    switcher.get_by_role("link", name=re.compile("Previous")).click()
    expect(switcher).to_contain_text("1/2")
    expect(answer(page, ECHO)).to_have_attribute("data-message-id", first_id)
    expect(page).to_have_url(re.compile(rf"leaf={first_id}$"))
    # Keyboard focus stays on the switcher.
    expect(switcher.get_by_role("link", name=re.compile("Next"))).to_be_focused()
    page.keyboard.press("Enter")
    expect(switcher).to_contain_text("2/2")
    expect(answer(page, ECHO)).to_have_attribute("data-message-id", second_id)

    # Without JavaScript's help the switcher is a plain link to the same view.
    page.goto(page.url.split("?")[0] + f"?leaf={first_id}")
    expect(page.get_by_role("navigation", name="Echo answers")).to_contain_text("1/2")


def test_an_answer_is_rated_with_stars_and_a_comment(chat: Any) -> None:
    page = chat
    choose_models(page, ECHO)
    send(page, "Rate me")
    card = answer(page, ECHO)
    expect(card.locator('[data-field="status"]')).to_have_text("Complete")
    card.locator("summary", has_text="Rate").click()
    card.locator(".stars label").nth(3).click()
    card.get_by_label("Comment").fill("Nice echo")
    card.get_by_role("button", name="Save rating").click()
    expect(card.get_by_role("status")).to_have_text("Thanks! Rating saved.")
    expect(card.locator('summary[data-field="rate-summary"]')).to_have_text("Rated 4/5")

    page.reload()
    card = answer(page, ECHO)
    expect(card.locator('summary[data-field="rate-summary"]')).to_have_text("Rated 4/5")
    card.locator('summary[data-field="rate-summary"]').click()
    expect(card.get_by_label("4 stars")).to_be_checked()
    expect(card.get_by_label("Comment")).to_have_value("Nice echo")
    models = {m["id"]: m for m in page.request.get("/api/models").json()}
    assert models[ECHO]["rating"]["count"] >= 1


def test_rating_begun_while_the_answer_streams_survives_the_re_render_when_it_ends(
    chat: Any, paced_demo: None
) -> None:
    page = chat
    choose_models(page, ECHO)
    send(page, " ".join(f"word{n}" for n in range(12)))
    card = answer(page, ECHO)
    expect(card.locator('[data-field="status"]')).to_have_text("Streaming…")
    card.evaluate("card => { card.dataset.liveCard = 'yes'; }")
    card.locator("summary", has_text="Rate").click()
    card.locator(".stars label").nth(1).click()
    card.get_by_label("Comment").fill("Half-way thoughts")

    # The answer ends and the thread is rendered again by the server: a new card element.
    expect(card.locator('[data-field="status"]')).to_have_text("Complete")
    expect(page.locator("#thread .answer[data-live-card]")).to_have_count(0)
    expect(card.locator("details.rate")).to_have_attribute("open", "")
    expect(card.get_by_label("2 stars")).to_be_checked()
    expect(card.get_by_label("Comment")).to_have_value("Half-way thoughts")
    expect(card.get_by_label("Comment")).to_be_focused()


def test_rating_opened_while_the_thread_reloads_survives_the_reload(chat: Any) -> None:
    """Rate is opened after the answer ended but before the thread's new copy arrives (the
    server is held here): what is open and typed is read right before the swap, not when the
    copy was asked for."""
    page = chat
    thread = HeldRequests(page, "**/chat/*/thread*")
    choose_models(page, ECHO)
    send(page, "Rate me while the thread reloads")
    card = answer(page, ECHO)
    expect(card.locator('[data-field="status"]')).to_have_text("Complete")
    for _ in range(100):
        if thread.held:
            break
        page.wait_for_timeout(50)
    assert thread.held, "the thread was never asked for again"
    card.evaluate("card => { card.dataset.liveCard = 'yes'; }")
    card.locator("summary", has_text="Rate").click()
    card.locator(".stars label").nth(2).click()
    card.get_by_label("Comment").fill("Opened mid-reload")
    thread.release()

    expect(page.locator("#thread .answer[data-live-card]")).to_have_count(0)  # a new copy
    expect(card.locator("details.rate")).to_have_attribute("open", "")
    expect(card.get_by_label("3 stars")).to_be_checked()
    expect(card.get_by_label("Comment")).to_have_value("Opened mid-reload")


def test_the_thread_is_rendered_again_without_waiting_for_the_conversation_list(
    chat: Any, paced_demo: None
) -> None:
    """When an answer ends, the thread's new copy and the conversation list are asked for
    together. The list is held here: the thread still lands (it is not queued behind the list,
    where a later list refresh would replace it), and the next prompt goes out after it."""
    page = chat
    sidebar = HeldRequests(page, "**/chat/sidebar*")
    choose_models(page, ECHO)
    send(page, " ".join(f"first{n}" for n in range(12)))
    card = answer(page, ECHO)
    expect(card.locator('[data-field="status"]')).to_have_text("Streaming…")
    card.evaluate("card => { card.dataset.liveCard = 'yes'; }")
    expect(card.locator('[data-field="status"]')).to_have_text("Complete")
    expect(page.locator("#thread .answer[data-live-card]")).to_have_count(0)  # the new copy
    assert sidebar.held and sidebar.holding, "the conversation list was not held"
    expect(page.locator("#send")).to_be_enabled()

    send(page, "Second question")
    expect(answer(page, ECHO, turn=1).locator('[data-field="status"]')).to_have_text("Complete")
    expect(page.locator("#thread > li.turn")).to_have_count(2)
    sidebar.release()
    expect(page.locator("#conversation-list")).to_contain_text("first0")


def test_the_image_tool_generates_an_image(chat: Any, screenshot: Any) -> None:
    page = chat
    page.goto("/chat?tool=image")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Image"))
    expect(page.locator("#model-summary")).to_have_text("Models: Swatch")
    expect(page.locator("#tool-size")).to_be_visible()
    page.locator("#tool-n").fill("2")
    send(page, "a calm blue sea")

    card = answer(page, SWATCH)
    expect(card.locator('[data-field="status"]')).to_have_text("Complete")
    images = card.locator(".answer-media img")
    expect(images).to_have_count(2)
    expect(images.first).to_have_attribute("src", re.compile(r"^/api/media/[0-9a-f]{32}$"))
    wait_for_js(
        page,
        "() => [...document.querySelectorAll('.answer-media img')]"
        ".every(img => img.complete && img.naturalWidth === 64)",
    )
    expect(card.locator(".answer-stats")).to_contain_text("2 images")
    conversation = page.url.rsplit("/", 1)[-1]
    assert page.request.get(f"/api/conversations/{conversation}").json()["tool"] == "image"
    screenshot(page, "workspace-image-tool")


def generations(page: Any) -> dict[str, dict[str, Any]]:
    """The stored generation of each answer in the current conversation, by model."""
    conversation = page.url.rsplit("/", 1)[-1].split("?")[0]
    tree = page.request.get(f"/api/conversations/{conversation}").json()
    return {m["model"]: m["generation"] for m in tree["messages"] if m["role"] == "assistant"}


def test_per_model_options_are_sent_only_when_set(chat: Any) -> None:
    page = chat
    choose_models(page, ECHO, REVERSE)
    page.locator("#model-options summary").click()
    echo_options = page.locator(f'fieldset[data-options-for="{ECHO}"]')
    echo_options.get_by_label("Temperature").fill("0.5")
    echo_options.get_by_label("Max tokens").fill("4")
    echo_options.get_by_label("System prompt").fill("Be brief.")
    send(page, "one two three four five six seven eight nine ten")
    expect(answer(page, REVERSE).locator('[data-field="status"]')).to_have_text("Complete")
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Complete")
    stored = generations(page)
    assert stored[ECHO]["options"] == {"temperature": 0.5, "max_tokens": 4, "system": "Be brief."}
    # Nothing was set for Reverse (the server may still cap the answer's length).
    assert not {"temperature", "system"} & set(stored[REVERSE]["options"])
    assert stored[ECHO]["usage"]["output_tokens"] <= 4


def test_a_tool_sends_its_instructions_with_the_prompt(chat: Any) -> None:
    page = chat
    page.goto("/chat?tool=prompt_writer")
    expect(page.locator("#model-summary")).to_have_text("Models: Echo, Reverse")
    expect(page.get_by_text("Prompt writer adds its own instructions")).to_be_visible()
    send(page, "a poem about cats")
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Complete")
    expect(answer(page, REVERSE).locator('[data-field="status"]')).to_have_text("Complete")
    for generation in generations(page).values():
        assert generation["options"]["system"].startswith("You are an expert prompt engineer")
    conversation = page.url.rsplit("/", 1)[-1]
    assert page.request.get(f"/api/conversations/{conversation}").json()["tool"] == (
        "prompt_writer"
    )


def test_markup_in_a_prompt_shows_as_text_and_never_runs(chat: Any) -> None:
    page = chat
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    choose_models(page, ECHO)
    attack = '<script>alert("x")</script> <img src=x onerror=alert(1)> [link](javascript:alert(2))'
    send(page, attack)

    card = answer(page, ECHO)
    expect(card.locator('[data-field="status"]')).to_have_text("Complete")
    body = card.locator(".answer-body")
    expect(body).to_contain_text('<script>alert("x")</script>')
    expect(body).to_contain_text("<img src=x onerror=alert(1)>")
    assert body.locator("script, img, [onerror]").count() == 0
    assert body.locator('a[href^="javascript"]').count() == 0
    expect(page.locator("#thread .prompt-text").last).to_have_text(attack)
    page.reload()
    expect(answer(page, ECHO).locator(".answer-body")).to_contain_text("<script>")
    assert not dialogs


def tiny_png(width: int = 40, height: int = 30) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = (b"\x00" + bytes((20, 120, 200)) * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_an_attached_image_goes_with_the_prompt(chat: Any) -> None:
    page = chat
    choose_models(page, ECHO)
    picture = {"name": "chart.png", "mimeType": "image/png", "buffer": tiny_png()}
    page.locator("#attach").set_input_files(files=[picture])
    attached = page.get_by_role("list", name="Attached files")
    expect(attached).to_contain_text("chart.png")
    attached.get_by_role("button", name="Remove chart.png").click()
    expect(attached).to_be_hidden()
    page.locator("#attach").set_input_files(files=[picture])
    page.locator("#attach").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    expect(page.locator("#composer-alert")).to_contain_text("notes.txt cannot be attached")
    expect(attached.get_by_role("listitem")).to_have_count(1)

    send(page, "What is in this picture?")
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Complete")
    image = page.locator("#thread .prompt-media img")
    expect(image).to_have_attribute("src", re.compile(r"^/api/media/[0-9a-f]{32}$"))
    expect(image).to_have_attribute("alt", "Attached: chart.png")
    wait_for_js(
        page, "() => document.querySelector('#thread .prompt-media img').naturalWidth === 40"
    )
    expect(attached).to_be_hidden()  # sent, so no longer waiting in the composer


def test_editing_a_prompt_starts_a_branch(chat: Any) -> None:
    page = chat
    choose_models(page, ECHO)
    send(page, "Version one")
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Complete")
    page.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("textbox", name="Edited prompt")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("Version one")
    editor.fill("Version two")
    editor.press("Control+Enter")
    versions = page.get_by_role("navigation", name="Prompt versions")
    expect(versions).to_contain_text("2/2")
    expect(page.locator("#thread .prompt-text")).to_have_text("Version two")
    expect(answer(page, ECHO).locator(".answer-body")).to_contain_text("You asked: Version two")
    versions.get_by_role("link", name=re.compile("Previous")).click()
    expect(versions).to_contain_text("1/2")
    expect(page.locator("#thread .prompt-text")).to_have_text("Version one")
    expect(answer(page, ECHO).locator(".answer-body")).to_contain_text("You asked: Version one")


def test_keyboard_shortcuts_and_help(chat: Any) -> None:
    page = chat
    page.locator("body").press("?")
    help_box = page.locator("#ws-help")
    expect(help_box.get_by_role("heading", name="Keyboard shortcuts")).to_be_visible()
    expect(help_box).to_contain_text("Stop all answers")
    page.keyboard.press("Escape")
    expect(help_box.get_by_role("heading", name="Keyboard shortcuts")).to_be_hidden()

    choose_models(page, ECHO)
    send(page, "Shortcut test")
    expect(answer(page, ECHO).locator('[data-field="status"]')).to_have_text("Complete")
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"))
    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(re.compile(r"/chat$"))
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()


def test_the_sidebar_searches_conversations_by_title(chat: Any) -> None:
    page = chat
    for title in ("Gardening tips for spring", "Taxes explained"):
        response = page.request.post(
            "/api/conversations", data={"title": title}, headers={"X-CSRF-Token": csrf(page)}
        )
        assert response.status == 201
    page.reload()
    conversations = page.get_by_role("list", name="Your conversations")
    expect(conversations.get_by_role("link", name="Taxes explained")).to_be_visible()
    page.get_by_label("Search conversations by title").fill("garden")
    expect(conversations.get_by_role("link")).to_have_count(1)
    expect(conversations.get_by_role("link")).to_have_text("Gardening tips for spring")
    page.get_by_label("Search conversations by title").fill("no such thing")
    expect(conversations).to_contain_text("No conversation matches")
    page.get_by_label("Search conversations by title").fill("")
    conversations.get_by_role("link", name="Gardening tips for spring").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Gardening tips for spring")


def test_running_out_of_credits_says_so(
    browsing: Any, browser: Any, server: str, admin: Any, page_problems: Any
) -> None:
    broke = _account(browser, server, "Brook Broke", "brook@example.com")
    page = browsing.new_page(storage_state=broke)
    page.goto("/chat")
    admin_page = browsing.new_page(storage_state=admin.storage_state)
    admin_page.goto("/account")
    me = page.request.get("/api/me").json()
    available = balance(page)
    taken = admin_page.request.post(
        f"/api/admin/users/{me['id']}/credits",
        data={"amount": -available, "reason": "browser test"},
        headers={"X-CSRF-Token": csrf(admin_page)},
    )
    assert taken.status == 201, taken.text()
    page_problems.allow(r"status of 402")
    choose_models(page, ECHO)
    send(page, "Anything")
    alert = page.locator("#composer-alert")
    expect(alert).to_contain_text("Out of credits")
    expect(alert.get_by_role("link")).to_have_attribute("href", "/pricing")
    expect(page.locator("#thread > li.turn")).to_have_count(0)
    page.reload()
    expect(page.locator("#wallet-meter")).to_have_class(re.compile(r"\blow\b"))
    expect(page.locator("#wallet-low")).to_be_visible()


STACKED = """() => {
  const [first, second] = [...document.querySelectorAll('#thread .answer:not([hidden])')]
    .map(card => card.getBoundingClientRect());
  return first && second && first.height > 0 && second.top >= first.bottom - 1;
}"""


def test_the_workspace_fits_a_phone(browsing: Any, member: Any, screenshot: Any) -> None:
    page = browsing.new_page(phone=True, storage_state=member)
    page.goto("/chat")
    no_horizontal_scroll(page)
    choose_models(page, ECHO, REVERSE)
    send(page, "A phone-sized question with a_very_long_unbroken_word_" + "x" * 80)
    echo, reverse = answer(page, ECHO), answer(page, REVERSE)
    expect(reverse.locator('[data-field="status"]')).to_have_text("Complete")
    expect(echo.locator('[data-field="status"]')).to_have_text("Complete")
    wait_for_js(page, STACKED)  # answers stack on a phone
    no_horizontal_scroll(page)

    toggle = page.get_by_role("button", name="Conversations")
    expect(page.get_by_label("Search conversations by title")).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_label("Search conversations by title")).to_be_visible()
    no_horizontal_scroll(page)
    # The list is a drawer over the page now: it closes with its own button.
    page.locator("#ws-sidebar").get_by_role("button", name="Close").click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    page.locator("#model-summary").click()
    no_horizontal_scroll(page)
    page.locator("#model-summary").click()
    screenshot(page, "phone-workspace")
