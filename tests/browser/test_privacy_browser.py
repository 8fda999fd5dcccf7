"""Privacy in the browser: downloading your data while the page follows the export's progress,
deleting your account (and being unable to log in after), the legal pages from the footer, and
their admin editor with its preview."""

from __future__ import annotations

import json
import re
import zipfile
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import confirm

PASSWORD = "correct horse battery staple"


def test_a_person_downloads_all_their_data(
    browsing: Any, admin: Any, sign_up: Any, screenshot: Any, tmp_path: Any
) -> None:
    # ``admin``: the shared server's first account (so the newcomer is a plain user).
    page = browsing.new_page()
    sign_up(page, "Pia Export", "pia@example.com")
    page.goto("/account")
    page.get_by_role("link", name="Download your data or delete your account").click()
    expect(page.get_by_role("heading", name="Privacy", exact=True)).to_be_visible()
    expect(page.locator("#exports")).to_contain_text("You have not exported your data yet.")

    page.get_by_role("button", name="Request my data").click()
    exports = page.locator("#exports")
    # One row per export (times read "just now" in the browser's zone, so rows are found by place).
    row = exports.locator("tbody tr")
    expect(row).to_have_count(1)  # htmx put the new export in place, no reload
    expect(page).to_have_url(re.compile(r"/account/privacy$"))
    # The list polls itself every 2 s until the zip is ready.
    expect(row).to_contain_text("Ready", timeout=15_000)
    expect(exports).not_to_have_attribute("hx-trigger", re.compile("every"))
    screenshot(page, "privacy-export-ready")

    with page.expect_download() as info:
        row.get_by_role("button", name="Download").click()
    download = info.value
    assert re.fullmatch(r"multinotes-data-\d{8}-\d{4}\.zip", download.suggested_filename)
    path = tmp_path / "export.zip"
    download.save_as(path)
    with zipfile.ZipFile(path) as archive:
        profile = json.loads(archive.read("profile.json"))
        assert profile["email"] == "pia@example.com" and "password_hash" not in profile
        assert "README.txt" in archive.namelist()

    # Asking again while nothing runs starts a new export, listed first.
    page.get_by_role("button", name="Request my data").click()
    expect(exports.locator("tbody tr")).to_have_count(2)
    expect(exports.get_by_role("row").filter(has_text="Ready")).to_have_count(2, timeout=15_000)


def test_a_person_deletes_their_account_and_can_no_longer_log_in(
    browsing: Any, admin: Any, sign_up: Any, screenshot: Any, page_problems: Any
) -> None:
    # The wrong password and the refused login answer 422 and 401, which the console reports.
    page_problems.allow(r"status of 422 .*/account/privacy/delete")
    page_problems.allow(r"status of 401 .*/login")
    page = browsing.new_page()
    sign_up(page, "Quinn Leaving", "quinn@example.com")
    page.goto("/account/privacy")

    page.get_by_label("Your password").fill("not my password at all")
    page.get_by_label("I want my account and all its data deleted.").check()
    page.get_by_role("button", name="Delete my account").click()
    confirm(page, "Delete my account")
    expect(page.locator("#delete-error")).to_have_text("The password is wrong.")
    expect(page.get_by_label("Your password")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_label("I want my account and all its data deleted.").check()
    screenshot(page, "privacy-delete")
    page.get_by_role("button", name="Delete my account").click()
    dialogs = [confirm(page, "Delete my account")]

    expect(page).to_have_url(re.compile(r"/login$"))
    assert dialogs and "Delete your account?" in dialogs[0]
    expect(page.get_by_role("status")).to_contain_text("will be deleted on")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)  # logged out
    assert page.request.get("/api/me").status == 401

    page.get_by_label("Email").fill("quinn@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")


def test_the_legal_pages_are_linked_from_every_footer(page: Any) -> None:
    page.goto("/login")
    footer = page.locator("footer")
    footer.get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", name="Privacy policy")).to_be_visible()
    expect(page.locator("article.legal")).to_contain_text("Download your data")

    page.locator("footer").get_by_role("link", name="Cookies").click()
    expect(page.get_by_role("heading", name="Cookie policy")).to_be_visible()
    expect(page.locator("article.legal")).to_contain_text("mn_session")
    expect(page.locator("article.legal")).to_contain_text("no advertising, analytics or")

    page.locator("footer").get_by_role("link", name="Terms").click()
    expect(page.get_by_role("heading", name="Terms of service")).to_be_visible()


def test_an_admin_edits_a_legal_page_with_a_preview(admin_page: Any, screenshot: Any) -> None:
    page = admin_page
    page.goto("/admin/legal?doc=terms")
    expect(page.get_by_role("heading", name="Legal pages")).to_be_visible()
    source = page.get_by_label(re.compile("Terms of service"))
    source.fill("# House rules\n\nBe **kind** to the models.\n\n<script>alert(1)</script>")
    page.get_by_role("button", name="Preview").click()  # htmx: no page load
    preview = page.locator("#legal-preview")
    expect(preview.locator("strong")).to_have_text("kind")
    expect(preview).to_contain_text("<script>alert(1)</script>")  # shown as text, never run
    expect(source).to_have_value(re.compile("House rules"))
    screenshot(page, "admin-legal-preview")

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("was saved")
    page.goto("/legal/terms")
    expect(page.get_by_role("heading", name="House rules")).to_be_visible()

    # An empty text brings the default back.
    page.goto("/admin/legal?doc=terms")
    page.get_by_label(re.compile("Terms of service")).fill("")
    page.get_by_role("button", name="Save").click()
    page.goto("/legal/terms")
    expect(page.get_by_role("heading", name="Terms of service")).to_be_visible()
