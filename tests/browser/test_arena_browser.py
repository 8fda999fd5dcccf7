"""A blind comparison in the browser with the demo models: the answers stream as A and B with
nothing in any response naming a model, the vote reveals who wrote what, and the leaderboard
puts the winner first. Also on a 390px phone."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.browser.conftest import api_account

#: What would give a model away (the demo models' ids and names).
REVEALING = ("demo/echo", "demo/reverse", "Echo", "Reverse")
PROMPT = "alpha beta gamma"
READABLE = ("text/html", "application/json", "text/event-stream")


@pytest.fixture
def judge(browser: Any, server: str, admin: Any) -> Any:
    # ``admin`` first: the shared server's first account becomes its administrator.
    email = f"jude.{secrets.token_hex(3)}@example.com"
    return api_account(browser, server, "Jude Judge", email).storage_state


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_a_blind_run_hides_the_models_until_the_vote(
    browsing: Any, judge: Any, screenshot: Any, phone: bool
) -> None:
    page = browsing.new_page(storage_state=judge, phone=phone)
    page.goto("/comparisons")
    # The start page may list the catalogue (to pick models); from the run on nothing may.
    seen: list[Any] = []
    streamed: list[str] = []

    def through(route: Any) -> None:
        # The stream is over before the page moves on: read it here, as the browser gets it.
        response = route.fetch()
        streamed.append(response.text())
        route.fulfill(response=response)

    page.route("**/api/comparisons", through)
    page.on("response", lambda response: seen.append(response))
    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_label("How many models (drawn at random)").select_option("2")
    page.get_by_role("button", name="Compare blind").click()
    page.wait_for_url("**/comparisons/*")
    expect(page.get_by_role("heading", name="Answer A")).to_be_visible()
    expect(page.get_by_role("heading", name="Answer B")).to_be_visible()
    screenshot(page, f"arena-blind-{'phone' if phone else 'desktop'}")

    assert len(streamed) == 1 and "event: comparison" in streamed[0]
    bodies = [("/api/comparisons", streamed[0])]
    for response in seen:
        kind = response.headers.get("content-type", "")
        if response.status < 300 and kind.startswith(READABLE[:2]):
            try:
                bodies.append((response.url, response.text()))
            except PlaywrightError:
                # A late fragment of the start page (its notification badge) that the browser
                # dropped on leaving it: the start page may list the catalogue anyway.
                continue
    assert any("/comparisons/" in url for url, _ in bodies), [u for u, _ in bodies]
    for url, body in bodies:
        for word in REVEALING:
            assert word not in body, f"{word!r} in {url} before the vote"
    if not phone:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280

    # The reversed prompt is the Reverse model's: vote for it.
    answers = {label: page.locator(f"#answer-{label} .arena-text").inner_text() for label in "AB"}
    winner = next(label for label, text in answers.items() if text.strip() == "gamma beta alpha")
    page.get_by_label(winner, exact=True).check()
    page.get_by_label("What was the prompt about?").select_option("writing")
    page.get_by_role("button", name="Vote and reveal the models").click()
    expect(page.locator("#arena-revealed")).to_be_visible()
    expect(page.locator(f"#answer-{winner} .arena-model")).to_have_text("Reverse")
    other = "B" if winner == "A" else "A"
    expect(page.locator(f"#answer-{other} .arena-model")).to_have_text("Echo")
    if phone:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_role("link", name="See the leaderboard").click()
    page.get_by_label("Votes").select_option("mine")
    page.get_by_role("button", name="Show").click()
    first = page.locator("#leaderboard tbody tr").first
    expect(first).to_have_attribute("data-model", "demo/reverse")
    expect(page.get_by_role("table")).to_be_visible()
    if phone:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
