"""Browser test of an organisation's conversations in a member's chat sidebar (issue #19, teams
item 4): the owner brings a conversation into the organisation's space; a member finds it on
their own chat page under "Shared in <organisation>" (with whose it is) and opens it, read-only.
Once removed from the organisation, their sidebar no longer lists it. axe finds nothing
serious."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_account
from tests.browser.test_accessibility import serious_violations
from tests.browser.test_account_security import mailed_link
from tests.browser.test_workspace import ECHO, answer, choose_models, send


def test_a_member_opens_a_space_conversation_from_the_chat_sidebar(
    browser: Any,
    fresh_server: str,
    browsing: Any,
    tmp_path: Path,
    screenshot: Any,
    page_problems: Any,
) -> None:
    outbox = tmp_path / "data" / "outbox"  # fresh_server's data dir
    olive = api_account(browser, fresh_server, "Olive Owner", "olive@example.com")
    mia = api_account(browser, fresh_server, "Mia Member", "mia@example.com")
    org_id = olive.post(browser, fresh_server, "/api/orgs", {"name": "Acme"})
    olive.post(browser, fresh_server, f"/api/orgs/{org_id}/invitations", {"email": mia.email})
    member = browsing.new_page(storage_state=mia.storage_state, base_url=fresh_server)
    member.goto(mailed_link(outbox, mia.email, "/organisations/invitations/accept"))
    member.get_by_role("button", name="Accept and join").click()
    expect(member.locator(".flash")).to_contain_text("Welcome to Acme")

    conversation = olive.post(browser, fresh_server, "/api/conversations", {"title": "Launch"})
    owner = browsing.new_page(storage_state=olive.storage_state, base_url=fresh_server)
    owner.goto(f"/chat/{conversation}")
    choose_models(owner, ECHO)
    send(owner, "What is left before the launch?")
    expect(answer(owner, ECHO).locator(".answer-body")).to_contain_text(
        "You asked: What is left before the launch?", timeout=15_000
    )
    expect(owner.locator('.answer[data-status="pending"]')).to_have_count(0, timeout=15_000)
    owner.goto(f"/organisations/{org_id}")
    owner.get_by_label("Bring one of your conversations in").select_option(value=conversation)
    owner.get_by_role("button", name="Move the conversation in").click()
    expect(owner.locator(".flash")).to_contain_text("Moved into the space")

    member.goto("/chat")
    sidebar = member.locator("#ws-sidebar")
    expect(sidebar.get_by_role("heading", name="Shared in Acme")).to_be_visible()
    shared = sidebar.locator(f'[data-space-conversation="{conversation}"]')
    expect(shared).to_contain_text("Olive Owner")
    expect(shared.locator(".conv-menu")).to_have_count(0)  # someone else's: no actions
    screenshot(member, "org-space-sidebar")
    assert serious_violations(member) == []
    shared.get_by_role("link").click()
    expect(member).to_have_url(f"{fresh_server}/shared/conversations/{conversation}")
    expect(member.get_by_role("heading", level=1)).to_have_text("Launch")
    expect(member.locator("main")).to_contain_text("A chat shared by Olive Owner (read-only)")
    expect(member.locator("main")).to_contain_text("You asked: What is left before the launch?")

    members = owner.request.get(f"/api/orgs/{org_id}/members").json()["members"]
    mia_id = next(m["user_id"] for m in members if m["email"] == mia.email)
    removed = owner.request.delete(
        f"/api/orgs/{org_id}/members/{mia_id}", headers={"X-CSRF-Token": olive.csrf}
    )
    assert removed.status == 204, removed.text()
    member.goto("/chat")
    expect(member.locator("#ws-sidebar .space-group")).to_have_count(0)
    expect(member.locator(f'[data-space-conversation="{conversation}"]')).to_have_count(0)
