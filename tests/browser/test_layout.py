"""The frame around every page: the top navigation on a desktop (one row, nothing moving once
the page has loaded) and on a phone (a compact menu, no sideways scrolling), the composer that
stays in reach in a long chat, and the notes' bulk-action bar that waits for a selection."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

MAIN_PAGES = ["/chat", "/notes", "/files", "/search", "/shared", "/usage", "/account"]

# Layout shifts recorded from the first paint on (buffered), settled after the page's own
# requests (the notifications badge, htmx swaps) have come back.
LAYOUT_SHIFT = """() => new Promise(resolve => {
    let total = 0;
    new PerformanceObserver(list => {
        for (const entry of list.getEntries()) {
            if (!entry.hadRecentInput) total += entry.value;
        }
    }).observe({type: "layout-shift", buffered: true});
    setTimeout(() => resolve(total), 1500);
})"""


def nav_rows(page: Any) -> int:
    """How many rows the top navigation's items sit on."""
    tops = page.evaluate(
        """() => [...document.querySelectorAll('nav.topnav > ul > li')]
            .filter(li => li.offsetParent !== null)
            .map(li => Math.round(li.getBoundingClientRect().top))"""
    )
    rows: list[int] = []
    for top in sorted(tops):
        if not rows or top - rows[-1] > 10:
            rows.append(top)
    return len(rows)


@pytest.mark.parametrize("width", [1024, 1280, 1440])
def test_an_admins_top_navigation_is_one_row_that_does_not_move(
    browsing: Any, admin: Any, width: int
) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    page.set_viewport_size({"width": width, "height": 860})
    for path in ["/chat", "/notes", "/admin/plugins"]:
        page.goto(path)
        shift = page.evaluate(LAYOUT_SHIFT)
        assert shift < 0.01, f"{path} at {width} px: cumulative layout shift {shift:.3f}"
        assert nav_rows(page) == 1, f"the navigation wraps on {path} at {width} px"
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Notifications")).to_be_visible()


def test_on_a_phone_nothing_moves_after_load(browsing: Any, admin: Any) -> None:
    """The phone's compact menu and the bell's count settle without moving the page (CLS)."""
    page = browsing.new_page(phone=True, storage_state=admin.storage_state)
    for path in ["/chat", "/notes", "/account"]:
        page.goto(path)
        shift = page.evaluate(LAYOUT_SHIFT)
        assert shift < 0.01, f"{path} on a phone: cumulative layout shift {shift:.3f}"


def no_horizontal_scroll(page: Any, where: str) -> None:
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"] + 1, f"{where} scrolls sideways: {widths}"


