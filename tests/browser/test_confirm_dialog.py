"""Confirmations (data-confirm) in the page's own styled dialog instead of the browser's
confirm(): the question, a confirm button named after the action (red when it destroys
something), Cancel focused first, Tab kept inside, Escape cancels; without JavaScript the form
simply submits."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.test_accessibility import serious_violations


def create_key(page: Any, name: str) -> None:
    page.goto("/account")
    page.get_by_label("Key name").fill(name)
    page.get_by_role("button", name="Create key").click()
    expect(page.locator(".key-reveal")).to_contain_text(name)


def test_a_revoke_is_confirmed_in_a_styled_dialog(admin_page: Any, screenshot: Any) -> None:
    page = admin_page
    native: list[str] = []
    page.on("dialog", lambda dialog: (native.append(dialog.message), dialog.dismiss()))
    create_key(page, "confirm me")
    revoke = (
        page.get_by_role("row").filter(has_text="confirm me").get_by_role("button", name="Revoke")
    )

    revoke.click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_accessible_name(
        "Revoke the key “confirm me”? Programs using it stop working."
    )
    confirm = dialog.get_by_role("button", name="Revoke")
    cancel = dialog.get_by_role("button", name="Cancel")
    expect(confirm).to_have_class("danger")
    expect(cancel).to_be_focused()  # Enter alone never destroys anything
    screenshot(page, "confirm-dialog")
    assert not serious_violations(page)

    # Focus stays inside the dialog.
    page.keyboard.press("Tab")
    expect(confirm).to_be_focused()
    page.keyboard.press("Tab")
    expect(cancel).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(confirm).to_be_focused()

    # Escape cancels: nothing is sent and focus is back on the row's button.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(revoke).to_be_focused()
    page.wait_for_timeout(300)  # a submit would have navigated by now
    expect(page.get_by_role("row").filter(has_text="confirm me")).to_have_count(1)

    # Cancel does the same.
    revoke.click()
    cancel.click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("row").filter(has_text="confirm me")).to_have_count(1)

    revoke.click()
    confirm.click()
    expect(page.get_by_role("status")).to_have_text("The key was revoked.")
    expect(page.get_by_role("row").filter(has_text="confirm me")).to_have_count(0)
    assert not native  # the browser's own confirm() never opened


def test_without_javascript_the_form_submits_unasked(browsing: Any, admin: Any) -> None:
    page = browsing.new_page(storage_state=admin.storage_state, javascript=False)
    create_key(page, "no script")
    page.get_by_role("row").filter(has_text="no script").get_by_role(
        "button", name="Revoke"
    ).click()
    expect(page.get_by_role("status")).to_have_text("The key was revoked.")
    expect(page.get_by_role("row").filter(has_text="no script")).to_have_count(0)
