"""Browser tests: an admin finds and blocks a user and reads the audit log; a user edits their
profile and uploads an avatar."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import api_account, confirm, wait_for_js


def png(size: tuple[int, int] = (400, 300)) -> bytes:
    image = Image.new("RGB", size, (30, 120, 200))
    for x in range(size[0]):
        image.putpixel((x, (x * 3) % size[1]), (255, 220, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_an_admin_blocks_a_user_and_finds_it_in_the_audit_log(
    browser: Any, server: str, browsing: Any, admin_page: Any, screenshot: Any
) -> None:
    user = api_account(browser, server, "Bram Block", "bram@example.com")
    user_page = browsing.new_page(storage_state=user.storage_state)
    user_page.goto("/account")
    expect(user_page.get_by_role("heading", level=1)).to_have_text("Your account")

    page = admin_page
    page.goto("/admin/plugins")
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Users").click()
    expect(page).to_have_url(f"{server}/admin/users")
    page.get_by_role("searchbox", name="Search").fill("bram")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#users tbody tr")
    expect(rows).to_have_count(1)
    screenshot(page, "admin-users")
    rows.get_by_role("link", name="bram@example.com").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bram Block")
    bram_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#user-events")).to_contain_text("Logged in")

    page.get_by_role("button", name="Block user").click()
    confirm(page, "Block user")
    expect(page.locator(".flash")).to_contain_text("bram@example.com: blocked")
    expect(page.locator("#user-status")).to_have_text("blocked")
    expect(page.get_by_role("button", name="Unblock user")).to_be_visible()
    screenshot(page, "admin-user-blocked")

    # The blocked user's next request finds them logged out.
    user_page.reload()
    expect(user_page).to_have_url(f"{server}/login?next=/account")

    page.get_by_role("navigation", name="Admin console").get_by_role(
        "link", name="Audit log"
    ).click()
    # Other tests on this shared server block users too; the target narrows it to Bram.
    page.get_by_label("Action").select_option("user.blocked")
    page.get_by_label("Target id").fill(bram_id)
    page.get_by_role("button", name="Filter").click()
    table = page.locator("#audit")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("Account blocked")
    expect(table).to_contain_text("ada@example.com")
    page.get_by_label("Action").select_option("auth.")
    page.get_by_label("Target id").fill("")
    page.get_by_label("Actor").fill("bram@example.com")
    page.get_by_role("button", name="Filter").click()
    expect(table).to_contain_text("Logged in")
    expect(table).to_contain_text("Account created")
    screenshot(page, "admin-audit")

    page.goto("/admin/users?q=bram")
    page.get_by_role("link", name="bram@example.com").click()
    page.get_by_role("button", name="Unblock user").click()
    expect(page.locator("#user-status")).to_have_text("active")


def test_a_user_edits_their_profile_and_uploads_an_avatar(
    browser: Any, server: str, browsing: Any, screenshot: Any
) -> None:
    account = api_account(browser, server, "Avery", "avery@example.com")
    page = browsing.new_page(storage_state=account.storage_state)
    page.goto("/account")
    expect(page.locator(".avatar-initial")).to_have_text("A")

    page.get_by_label("Your name").fill("Avery Stone")
    page.locator("#profile-timezone").select_option("Europe/Paris")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".flash")).to_contain_text("Your profile was saved.")
    expect(page.locator("#profile-name")).to_have_text("Avery Stone")
    expect(page.locator("dl.details")).to_contain_text("Europe/Paris")

    page.locator("#avatar-file").set_input_files(
        {"name": "me.png", "mimeType": "image/png", "buffer": png()}
    )
    page.get_by_role("button", name="Upload avatar").click()
    expect(page.locator(".flash")).to_contain_text("Your avatar was updated.")
    avatar = page.locator("#avatar-image")
    expect(avatar).to_be_visible()
    wait_for_js(page, "document.querySelector('#avatar-image').naturalWidth === 256")

    # A file that only pretends to be an image is refused (422), and the avatar stays.
    browsing.problems.allow(r"status of 422 .*/account/avatar")
    page.locator("#avatar-file").set_input_files(
        {"name": "evil.png", "mimeType": "image/png", "buffer": b"<html><script></script>"}
    )
    page.get_by_role("button", name="Upload avatar").click()
    expect(page.locator("#avatar-error")).to_contain_text("not a PNG, JPEG, WebP or GIF")
    expect(page.locator("#avatar-image")).to_be_visible()

    events = page.locator("#security-events-table")
    expect(events).to_contain_text("Avatar changed")
    expect(events).to_contain_text("Profile changed")
    screenshot(page, "account-profile")

    phone = browsing.new_page(phone=True, storage_state=account.storage_state)
    phone.goto("/account#profile")
    expect(phone.locator("#avatar-image")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, width
    screenshot(phone, "account-profile-phone")
