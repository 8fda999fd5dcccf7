"""API keys on the account page: created, shown once, listed by prefix, revoked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import confirm


def test_an_api_key_is_shown_once_listed_by_prefix_and_revoked(
    admin_page: Any, screenshot: Any
) -> None:
    page = admin_page
    page.goto("/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    page.get_by_label("Key name").fill("laptop script")
    page.get_by_role("button", name="Create key").click()

    reveal = page.locator(".key-reveal")
    expect(reveal).to_contain_text("laptop script")
    expect(reveal).to_contain_text("will not be shown again")
    key = page.locator("#new-key").inner_text().strip()
    assert len(key) >= 20 and " " not in key
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    reveal.get_by_role("button", name="Copy").click()
    expect(reveal.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    screenshot(page, "account-new-key")

    row = page.get_by_role("row").filter(has_text="laptop script")
    expect(row).to_have_count(1)
    prefix = row.locator("code.masked").inner_text().rstrip("…")
    assert prefix and key.startswith(prefix) and len(prefix) < len(key)
    expect(row).not_to_contain_text(key)  # the list shows only the prefix

    # The key works as a bearer token.
    me = page.request.get("/api/me", headers={"Authorization": f"Bearer {key}"})
    assert me.ok and me.json()["email"] == "ada@example.com"

    # Reloading never shows the key again.
    page.goto("/account")
    expect(page.locator(".key-reveal")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(key)

    row = page.get_by_role("row").filter(has_text="laptop script")
    row.get_by_role("button", name="Revoke").click()
    question = confirm(page, "Revoke")

    expect(page.get_by_role("status")).to_have_text("The key was revoked.")
    assert "laptop script" in question
    expect(page.get_by_role("row").filter(has_text="laptop script")).to_have_count(0)
    revoked = page.request.get("/api/me", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status == 401


def test_dismissing_the_revoke_dialog_keeps_the_key(admin_page: Any) -> None:
    page = admin_page
    page.goto("/account")
    page.get_by_label("Key name").fill("keep me")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator(".key-reveal")).to_contain_text("keep me")

    page.get_by_role("row").filter(has_text="keep me").get_by_role("button", name="Revoke").click()
    confirm(page, "Cancel")
    page.wait_for_timeout(300)  # a submit would have navigated by now
    expect(page).to_have_url(re.compile(r"/account/keys$"))
    expect(page.get_by_role("row").filter(has_text="keep me")).to_have_count(1)


def test_a_key_is_created_with_scopes_and_an_expiry_shown_with_its_last_use_and_narrowed(
    admin_page: Any, screenshot: Any
) -> None:
    page = admin_page
    page.goto("/account")
    page.get_by_label("Key name").fill("read and write notes")
    scopes = page.get_by_role("group", name="What the key may do")
    expect(scopes.get_by_role("checkbox", name=re.compile(r"^read"))).to_be_checked()
    expect(scopes.get_by_role("checkbox", name=re.compile(r"^admin"))).not_to_be_checked()
    scopes.get_by_role("checkbox", name=re.compile(r"^chat")).uncheck()
    page.get_by_label("Expires").select_option(label="In 30 days")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()

    row = page.get_by_role("row").filter(has_text="read and write notes")
    expect(row.locator("[data-label=Scopes]")).to_have_text("read, notes")
    # The expiry is a moment in the reader's zone: the date in 30 days, not a UTC stamp.
    in_30_days = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y")
    expect(row.locator("[data-label=Expires] time")).to_contain_text(in_30_days)
    expect(row.locator("[data-label=Expires]")).not_to_contain_text("UTC")
    expect(row.locator("[data-label='Last used']")).to_have_text("never")

    headers = {"Authorization": f"Bearer {key}"}
    assert page.request.get("/api/me", headers=headers).ok
    made = page.request.post("/api/folders", headers=headers, data={"name": "From a script"})
    assert made.status == 201
    chat = page.request.post("/api/conversations", headers=headers, data={"title": "no"})
    assert chat.status == 403 and chat.json()["error"]["code"] == "insufficient_scope"

    page.goto("/account")
    row = page.get_by_role("row").filter(has_text="read and write notes")
    expect(row.locator("[data-label='Last used'] time")).to_have_text(
        re.compile(r"^(just now|\d+ min ago)$")
    )
    row.get_by_text("Narrow").click()
    expect(row.get_by_role("checkbox")).to_have_count(2)  # only what the key has: never widen
    row.get_by_role("checkbox", name="notes").uncheck()
    screenshot(page, "account-narrow-key")
    row.get_by_role("button", name="Save scopes").click()

    expect(page.get_by_role("status")).to_contain_text("was narrowed")
    row = page.get_by_role("row").filter(has_text="read and write notes")
    expect(row.locator("[data-label=Scopes]")).to_have_text("read")
    refused = page.request.post("/api/folders", headers=headers, data={"name": "Not any more"})
    assert refused.status == 403
