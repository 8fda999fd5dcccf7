"""Batch runs in the browser with the demo models: a batch started from the form with pasted CSV
rows moves its progress bar on its own (no reload) until every row is done, shows the results
table and downloads as XLSX; another is cancelled from its page; a CSV without the template's
column is refused on the form, naming the column. Also on a 390px phone."""

from __future__ import annotations

import io
import re
import secrets
from typing import Any

import openpyxl
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Account, api_account
from tests.browser.test_accessibility import serious_violations


@pytest.fixture
def writer(browser: Any, server: str, admin: Any) -> Account:
    # ``admin`` first: the shared server's first account becomes its administrator.
    email = f"wren.{secrets.token_hex(3)}@example.com"
    return api_account(browser, server, "Wren Writer", email)


def make_template(browser: Any, server: str, account: Account) -> str:
    return account.post(
        browser,
        server,
        "/api/templates",
        {
            "title": f"Shout {secrets.token_hex(2)}",
            "body": "Say {{thing}} loudly",
            "variables": [{"name": "thing"}],
        },
    )


def rows(count: int) -> str:
    return "thing,note\n" + "".join(f"item {n},n{n}\n" for n in range(1, count + 1))


def start_batch(page: Any, template_id: str, csv_text: str, concurrency: int = 1) -> None:
    page.goto("/batches")
    page.get_by_label("Template").select_option(value=template_id)
    page.get_by_label("Echo").check()
    page.get_by_label("…or paste rows as CSV").fill(csv_text)
    page.get_by_label("Rows at the same time").fill(str(concurrency))
    page.get_by_role("button", name="Start the batch").click()


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_a_batch_runs_with_a_live_progress_bar_and_downloads_as_xlsx(
    browsing: Any, browser: Any, server: str, writer: Account, screenshot: Any, phone: bool
) -> None:
    template_id = make_template(browser, server, writer)
    page = browsing.new_page(storage_state=writer.storage_state, phone=phone)
    start_batch(page, template_id, rows(12))
    page.wait_for_url(re.compile(r"/batches/[0-9a-f]+$"))
    counts = page.locator("#batch-counts")
    bar = page.get_by_role("progressbar")
    expect(bar).to_be_visible()
    expect(bar).to_have_attribute("max", "12")
    first_seen = counts.inner_text()
    assert "remaining" in first_seen and "0 remaining" not in first_seen, first_seen
    expect(page.locator("#batch-cancel")).to_be_visible()
    screenshot(page, f"batch-running-{'phone' if phone else 'desktop'}")

    # No reload: htmx and the live channel bring the rows in until none is left.
    expect(counts).to_contain_text("12 done", timeout=60_000)
    expect(counts).to_contain_text("0 remaining")
    expect(bar).to_have_attribute("value", "12")
    expect(page.locator("#batch-state")).to_have_text("finished")
    expect(page.locator("#batch-cancel")).to_have_count(0)
    table = page.locator("#batch-results tbody tr")
    expect(table).to_have_count(12)
    expect(table.first).to_contain_text("You asked: Say item 1 loudly")
    screenshot(page, f"batch-finished-{'phone' if phone else 'desktop'}")
    assert serious_violations(page) == []
    if phone:  # the table scrolls inside its region; the page itself does not scroll sideways
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download XLSX").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    with open(download.path(), "rb") as handle:
        book = openpyxl.load_workbook(io.BytesIO(handle.read()))
    lines = list(book.active.iter_rows(values_only=True))
    assert lines[0][:4] == ("row", "thing", "note", "status") and len(lines) == 13
    assert lines[12][1] == "item 12" and lines[12][3] == "done"
    assert "Say item 12 loudly" in lines[12][lines[0].index("demo/echo answer")]


def test_a_batch_is_cancelled_from_its_page(
    browsing: Any, browser: Any, server: str, writer: Account
) -> None:
    template_id = make_template(browser, server, writer)
    page = browsing.new_page(storage_state=writer.storage_state)
    start_batch(page, template_id, rows(40))
    page.wait_for_url(re.compile(r"/batches/[0-9a-f]+$"))
    page.get_by_role("button", name="Cancel the batch").click()
    expect(page.locator(".flash")).to_have_text("The batch was cancelled.")
    expect(page.locator("#batch-state")).to_have_text("cancelled")
    expect(page.locator("#batch-counts")).to_contain_text("cancelled")
    expect(page.locator("#batch-cancel")).to_have_count(0)
    batches = page.request.get("/api/batches").json()["batches"]
    cancelled = next(b for b in batches if b["status"] == "cancelled")
    assert cancelled["progress"]["cancelled"] >= 30


def test_a_csv_without_the_templates_column_is_refused_on_the_form(
    browsing: Any, browser: Any, server: str, writer: Account, page_problems: Any
) -> None:
    page_problems.allow(r"status of 422 .*/batches")  # the refused form, below
    template_id = make_template(browser, server, writer)
    page = browsing.new_page(storage_state=writer.storage_state)
    start_batch(page, template_id, "other\nvalue\n")
    error = page.locator("#batch-error")
    expect(error).to_contain_text("The template needs the column thing.")
    expect(error).to_contain_text("columns.thing")
    # What was typed is kept for the next try.
    expect(page.get_by_label("…or paste rows as CSV")).to_have_value("other\nvalue")
    expect(page.get_by_label("Template")).to_have_value(template_id)
