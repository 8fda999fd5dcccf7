"""/chat as an app shell: a conversation sidebar grouped by date, where each conversation can be
pinned, renamed (in a styled dialog), archived and deleted (with Undo); keyboard shortcuts in the
"?" help; no page footer; on a phone the sidebar is a drawer and nothing scrolls sideways.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import wait_for_js

PASSWORD = "correct horse battery staple"


@pytest.fixture
def sidebar_user(browser: Any, server: str, admin: Any) -> Any:
    email = f"sid.{secrets.token_hex(3)}@example.com"
    context = browser.new_context(base_url=server)
    try:
        assert (
            context.request.post(
                "/api/auth/register",
                data={"name": "Sid Sidebar", "email": email, "password": PASSWORD},
            ).status
            == 201
        )
        assert context.request.post(
            "/api/auth/login", data={"email": email, "password": PASSWORD}
        ).ok
        return context.storage_state()
    finally:
        context.close()


def csrf(page: Any) -> str:
    return str(page.locator('meta[name="csrf-token"]').get_attribute("content"))


def make_conversations(page: Any, *titles: str) -> dict[str, str]:
    page.goto("/chat")
    ids = {}
    for title in titles:
        response = page.request.post(
            "/api/conversations", data={"title": title}, headers={"X-CSRF-Token": csrf(page)}
        )
        assert response.status == 201
        ids[title] = response.json()["id"]
    page.goto("/chat")
    return ids


def item(page: Any, title: str) -> Any:
    return page.locator("#conversation-list li.conversation").filter(
        has=page.get_by_role("link", name=title, exact=True)
    )


def menu_action(page: Any, title: str, action: str) -> None:
    item(page, title).get_by_label(f"Actions: {title}").click()
    item(page, title).get_by_role("button", name=action, exact=True).click()


def test_pin_rename_archive_and_delete_with_undo(
    browsing: Any, sidebar_user: Any, screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=sidebar_user)
    ids = make_conversations(page, "Alpha trip", "Beta budget", "Gamma garden")
    sidebar = page.locator("#conversation-list")
    expect(sidebar.get_by_role("heading", name="Today")).to_be_visible()
    expect(page.locator("body > footer")).to_have_count(0)  # an app page: no footer

    # Pin: it moves under "Pinned", at the top.
    menu_action(page, "Alpha trip", "Pin")
    expect(sidebar.get_by_role("heading", name="Pinned")).to_be_visible()
    expect(sidebar.locator("li.conversation").first).to_have_attribute("data-title", "Alpha trip")
    expect(item(page, "Alpha trip")).to_have_attribute("data-pinned", "true")

    # Rename, in the page's own dialog (no browser prompt).
    menu_action(page, "Gamma garden", "Rename")
    dialog = page.get_by_role("dialog", name="Rename chat")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Title").fill("Gamma greenhouse")
    dialog.get_by_role("button", name="Rename").click()
    expect(dialog).to_be_hidden()
    expect(sidebar.get_by_role("link", name="Gamma greenhouse")).to_be_visible()
    page.reload()
    expect(sidebar.get_by_role("link", name="Gamma greenhouse")).to_be_visible()

    # Archive: it leaves the list, and the archived list has it.
    menu_action(page, "Beta budget", "Archive")
    expect(sidebar.get_by_role("link", name="Beta budget")).to_have_count(0)
    page.get_by_role("button", name="Archived chats").click()
    expect(sidebar.get_by_role("link", name="Beta budget")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Gamma greenhouse")).to_have_count(0)
    menu_action(page, "Beta budget", "Unarchive")
    expect(sidebar).to_contain_text("No archived conversations.")
    page.get_by_role("button", name="Archived chats").click()
    expect(sidebar.get_by_role("link", name="Beta budget")).to_be_visible()

    # Delete offers Undo; undone, it is back; deleted again and left alone, it is gone.
    menu_action(page, "Gamma greenhouse", "Delete")
    expect(sidebar.get_by_role("link", name="Gamma greenhouse")).to_be_hidden()
    toast = page.locator("#ws-toast")
    expect(toast).to_contain_text("Deleted “Gamma greenhouse”")
    screenshot(page, "chat-sidebar-undo")
    toast.get_by_role("button", name="Undo").click()
    expect(sidebar.get_by_role("link", name="Gamma greenhouse")).to_be_visible()
    page.wait_for_timeout(300)
    assert page.request.get(f"/api/conversations/{ids['Gamma garden']}").status == 200

    menu_action(page, "Gamma greenhouse", "Delete")
    with page.expect_response(
        lambda r: r.request.method == "DELETE" and ids["Gamma garden"] in r.url, timeout=15_000
    ) as deleted:
        pass
    assert deleted.value.status == 204
    assert page.request.get(f"/api/conversations/{ids['Gamma garden']}").status == 404


def test_a_delete_waiting_for_undo_still_happens_when_the_page_is_left(
    browsing: Any, sidebar_user: Any
) -> None:
    page = browsing.new_page(storage_state=sidebar_user)
    ids = make_conversations(page, "Leaving soon")
    # The next page replays the delete in case the browser dropped the keepalive request; when
    # it was not dropped, the replay finds the conversation already gone.
    browsing.problems.allow(rf"status of 404 .*/api/conversations/{ids['Leaving soon']}\]")
    menu_action(page, "Leaving soon", "Delete")
    expect(page.locator("#ws-toast")).to_be_visible()
    page.goto("/notes")
    for _ in range(50):
        if page.request.get(f"/api/conversations/{ids['Leaving soon']}").status == 404:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the delete was lost when the page was left")


def test_a_delete_the_browser_dropped_on_leaving_is_sent_by_the_next_page(
    browsing: Any, sidebar_user: Any
) -> None:
    page = browsing.new_page(storage_state=sidebar_user)
    ids = make_conversations(page, "Dropped on the way out")
    url = f"/api/conversations/{ids['Dropped on the way out']}"
    # What sendOnLeave leaves behind when the keepalive request never reached the server.
    page.evaluate(
        "url => localStorage.setItem("
        "'multinotes.onLeave', JSON.stringify([{method: 'DELETE', url}]))",
        url,
    )
    page.goto("/notes")
    for _ in range(50):
        if page.request.get(url).status == 404:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the next page did not send the dropped delete")
    wait_for_js(page, "localStorage.getItem('multinotes.onLeave') === null")  # forgotten


def test_a_conversation_is_shared_from_its_menu_by_a_public_link(
    browsing: Any, sidebar_user: Any
) -> None:
    page = browsing.new_page(storage_state=sidebar_user)
    title = f"Trip plan {secrets.token_hex(2)}"
    make_conversations(page, title)
    item(page, title).get_by_label(f"Actions: {title}").click()
    item(page, title).get_by_role("button", name="Share", exact=True).click()
    dialog = page.locator("dialog#share-dialog")
    expect(dialog.get_by_role("heading", name=f"Share “{title}”")).to_be_visible()
    dialog.get_by_text("Create a public link").click()
    dialog.get_by_role("button", name="Create link").click()
    link = page.locator("#share-new-link")
    expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]{40,}$"))

    visitor = browsing.new_page()  # nobody logged in
    visitor.goto(link.input_value())
    expect(visitor.get_by_role("heading", name=title)).to_be_visible()


def test_shortcuts_are_listed_and_slash_focuses_the_prompt(
    browsing: Any, sidebar_user: Any
) -> None:
    page = browsing.new_page(storage_state=sidebar_user)
    page.goto("/chat")
    page.locator("body").press("?")
    help_box = page.locator("#ws-help")
    for shortcut in ("New chat", "Focus the prompt", "Stop all answers"):
        expect(help_box).to_contain_text(shortcut)
    page.keyboard.press("Escape")
    page.locator("body").press("/")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("")
    # Buttons carry icons of the vendored set.
    mask = page.locator("#ws-new .icon").evaluate(
        "el => getComputedStyle(el).maskImage || getComputedStyle(el).webkitMaskImage"
    )
    assert "vendor/lucide/" in mask, mask


def test_on_a_phone_the_sidebar_is_a_drawer_and_nothing_scrolls_sideways(
    browsing: Any, sidebar_user: Any, screenshot: Any
) -> None:
    page = browsing.new_page(phone=True, storage_state=sidebar_user)
    make_conversations(page, "Phone chat one", "Phone chat two")
    sidebar = page.locator("#ws-sidebar")
    expect(sidebar).to_be_hidden()
    page.get_by_role("button", name="Conversations").click()
    expect(sidebar).to_be_visible()
    box = sidebar.bounding_box()
    assert box is not None and box["x"] <= 1 and box["height"] >= 800, box  # over the page
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    menu_action(page, "Phone chat two", "Pin")
    expect(page.locator("#conversation-list").get_by_role("heading", name="Pinned")).to_be_visible()
    screenshot(page, "chat-sidebar-phone-drawer")
    sidebar.get_by_role("button", name="Close").click()
    expect(sidebar).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # The composer sits at the bottom of the window.
    composer = page.locator("#composer").bounding_box()
    assert composer is not None and composer["y"] + composer["height"] <= 844 + 1, composer
