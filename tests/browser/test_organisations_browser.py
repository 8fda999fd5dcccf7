"""Browser test of organisations (issue #19): the owner creates one on /organisations, adds
credits from their own wallet and invites a colleague by email; the colleague opens the mailed
link, accepts, switches the chat to the organisation's wallet and gets an answer paid by it; the
owner sees the colleague's spending on the usage page (with its CSV), removes them, and the
colleague's chat is back on their personal wallet at the next page load. The pages fit a 390px
phone and axe finds nothing serious."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_account
from tests.browser.test_accessibility import serious_violations
from tests.browser.test_account_security import mailed_link
from tests.browser.test_billing_console_browser import no_horizontal_scroll
from tests.browser.test_workspace import ECHO, answer, choose_models, send


def test_an_owner_invites_a_colleague_who_chats_on_the_shared_wallet(
    browser: Any,
    fresh_server: str,
    browsing: Any,
    tmp_path: Path,
    screenshot: Any,
    page_problems: Any,
) -> None:
    outbox = tmp_path / "data" / "outbox"  # fresh_server's data dir
    owner_account = api_account(browser, fresh_server, "Olive Owner", "olive@example.com")
    colleague = api_account(browser, fresh_server, "Casey Colleague", "casey@example.com")
    owner = browsing.new_page(storage_state=owner_account.storage_state, base_url=fresh_server)

    owner.goto("/account")
    owner.get_by_role("link", name="Organisations").click()
    expect(owner.get_by_role("heading", level=1)).to_have_text("Organisations")
    expect(owner.locator("#no-organisations")).to_be_visible()
    owner.get_by_label("Name").fill("Acme Research")
    owner.get_by_role("button", name="Create").click()
    expect(owner.locator(".flash")).to_contain_text("Organisation created")
    expect(owner.locator("#organisation-name")).to_have_text("Acme Research")
    expect(owner.locator("#my-role")).to_have_text("owner")
    organisation_path = owner.evaluate("location.pathname")

    owner.get_by_label("Add credits from your own wallet").fill("500")
    owner.get_by_role("button", name="Add credits").click()
    expect(owner.locator("#organisation-wallet")).to_contain_text("500 credits available")
    owner.get_by_label("Email address").fill("casey@example.com")
    owner.get_by_role("button", name="Invite").click()
    expect(owner.locator(".flash")).to_contain_text("Invitation sent to casey@example.com")
    expect(owner.locator("#invitations")).to_contain_text("casey@example.com")

    link = mailed_link(outbox, "casey@example.com", "/organisations/invitations/accept")
    casey = browsing.new_page(storage_state=colleague.storage_state, base_url=fresh_server)
    casey.goto(link)
    expect(casey.locator("#invitation-summary")).to_contain_text("Acme Research")
    casey.get_by_role("button", name="Accept and join").click()
    expect(casey.locator(".flash")).to_contain_text("Welcome to Acme Research")
    expect(casey.locator("#my-role")).to_have_text("member")
    expect(casey.locator("#usage-link")).to_have_count(0)  # members do not see usage

    casey.get_by_role("button", name="Chat with this wallet").click()
    expect(casey.locator("#ws-workspace")).to_contain_text("Paid by Acme Research")
    personal_before = casey.request.get("/api/wallet").json()["balance"]
    choose_models(casey, ECHO)
    send(casey, "Hello from the team")
    expect(answer(casey, ECHO).locator(".answer-body")).to_contain_text(
        "You asked: Hello from the team", timeout=15_000
    )
    expect(casey.locator('.answer[data-status="pending"]')).to_have_count(0, timeout=15_000)
    assert casey.request.get("/api/wallet").json()["balance"] == personal_before
    organisation_id = organisation_path.rsplit("/", 1)[1]
    shared = casey.request.get(f"/api/orgs/{organisation_id}/wallet").json()
    assert shared["balance"] < 500

    owner.goto(organisation_path)
    owner.get_by_role("link", name="Usage per member").click()
    row = owner.locator("#usage tr", has_text="casey@example.com")
    # A busy CI machine (4 workers beside their servers and browsers) may take more than the
    # default 5 s for the two page loads.
    expect(row.locator(".usage-credits")).to_have_text(str(500 - shared["balance"]), timeout=15_000)
    csv_link = owner.locator("#usage-csv")
    month = owner.locator("#usage-month").input_value()
    expect(csv_link).to_have_attribute(
        "href", f"/api/orgs/{organisation_id}/usage.csv?month={month}"
    )
    downloaded = owner.request.get(str(csv_link.get_attribute("href")))
    assert downloaded.ok and "casey@example.com" in downloaded.text()
    screenshot(owner, "organisation-usage")

    found: dict[str, list[str]] = {}
    for path in ("/organisations", organisation_path, f"{organisation_path}/usage"):
        owner.goto(path)
        if problems := serious_violations(owner):
            found[path] = problems
    assert found == {}, json.dumps(found, indent=1)
    phone = browsing.new_page(
        phone=True, storage_state=owner_account.storage_state, base_url=fresh_server
    )
    phone.goto(organisation_path)
    expect(phone.locator("#members")).to_be_visible()
    no_horizontal_scroll(phone)
    screenshot(phone, "organisation-phone")

    owner.goto(organisation_path)
    owner.get_by_role("button", name="Remove Casey Colleague").click()
    expect(owner.locator(".flash")).to_contain_text("Member removed")
    expect(owner.locator("#members")).not_to_contain_text("casey@example.com")

    casey.goto("/chat")
    expect(casey.get_by_role("heading", name="New chat")).to_be_visible()
    expect(casey.locator("#ws-workspace")).to_have_count(0)
    page_problems.allow(r"status of 404 .*/organisations/")  # the removed member, below
    casey.goto(organisation_path)
    expect(casey.get_by_role("heading", level=1)).not_to_have_text("Acme Research")
