"""The model picker on /chat: search, capability and price filters, favourites that stay with
the person, models that can't be used tucked away (with a way to fix it for an admin), and the
last models picked remembered for the next new chat.

The shared server has the demo provider (usable) and the built-in providers without keys.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_account

PASSWORD = "correct horse battery staple"
ECHO, REVERSE, SWATCH = "demo/echo", "demo/reverse", "demo/swatch"


@pytest.fixture(scope="module")
def picker_user(browser: Any, server: str, admin: Any) -> Any:
    # ``admin`` first: the shared server's first account becomes its administrator.
    email = f"pia.{secrets.token_hex(3)}@example.com"
    return api_account(browser, server, "Pia Picker", email).storage_state


def open_picker(page: Any) -> Any:
    page.goto("/chat")
    page.locator("#model-summary").click()
    return page.locator("#model-picker")


def visible_models(picker: Any) -> list[str]:
    return [str(r.get_attribute("data-model")) for r in picker.locator(".model-row:visible").all()]


def test_search_and_filters_narrow_the_list_and_unusable_models_wait_behind_a_button(
    browsing: Any, picker_user: Any, screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=picker_user)
    picker = open_picker(page)
    shown = visible_models(picker)
    # Only usable models at first; the rest are counted and one click away.
    assert shown and all(m.startswith("demo/") for m in shown), shown
    note = picker.locator("#model-unusable-note")
    expect(note).to_contain_text("can't be used yet")
    expect(note).to_contain_text("an administrator has to set them up")
    screenshot(page, "model-picker")

    picker.get_by_label("Search models").fill("revers")
    assert visible_models(picker) == [REVERSE]
    picker.get_by_label("Search models").fill("")
    picker.get_by_label("Capability").select_option(label="Image")
    assert SWATCH in visible_models(picker)
    assert ECHO not in visible_models(picker)
    picker.get_by_label("Capability").select_option("")
    picker.get_by_label("Price").select_option(label="Free")
    expect(picker.locator("#model-filter-empty")).to_be_visible()
    picker.get_by_role("button", name="Clear filters").click()
    assert ECHO in visible_models(picker)

    picker.get_by_role("button", name="Show them").click()
    needs_key = picker.locator(".model-row.unavailable:visible")
    expect(needs_key.first).to_be_visible()
    expect(needs_key.first.locator(".model-reason")).to_contain_text("ask an administrator")
    expect(needs_key.first.locator('input[name="models"]')).to_be_disabled()


def test_a_star_makes_a_favourite_that_comes_first_and_stays(
    browsing: Any, picker_user: Any
) -> None:
    page = browsing.new_page(storage_state=picker_user)
    picker = open_picker(page)
    star = picker.get_by_role("button", name="Favourite: Reverse")
    expect(star).to_have_attribute("aria-pressed", "false")
    with page.expect_response("**/api/me/model-favourites") as response:
        star.click()
    assert response.value.ok
    expect(star).to_have_attribute("aria-pressed", "true")
    picker.get_by_label("Favourites").check()
    assert visible_models(picker) == [REVERSE]

    picker = open_picker(page)  # a new page load: the server remembers, and lists it first
    expect(picker.get_by_role("button", name="Favourite: Reverse")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert visible_models(picker)[0] == REVERSE


def test_the_last_models_picked_are_picked_again_in_a_new_chat(
    browsing: Any, picker_user: Any
) -> None:
    page = browsing.new_page(storage_state=picker_user)
    picker = open_picker(page)
    for box in picker.locator('input[name="models"]:not([disabled])').all():
        box.set_checked(box.get_attribute("value") in (ECHO, SWATCH))
    expect(page.locator("#model-summary")).to_have_text("Models: Echo, Swatch")
    page.goto("/chat")
    expect(page.locator("#model-summary")).to_have_text("Models: Echo, Swatch")


def test_an_admin_gets_a_link_to_add_the_missing_key(browsing: Any, admin: Any) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    picker = open_picker(page)
    note = picker.locator("#model-unusable-note")
    expect(note.get_by_role("link", name="configure providers")).to_have_attribute(
        "href", "/admin/plugins"
    )
    expect(note).not_to_contain_text("administrator has to")
    picker.get_by_role("button", name="Show them").click()
    link = picker.locator(".model-row.unavailable:visible .model-configure").first
    expect(link).to_be_visible()
    href = str(link.get_attribute("href"))
    assert href.startswith("/admin/plugins/"), href
    expect(picker.locator(".model-row.unavailable .model-reason").first).to_have_text(
        "Needs an API key"
    )
    link.click()
    expect(page).to_have_url(f"{browsing.base_url}{href}")
