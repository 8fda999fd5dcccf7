"""Presence in real browsers (issue #20 item 3): two people in two browser contexts open a note
one shared with the other and see each other's avatar; when one types the other reads who is
typing; when one leaves the page, the avatar is gone within seconds. The same on a shared
folder and a shared conversation. Someone the note is not shared with sees none of it."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, Browsing, api_account
from tests.browser.test_accessibility import serious_violations


def people(browser: Any, server: str) -> tuple[Account, Account, Account]:
    tag = secrets.token_hex(3)
    return (
        api_account(browser, server, "Olga Owner", f"olga.{tag}@example.com"),
        api_account(browser, server, "Carl Colleague", f"carl.{tag}@example.com"),
        api_account(browser, server, "Sam Stranger", f"sam.{tag}@example.com"),
    )


def post(page: Any, path: str, data: dict[str, Any]) -> dict[str, Any]:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(path, data=data, headers={"X-CSRF-Token": str(token)})
    assert response.status == 201, response.text()
    return dict(response.json())


def share(page: Any, object_type: str, object_id: str, email: str, role: str) -> None:
    post(
        page,
        "/api/shares",
        {"object_type": object_type, "object_id": object_id, "email": email, "role": role},
    )


def live(page: Any, path: str) -> None:
    page.goto(path)
    expect(page.locator("html")).to_have_attribute("data-live", "open")


def test_two_people_on_a_shared_note_see_each_other_typing_and_leaving(
    browsing: Browsing, browser: Any, server: str, screenshot: Any, page_problems: Any
) -> None:
    owner, colleague, stranger = people(browser, server)
    olga = browsing.new_page(storage_state=owner.storage_state)
    olga.goto("/notes")
    note = post(olga, "/api/documents", {"title": "Launch plan", "content": "# Launch"})["id"]
    share(olga, "document", note, colleague.email, "editor")

    live(olga, f"/notes/{note}")
    presence = olga.locator("#presence")
    expect(presence).to_be_hidden()  # nobody else yet

    carl = browsing.new_page(storage_state=colleague.storage_state)
    live(carl, f"/notes/{note}")
    carl_there = presence.locator("li.presence-person")
    expect(carl_there).to_have_count(1)
    expect(carl_there).to_have_attribute("title", "Carl Colleague")
    expect(carl_there.locator(".presence-initials")).to_have_text("CC")
    expect(presence).to_be_visible()
    expect(olga.locator("#live-announcer")).to_have_text("Carl Colleague opened this note")
    olga_there = carl.locator("#presence li.presence-person")
    expect(olga_there).to_have_attribute("title", "Olga Owner")
    expect(olga_there.locator(".presence-initials")).to_have_text("OO")

    # Carl types: Olga reads it, and it stops by itself a few seconds after he stops.
    carl.locator("#note-content").press_sequentially(" and more", delay=30)
    expect(olga.locator("#presence-typing")).to_have_text("Carl Colleague is typing…")
    expect(carl_there).to_have_class("presence-person typing")
    screenshot(olga, "presence-typing")
    assert serious_violations(olga) == []
    expect(olga.locator("#presence-typing")).to_have_text("", timeout=10_000)
    expect(carl_there).to_have_class("presence-person")

    # Sam has nothing shared: the note is not found, and he is never listed.
    sam = browsing.new_page(storage_state=stranger.storage_state)
    page_problems.allow(f"404 .*/notes/{note}")
    response = sam.goto(f"/notes/{note}")
    assert response is not None and response.status == 404
    expect(carl.locator("#presence li.presence-person")).to_have_count(1)

    # Carl goes elsewhere: his avatar is gone from Olga's page within seconds.
    carl.goto("/notes")
    expect(carl_there).to_have_count(0, timeout=5_000)
    expect(presence).to_be_hidden()
    expect(olga.locator("#live-announcer")).to_have_text("Carl Colleague left this note")

    # He comes back and closes the tab: gone as quickly.
    live(carl, f"/notes/{note}")
    expect(carl_there).to_have_count(1)
    carl.close()
    expect(carl_there).to_have_count(0, timeout=5_000)


def test_presence_on_a_shared_folder_and_a_shared_conversation(
    browsing: Browsing, browser: Any, server: str, screenshot: Any
) -> None:
    owner, colleague, _ = people(browser, server)
    olga = browsing.new_page(storage_state=owner.storage_state)
    olga.goto("/notes")
    folder = post(olga, "/api/folders", {"name": "Team room"})["id"]
    share(olga, "folder", folder, colleague.email, "viewer")
    conversation = post(olga, "/api/conversations", {"title": "Colours"})["id"]
    share(olga, "conversation", conversation, colleague.email, "viewer")
    carl = browsing.new_page(storage_state=colleague.storage_state)

    for own, shared in (
        (f"/notes?folder={folder}", f"/shared/folders/{folder}"),
        (f"/chat/{conversation}", f"/shared/conversations/{conversation}"),
    ):
        live(olga, own)
        live(carl, shared)
        expect(olga.locator("#presence li.presence-person")).to_have_attribute(
            "title", "Carl Colleague"
        )
        expect(carl.locator("#presence li.presence-person")).to_have_attribute(
            "title", "Olga Owner"
        )
        assert olga.locator("#presence").is_visible()
        screenshot(olga, "presence-" + own.split("/")[1].split("?")[0])
    # A viewer's page of a conversation says nothing about typing.
    expect(carl.locator("#presence-typing")).to_have_text("")
    carl.goto("/shared")
    expect(olga.locator("#presence li.presence-person")).to_have_count(0, timeout=5_000)


def test_a_browser_without_websockets_shows_and_sends_presence_over_sse(
    browsing: Browsing, browser: Any, server: str
) -> None:
    owner, colleague, _ = people(browser, server)
    olga = browsing.new_page(storage_state=owner.storage_state)
    olga.goto("/notes")
    note = post(olga, "/api/documents", {"title": "Blocked network", "content": "x"})["id"]
    share(olga, "document", note, colleague.email, "editor")
    live(olga, f"/notes/{note}")

    carl = browsing.new_page(storage_state=colleague.storage_state)
    carl.context.add_init_script("delete window.WebSocket;")  # a proxy that blocks them
    with carl.expect_request("**/api/live/presence") as joined:
        live(carl, f"/notes/{note}")
    assert "presence.join" in str(joined.value.post_data)
    expect(carl.locator("#presence li.presence-person")).to_have_attribute("title", "Olga Owner")
    carl_there = olga.locator("#presence li.presence-person")
    expect(carl_there).to_have_attribute("title", "Carl Colleague")

    carl.locator("#note-content").press_sequentially(" more", delay=30)
    expect(olga.locator("#presence-typing")).to_have_text("Carl Colleague is typing…")
    carl.close()
    expect(carl_there).to_have_count(0, timeout=5_000)
