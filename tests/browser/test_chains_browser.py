"""Chains in a real browser (issue #18 item 3): someone builds a three-step chain in the editor
(adding steps with "Add a step"), uploads a PDF on the chain's page (made here with fpdf2) and
runs the chain on its text; the run page streams the steps one after another on the demo
model and ends with every answer shown. On a phone-sized screen, nothing overflows sideways."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from playwright.sync_api import expect

from tests.browser.conftest import Browsing, api_account
from tests.browser.test_accessibility import serious_violations

REPORT = "Tidewater Lighthouse logged 412 visitors in March."


def make_pdf(path: Path) -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 10, REPORT)
    pdf.output(str(path))
    return path


# The session's server may start within this test (migrations on a busy machine take a minute).
@pytest.mark.timeout(300)
def test_a_three_step_chain_runs_from_an_uploaded_pdf(
    browsing: Browsing, browser: Any, server: str, screenshot: Any, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    account = api_account(browser, server, "Chen Chain", f"chen.{tag}@example.com")
    page = browsing.new_page(storage_state=account.storage_state)
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto("/chains")
    page.get_by_role("button", name="New chain").click()
    page.get_by_label("Title").fill("Lighthouse digest")
    prompts = [
        "Pull out the numbers: {{input}}",
        "Summarise in one line: {{step1}}",
        "Write a headline for: {{step2}}",
    ]
    add = page.get_by_role("button", name="Add a step")
    for index, prompt in enumerate(prompts):
        if index:
            add.click()
        page.locator(f"#step-{index}-model").select_option("demo/echo")
        page.locator(f"#step-{index}-prompt").fill(prompt)
    page.get_by_role("button", name="Save chain").click()
    expect(page.locator("h1")).to_have_text("Lighthouse digest")
    expect(page.locator(".chain-outline > li")).to_have_count(3)

    page.locator("#run-upload").set_input_files(str(make_pdf(tmp_path / "report.pdf")))
    expect(page.locator("#run-upload-status")).to_contain_text("report.pdf is uploaded")
    expect(page.locator("#run-file option:checked")).to_have_text("report.pdf")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Run chain").click()

    page.wait_for_url("**/chains/runs/*")
    steps = page.locator(".chain-run-step")
    expect(steps).to_have_count(3)
    # The steps stream one after another: the first answers before the last starts.
    expect(steps.nth(0)).to_have_attribute("data-step-status", "complete", timeout=20_000)
    expect(steps.nth(2)).to_have_attribute("data-step-status", "complete", timeout=30_000)
    expect(page.locator("#run-status")).to_contain_text("Finished", timeout=10_000)
    for index in range(3):
        expect(steps.nth(index).locator("[data-answer]")).to_contain_text(REPORT)
    expect(steps.nth(1).locator("[data-answer]")).to_contain_text("Summarise in one line")
    expect(page.get_by_role("button", name="Re-run from here")).to_have_count(3)
    screenshot(page, "chain-run-phone")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert serious_violations(page) == []
