"""Times on the pages are the reader's: relative while recent ("just now", "5 min ago") with the
exact time on hover, in the browser's time zone, or the one chosen in the profile. And the
profile offers no interface-language setting that would change nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect


def _context(browser: Any, server: str, account: Any, zone: str) -> Any:
    return browser.new_context(
        base_url=server, storage_state=account.storage_state, timezone_id=zone
    )


def _note(page: Any, title: str) -> str:
    page.goto("/notes")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    made = page.request.post(
        "/api/documents", data={"title": title, "content": "x"}, headers={"X-CSRF-Token": token}
    )
    assert made.ok, made.text()
    return str(made.json()["id"])


def _profile_timezone(page: Any, zone: str) -> None:
    page.goto("/account")
    page.locator("#profile-timezone").select_option(zone)
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".flash")).to_contain_text("Your profile was saved")


def test_times_are_relative_and_in_the_readers_time_zone(
    browser: Any, server: str, admin: Any, page_problems: Any
) -> None:
    context = _context(browser, server, admin, "America/New_York")
    try:
        context.on("page", page_problems.watch)
        page = context.new_page()
        _profile_timezone(page, "")  # "This browser's time zone"
        document_id = _note(page, "Timed note")
        page.goto("/notes")
        stamp = page.locator(f"#item-{document_id} time")
        expect(stamp).to_have_text(re.compile(r"^(just now|\d+ min ago)$"))
        title = stamp.get_attribute("title") or ""
        now_there = datetime.now(UTC).astimezone(ZoneInfo("America/New_York"))
        assert now_there.strftime("%H:") in title or (now_there.strftime("%-I:") in title), (
            f"not New York time: {title!r}"
        )

        page.goto(f"/notes/{document_id}")
        expect(page.locator("#note-updated time")).to_have_text(
            re.compile(r"^(just now|\d+ min ago)$")
        )

        # A time zone chosen in the profile wins over the browser's.
        _profile_timezone(page, "Asia/Tokyo")
        page.goto("/notes")
        title = page.locator(f"#item-{document_id} time").get_attribute("title") or ""
        now_tokyo = datetime.now(UTC).astimezone(ZoneInfo("Asia/Tokyo"))
        assert now_tokyo.strftime("%H:") in title or now_tokyo.strftime("%-I:") in title, title
        _profile_timezone(page, "")
    finally:
        context.close()
    assert not page_problems.unexpected(), page_problems.unexpected()


def test_the_profile_has_no_language_setting_that_does_nothing(admin_page: Any) -> None:
    page = admin_page
    page.goto("/account")
    expect(page.locator("#profile-timezone")).to_be_visible()
    expect(page.get_by_label("Language")).to_have_count(0)
    expect(page.locator("#profile-language")).to_have_count(0)


def test_times_on_the_account_admin_and_files_pages_are_shown_the_same_way(
    admin_page: Any,
) -> None:
    page = admin_page
    recent = re.compile(r"^(just now|\d+ min ago|\d+ h ago)$")
    for path, where in [
        ("/account", "#security-events time"),
        ("/admin/users", "td[data-label='Joined'] time"),
        ("/admin/audit", "time"),
    ]:
        page.goto(path)
        stamp = page.locator(where).first
        expect(stamp).to_have_text(recent)
        assert str(datetime.now(UTC).year) in (stamp.get_attribute("title") or ""), path


def test_no_table_on_the_account_usage_or_console_pages_is_left_in_utc(
    browser: Any, server: str, admin: Any
) -> None:
    """Sessions, API keys, the ledger and the console's tables show their moments like every
    other page (relative, the reader's zone): no cell says UTC, and no heading claims it."""
    context = _context(browser, server, admin, "Asia/Tokyo")
    try:
        page = context.new_page()
        page.goto("/account")
        page.get_by_label("Key name").fill("times key")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator(".key-reveal")).to_be_visible()
        token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
        me = page.request.get("/api/me").json()
        granted = page.request.post(
            f"/api/admin/users/{me['id']}/credits",
            data={"amount": 5, "reason": "a line in the ledger"},
            headers={"X-CSRF-Token": token},
        )
        assert granted.ok, granted.text()
        for path in [
            "/account",
            "/usage",
            "/admin/users",
            "/admin/audit",
            f"/admin/credits?email={admin.email}",
        ]:
            page.goto(path)
            tables = page.locator("main table")
            expect(tables.first, path).to_be_visible()
            text = " ".join(tables.all_inner_texts())
            assert "UTC" not in text, f"{path}: {text[:500]}"
            stamps = page.locator("main table time")
            assert stamps.count() > 0, path
            assert "Asia/Tokyo" in (stamps.first.get_attribute("title") or ""), path
    finally:
        context.close()
