"""Feature flags and experiments in a real browser (issue #19 item 7): an administrator finds
Flags in the console's nav, creates a flag for one person's email (a bad name is refused beside
its field), and that person has it; then switches it off from its page. An experiment is created
and started from its page on a phone; a user asks for their variant and converts, and the
results table shows them in their variant's row."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, Browsing, api_account
from tests.browser.test_accessibility import serious_violations


def my_flags(browser: Any, server: str, account: Account) -> list[str]:
    context = browser.new_context(base_url=server, storage_state=account.storage_state)
    try:
        answer = context.request.get("/api/me/flags")
        assert answer.ok, answer.text()
        return list(answer.json()["flags"])
    finally:
        context.close()


def test_an_administrator_rolls_a_flag_out_to_one_person(
    browsing: Browsing, browser: Any, server: str, admin_page: Any, screenshot: Any
) -> None:
    tag = secrets.token_hex(3)
    tester = api_account(browser, server, "Tess Tester", f"tess.{tag}@example.com")
    other = api_account(browser, server, "Otto Other", f"otto.{tag}@example.com")
    name = f"beta_{tag}"

    browsing.problems.allow(r"status of 422 .*/admin/flags")  # the refused form, below
    admin = admin_page
    admin.goto("/admin/plugins")
    admin.get_by_role("navigation", name="Admin console").get_by_role("link", name="Flags").click()
    expect(admin.get_by_role("heading", name="Feature flags")).to_be_visible()

    # A bad name is refused beside its field, and what was typed stays.
    admin.get_by_label("Name").fill("Bad Name")
    admin.get_by_label("Description").fill("The new editor")
    admin.get_by_role("button", name="Create flag").click()
    expect(admin.locator("#flag-name")).to_have_attribute("aria-invalid", "true")
    expect(admin.locator("#flag-name-error")).to_be_visible()
    expect(admin.get_by_label("Description")).to_have_value("The new editor")

    admin.get_by_label("Name").fill(name)
    admin.get_by_role("switch", name="On").check()
    admin.get_by_label("Rollout").fill("0")
    admin.get_by_label("Always on for").fill(tester.email.upper())
    admin.get_by_role("button", name="Create flag").click()
    expect(admin.locator(".flash")).to_contain_text(f"Flag “{name}” created")
    row = admin.locator(f"#flag-{name}")
    expect(row).to_contain_text("on")
    expect(row).to_contain_text("0%")
    assert serious_violations(admin) == []
    screenshot(admin, "admin-flags")

    assert name in my_flags(browser, server, tester)
    assert name not in my_flags(browser, server, other)

    # Off from its page: off for everyone, the allow-list too.
    row.get_by_role("link", name=name).click()
    expect(admin.get_by_role("heading", name=f"Flag {name}")).to_be_visible()
    expect(admin.get_by_label("Always on for")).to_have_value(tester.email.lower())
    admin.get_by_role("switch", name="On").uncheck()
    admin.get_by_role("button", name="Save").click()
    expect(admin.locator(".flash")).to_contain_text("saved")
    assert name not in my_flags(browser, server, tester)


def test_an_experiment_shows_who_converted_in_which_variant_on_a_phone(
    browsing: Browsing, browser: Any, server: str, admin: Account, screenshot: Any
) -> None:
    tag = secrets.token_hex(3)
    name = f"save_button_{tag}"
    person = api_account(browser, server, "Pia Person", f"pia.{tag}@example.com")

    phone = browsing.new_page(phone=True, storage_state=admin.storage_state)
    phone.goto("/admin/experiments")
    phone.get_by_label("Name", exact=True).fill(name)
    phone.get_by_label("Variants").fill("control 1\ngreen 1")
    phone.get_by_label("Conversion event").select_option("note.created")
    phone.get_by_role("button", name="Create experiment").click()
    expect(phone.locator(".flash")).to_contain_text(f"Experiment “{name}” created")
    expect(phone.locator("#experiment-status")).to_contain_text("draft")
    phone.get_by_role("button", name="Start").click()
    expect(phone.locator("#experiment-status")).to_contain_text("running")

    # The person's front-end code asks for their variant, then they write a note.
    context = browser.new_context(base_url=server, storage_state=person.storage_state)
    try:
        headers = {"X-CSRF-Token": person.csrf}
        asked = context.request.post(f"/api/me/experiments/{name}", headers=headers)
        assert asked.ok, asked.text()
        variant = asked.json()["variant"]
        assert variant in ("control", "green")
        note = {"title": "First note", "content": "Hello"}
        assert context.request.post("/api/documents", headers=headers, data=note).status == 201
    finally:
        context.close()

    phone.reload()
    results = phone.locator("#experiment-results")
    expect(results.locator(f"#variant-{variant}")).to_contain_text("100.0%")
    other = "green" if variant == "control" else "control"
    expect(results.locator(f"#variant-{other}")).to_contain_text("0.0%")
    # Phone-friendly: the page does not scroll sideways.
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= phone.viewport_size["width"], width
    assert serious_violations(phone) == []
    screenshot(phone, "admin-experiment-phone")

    # Its design is fixed now; stopping it is one button.
    expect(phone.locator("#exp-variants")).to_have_count(0)
    phone.get_by_role("button", name="Stop").click()
    expect(phone.locator("#experiment-status")).to_contain_text("stopped")