@pytest.mark.parametrize("path", MAIN_PAGES)
def test_on_a_phone_the_main_pages_do_not_scroll_sideways(
    browsing: Any, admin: Any, path: str, screenshot: Any
) -> None:
    page = browsing.new_page(phone=True, storage_state=admin.storage_state)
    page.goto(path)
    no_horizontal_scroll(page, path)
    nav = page.get_by_role("navigation", name="Main")
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('nav.topnav ul')]
            .filter(ul => ul.offsetParent !== null && ul.scrollWidth > ul.clientWidth + 1)
            .length"""
    )
    assert overflowing == 0, "a row of the navigation scrolls sideways"
    screenshot(page, "phone-layout" + path.replace("/", "-"))
    expect(nav).to_be_visible()


def test_on_a_phone_account_and_log_out_are_in_the_menu(browsing: Any, admin: Any) -> None:
    page = browsing.new_page(phone=True, storage_state=admin.storage_state)
    page.goto("/notes")
    nav = page.get_by_role("navigation", name="Main")
    menu = nav.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(nav.get_by_role("link", name="Account", exact=True)).to_be_hidden()
    header_height = page.locator("body > header").bounding_box()["height"]
    assert header_height < 120, f"the closed menu takes {header_height} px"

    menu.tap()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for name in ["Chat", "Notes", "Files", "Search", "Shared", "Usage", "Account", "Plugins"]:
        link = nav.get_by_role("link", name=name, exact=True)
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 391 and box["height"] >= 24, name
    expect(nav.get_by_role("button", name="Log out")).to_be_visible()
    no_horizontal_scroll(page, "the open menu")
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()

    menu.tap()
    nav.get_by_role("link", name="Account", exact=True).tap()
    expect(page).to_have_url(f"{browsing.base_url}/account")


def test_on_a_phone_the_composer_stays_in_view_in_a_long_chat(
    browsing: Any, admin: Any, screenshot: Any
) -> None:
    page = browsing.new_page(phone=True, storage_state=admin.storage_state)
    page.goto("/chat")
    for turn in range(3):
        page.locator("#prompt").fill(f"Turn {turn}: " + "a long line of words to echo back " * 12)
        page.locator("#prompt").press("Control+Enter")
        expect(page.locator(".turn")).to_have_count(turn + 1, timeout=20_000)
        done = page.locator(".turn [data-status='complete']")
        expect(done).to_have_count(turn + 1, timeout=30_000)
        # An answer reads Complete a moment before its stream ends; Send comes back then (a
        # Ctrl+Enter before that is not sent, and the prompt stays in the box).
        expect(page.locator("#send")).to_be_enabled(timeout=15_000)
    page.evaluate("window.scrollTo(0, 0)")
    composer = page.locator("#prompt")
    expect(composer).to_be_in_viewport()
    page.evaluate("window.scrollTo(0, document.body.scrollHeight / 2)")
    expect(composer).to_be_in_viewport()
    screenshot(page, "phone-chat-three-turns")
    no_horizontal_scroll(page, "a three-turn chat")


def test_the_bulk_action_bar_on_notes_waits_for_a_selection(browsing: Any, admin: Any) -> None:
    page = browsing.new_page(phone=True, storage_state=admin.storage_state)
    page.goto("/notes")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    made = page.request.post(
        "/api/documents",
        data={"title": "Bulk bar", "content": ""},
        headers={"X-CSRF-Token": token or ""},
    )
    assert made.ok, made.text()
    page.goto("/notes")
    actions = page.locator("#bulk-form .bulk-actions")
    expect(page.locator("#select-all")).to_be_visible()
    expect(actions.first).to_be_hidden()
    expect(page.locator("#bulk-move")).to_be_hidden()
    page.locator("#notes-items .item-check").first.check()
    expect(page.locator("#bulk-move")).to_be_visible()
    expect(page.locator("#bulk-delete")).to_be_visible()
    page.locator("#notes-items .item-check").first.uncheck()
    expect(page.locator("#bulk-move")).to_be_hidden()


def test_a_phone_journey_sign_up_chat_save_share_never_scrolls_sideways(
    browsing: Any, sign_up: Any, screenshot: Any
) -> None:
    page = browsing.new_page(phone=True)
    sign_up(page, "Pia Phone", "pia.phone@example.com")
    no_horizontal_scroll(page, "the page after signing up")

    page.goto("/chat")
    no_horizontal_scroll(page, "a new chat")
    page.locator("#prompt").fill("Plan a picnic for four in the park")
    page.locator("#prompt").press("Control+Enter")
    expect(page).to_have_url(re.compile(r"/chat/[0-9a-f]{32}$"), timeout=20_000)
    answer = page.locator("#thread > li.turn[id] .answer:visible").last
    expect(answer.locator('[data-field="status"]')).to_have_text("Complete", timeout=30_000)
    no_horizontal_scroll(page, "a chat with an answer")

    answer.get_by_role("button", name="Save").tap()
    dialog = page.get_by_role("dialog", name="Save as a note")
    expect(dialog).to_be_visible()
    no_horizontal_scroll(page, "the save dialog")
    dialog.get_by_role("button", name="Save note").tap()
    link = answer.locator(".saved-link")
    expect(link).to_be_visible()
    link.tap()
    expect(page).to_have_url(re.compile(r"/notes/[0-9a-f]{32}$"))
    no_horizontal_scroll(page, "the saved note")

    # The Share button opens its dialog from a script: a tap before the page's scripts ran did
    # nothing (seen once in a loaded full run).
    page.wait_for_load_state("load")
    page.get_by_role("button", name="Share", exact=True).tap()
    share = page.locator("dialog#share-dialog")
    expect(share).to_be_visible()
    no_horizontal_scroll(page, "the share dialog")
    share.get_by_label("Email address").fill("friend.of.pia@example.com")
    share.get_by_role("button", name="Share", exact=True).tap()
    expect(page.locator("dialog#share-dialog").get_by_role("status")).to_contain_text(
        "friend.of.pia@example.com"
    )
    no_horizontal_scroll(page, "the share dialog after sharing")
    screenshot(page, "phone-journey-shared")


@pytest.mark.parametrize("width", [1024, 1280, 1440])
def test_the_composers_buttons_keep_one_line_with_the_options_open(
    browsing: Any, admin: Any, width: int
) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    page.set_viewport_size({"width": width, "height": 860})
    page.goto("/chat")
    page.locator("#model-options > summary").click()
    expect(page.locator("#model-options")).to_have_attribute("open", "")
    boxes = page.evaluate(
        """() => ['#attach-label', '#send', '#stop-all'].map(sel => {
            const el = document.querySelector(sel);
            const box = el.getBoundingClientRect();
            const style = getComputedStyle(el);
            const inner = box.height - ['paddingTop', 'paddingBottom', 'borderTopWidth',
                'borderBottomWidth'].reduce((sum, name) => sum + parseFloat(style[name]), 0);
            return {sel, top: Math.round(box.top), lines: inner / parseFloat(style.lineHeight)};
        })"""
    )
    assert len({box["top"] for box in boxes}) == 1, f"the buttons are not on one row: {boxes}"
    for box in boxes:
        assert box["lines"] < 1.5, f"{box['sel']} wraps at {width} px: {boxes}"


INSIDE = """([sidebar, selected]) => {
    const box = document.querySelector(sidebar);
    const outer = box.getBoundingClientRect();
    return [...box.querySelectorAll(selected)].filter(el => el.offsetParent !== null).map(el => {
        const inner = el.getBoundingClientRect();
        return {what: el.textContent.trim().slice(0, 40),
                inside: inner.left >= outer.left - 1 && inner.right <= outer.right + 1,
                scrolls: box.scrollWidth > box.clientWidth + 1};
    });
}"""


@pytest.mark.parametrize("width", [1024, 1280])
def test_sidebar_selections_stay_inside_the_sidebar(
    browsing: Any, admin: Any, width: int, screenshot: Any
) -> None:
    """A folder chosen six levels down the notes tree, and the current conversation with its
    menu open in the chat sidebar, sit inside their sidebar: nothing runs past its edge."""
    page = browsing.new_page(storage_state=admin.storage_state)
    page.set_viewport_size({"width": width, "height": 860})
    page.goto("/notes")
    headers = {"X-CSRF-Token": page.locator('meta[name="csrf-token"]').get_attribute("content")}
    parent = None
    for depth in range(6):
        data = {"name": f"Level {depth} of a folder tree with rather long names ({width} px)"}
        if parent:
            data["parent_id"] = parent
        made = page.request.post("/api/folders", data=data, headers=headers)
        assert made.ok, made.text()
        parent = made.json()["id"]
    conversation = page.request.post(
        "/api/conversations",
        data={"title": "A conversation whose title goes on for longer than the sidebar is wide"},
        headers=headers,
    )
    assert conversation.ok, conversation.text()

    page.goto(f"/notes?folder={parent}")
    found = page.evaluate(INSIDE, [".notes-sidebar", '.tree-link[aria-current="page"]'])
    assert found and all(f["inside"] and not f["scrolls"] for f in found), found
    screenshot(page, f"notes-deep-selection-{width}")

    page.goto(f"/chat/{conversation.json()['id']}")
    current = page.locator('#conversation-list a[aria-current="page"]')
    expect(current).to_be_visible()
    found = page.evaluate(INSIDE, ["#ws-sidebar", '#conversation-list a[aria-current="page"]'])
    assert found and all(f["inside"] and not f["scrolls"] for f in found), found
    item = page.locator('#conversation-list li.conversation:has(a[aria-current="page"])')
    item.get_by_label(re.compile("^Actions: A conversation whose title")).click()
    expect(item.get_by_role("button", name="Rename")).to_be_visible()
    found = page.evaluate(INSIDE, ["#ws-sidebar", "#conversation-list details[open] .conv-actions"])
    assert found and all(f["inside"] for f in found), found


FIELDS = """() => [...document.querySelectorAll(
        'main input:not([type=checkbox]):not([type=radio]):not([type=hidden]):not([type=file])'
        + ':not([type=range]):not([type=color]), main select')]
    .filter(el => el.offsetParent !== null)
    .map(el => {
        const style = getComputedStyle(el);
        const corners = [style.borderTopLeftRadius, style.borderTopRightRadius,
                         style.borderBottomLeftRadius, style.borderBottomRightRadius];
        return {field: (el.id || el.name) + " on " + location.pathname,
                height: Math.round(el.getBoundingClientRect().height),
                radius: Math.max(...corners.map(parseFloat)),
                font: style.fontSize, border: style.borderTopWidth};
    })"""


def test_one_input_style_on_every_page(browsing: Any, admin: Any) -> None:
    """Text fields and selects look alike wherever they are (the account page, the notes
    toolbar, the search page, the model picker, the console): one height, one corner radius
    (no pills beside squares), one font size, one border."""
    page = browsing.new_page(storage_state=admin.storage_state)
    fields: list[dict[str, Any]] = []
    for path in ["/chat", "/notes", "/files", "/search", "/usage", "/account", "/admin/users"]:
        page.goto(path)
        if path == "/chat":
            page.locator("#model-summary").click()  # the picker's search and filters
        fields += page.evaluate(FIELDS)
    assert len(fields) > 15, fields
    for quality in ("height", "radius", "font", "border"):
        by_value: dict[Any, list[str]] = {}
        for f in fields:
            by_value.setdefault(f[quality], []).append(f["field"])
        if quality == "height":
            assert max(by_value) - min(by_value) <= 2, by_value
        else:
            assert len(by_value) == 1, by_value
