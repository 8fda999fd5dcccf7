"""Editing a note together in real browsers (issue #20 item 4): Olga shares a note with Carl as
an editor; both open it and type at the same time; both texts converge to the same merged text,
each sees where the other's caret is, and one version is saved per pause. A viewer reads the
edits live. Olga revokes the share and Carl's editor is cut off at once."""

from __future__ import annotations

import re
import secrets
from itertools import zip_longest
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Account, Browsing, api_account, wait_for_js
from tests.browser.test_accessibility import serious_violations


def people(browser: Any, server: str) -> tuple[Account, Account]:
    tag = secrets.token_hex(3)
    return (
        api_account(browser, server, "Olga Owner", f"olga.{tag}@example.com"),
        api_account(browser, server, "Carl Colleague", f"carl.{tag}@example.com"),
    )


def api(page: Any, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.fetch(
        path, method=method, data=data, headers={"X-CSRF-Token": str(token)}
    )
    assert response.ok, response.text()
    return response.json() if response.status != 204 else None


def live(page: Any, path: str) -> None:
    page.goto(path)
    expect(page.locator("#note-page")).to_have_attribute("data-collab", "live")


def test_two_editors_type_at_once_see_each_other_and_a_revoked_one_is_cut_off(
    browsing: Browsing, browser: Any, server: str, screenshot: Any
) -> None:
    owner, colleague = people(browser, server)
    olga = browsing.new_page(storage_state=owner.storage_state)
    olga.goto("/notes")
    note = api(olga, "POST", "/api/documents", {"title": "Launch plan", "content": "Plan:\n"})
    share = api(
        olga,
        "POST",
        "/api/shares",
        {
            "object_type": "document",
            "object_id": note["id"],
            "email": colleague.email,
            "role": "editor",
        },
    )
    live(olga, f"/notes/{note['id']}")
    carl = browsing.new_page(storage_state=colleague.storage_state)
    live(carl, f"/notes/{note['id']}")

    olgas, carls = olga.locator("#note-content"), carl.locator("#note-content")
    olgas.click()
    olga.keyboard.press("Control+End")
    carls.click()
    carl.keyboard.press("Control+Home")
    # Both type at once: Olga at the end, Carl at the start, keystroke by keystroke.
    for olga_key, carl_key in zip_longest("- budget", "Draft. ", fillvalue=""):
        olga.keyboard.type(olga_key)
        carl.keyboard.type(carl_key)
    merged = "Draft. Plan:\n- budget"
    expect(olgas).to_have_value(merged)
    expect(carls).to_have_value(merged)

    # Each sees where the other is: a caret with the name over the text, and a line in the list.
    expect(olga.locator(".collab-caret-name")).to_have_text("Carl Colleague")
    expect(olga.locator("#collab-people li")).to_contain_text("Carl Colleague · line 1")
    expect(carl.locator("#collab-people li")).to_contain_text("Olga Owner · line 2")
    expect(olga.locator("#collab-others")).to_be_visible()
    screenshot(olga, "collab-two-editors")
    assert serious_violations(olga) == []

    # One pause, one version with the merged text, and both pages say so.
    expect(olga.locator("#save-status")).to_have_text("Saved · version 2", timeout=10_000)
    expect(carl.locator("#save-status")).to_have_text("Saved · version 2")
    saved = api(olga, "GET", f"/api/documents/{note['id']}")
    assert (saved["content"], saved["version"]) == (merged, 2)
    expect(olga.locator("#note-preview")).to_contain_text("budget")

    # Olga revokes the share: Carl is cut off at once, and his typing goes nowhere.
    api(olga, "DELETE", f"/api/shares/{share['id']}")
    expect(carl.locator("#note-page")).to_have_attribute("data-collab", "ended", timeout=3_000)
    expect(carl.locator("#collab-notice")).to_contain_text("access to this note was removed")
    expect(carls).not_to_be_editable()
    expect(olga.locator("#collab-people li")).to_have_count(0)
    olgas.press("End")
    olga.keyboard.type(" and dates")
    expect(carls).to_have_value(merged)
    expect(olga.locator("#save-status")).to_have_text("Saved · version 3", timeout=10_000)


def test_a_viewer_reads_the_edits_live_and_cannot_type(
    browsing: Browsing, browser: Any, server: str
) -> None:
    owner, colleague = people(browser, server)
    olga = browsing.new_page(storage_state=owner.storage_state)
    olga.goto("/notes")
    note = api(olga, "POST", "/api/documents", {"title": "Read me", "content": "# Title\n"})
    api(
        olga,
        "POST",
        "/api/shares",
        {
            "object_type": "document",
            "object_id": note["id"],
            "email": colleague.email,
            "role": "viewer",
        },
    )
    live(olga, f"/notes/{note['id']}")
    carl = browsing.new_page(storage_state=colleague.storage_state)
    live(carl, f"/notes/{note['id']}")
    expect(carl.locator("#note-content")).to_have_count(0)  # a viewer gets the preview only

    olga.locator("#note-content").click()
    olga.keyboard.press("Control+End")
    olga.keyboard.type("Fresh **news**")
    expect(carl.locator("#note-preview strong")).to_have_text("news")
    expect(olga.locator("#collab-people li")).to_contain_text("Carl Colleague (viewing)")


class SlowLine:
    """The note page's live session over a slow line: what the server sends waits until
    ``release()`` while ``holding``; what the page sends goes straight through."""

    def __init__(self, page: Any, holding: bool = True) -> None:
        self.holding = holding
        self.held: list[str | bytes] = []
        self.route: Any = None
        page.route_web_socket("**/collab", self._connect)

    def _connect(self, route: Any) -> None:
        self.route = route
        self.held.clear()  # a new connection: what the old one missed is not for it
        route.connect_to_server().on_message(self._from_server)

    def _from_server(self, message: str | bytes) -> None:
        if self.holding:
            self.held.append(message)
        else:
            self.route.send(message)

    def cut(self) -> None:
        """The connection drops; the page reconnects (and is held again)."""
        self.holding = True
        self.route.close()

    def release(self) -> None:
        self.holding = False
        for message in self.held:
            self.route.send(message)
        self.held.clear()


def test_text_typed_while_the_live_session_connects_is_kept_and_saved(
    browsing: Browsing, browser: Any, server: str
) -> None:
    """Typing (and Ctrl+S) before the live session has its first copy of the note: nothing is
    sent over REST to be refused, nothing claims to be saved, and once connected the typed text
    joins the shared text and is saved."""
    owner, _ = people(browser, server)
    page = browsing.new_page(storage_state=owner.storage_state)
    page.goto("/notes")
    note = api(page, "POST", "/api/documents", {"title": "Packing", "content": "Packing:\n- socks"})
    line = SlowLine(page)
    page.goto(f"/notes/{note['id']}")
    box = page.get_by_label("Markdown")
    box.press("Control+End")
    box.press_sequentially("\n- boots")
    page.keyboard.press("Control+s")
    status = page.locator("#save-status")
    expect(status).to_have_text("Unsaved changes")
    page.wait_for_timeout(1500)  # past the autosave pause: still not claimed, not refused
    expect(status).to_have_text("Unsaved changes")

    line.release()
    expect(page.locator("#note-page")).to_have_attribute("data-collab", "live")
    expect(box).to_have_value("Packing:\n- socks\n- boots")
    expect(status).to_have_text(re.compile(r"^Saved · version \d+$"))
    saved = api(page, "GET", f"/api/documents/{note['id']}")
    assert saved["content"] == "Packing:\n- socks\n- boots"


def test_text_typed_while_reconnecting_merges_with_what_others_wrote_meanwhile(
    browsing: Browsing, browser: Any, server: str
) -> None:
    """The connection drops; Olga types on in one tab while her other tab (still connected)
    changes the start of the note. On reconnecting both edits are kept, in both tabs and in
    the saved note."""
    owner, _ = people(browser, server)
    first = browsing.new_page(storage_state=owner.storage_state)
    first.goto("/notes")
    note = api(first, "POST", "/api/documents", {"title": "Trip", "content": "Trip:\n- tent"})
    line = SlowLine(first, holding=False)
    live(first, f"/notes/{note['id']}")
    second = browsing.new_page(storage_state=owner.storage_state)
    live(second, f"/notes/{note['id']}")

    line.cut()
    expect(first.locator("#note-page")).not_to_have_attribute("data-collab", "live")
    box = first.get_by_label("Markdown")
    box.press("Control+End")
    box.press_sequentially("\n- stove")
    other = second.get_by_label("Markdown")
    other.press("Control+Home")
    other.press_sequentially("Summer ")
    expect(other).to_have_value("Summer Trip:\n- tent")

    line.release()
    merged = "Summer Trip:\n- tent\n- stove"
    expect(first.locator("#note-page")).to_have_attribute("data-collab", "live")
    expect(box).to_have_value(merged)
    expect(other).to_have_value(merged)
    expect(first.locator("#save-status")).to_have_text(re.compile(r"^Saved · version \d+$"))
    wait_for_js(
        first,
        "async ([id, text]) => (await (await fetch(`/api/documents/${id}`)).json()).content"
        " === text",
        arg=[note["id"], merged],
    )
    assert api(first, "GET", f"/api/documents/{note['id']}")["content"] == merged


NO_UPGRADE = """
window.WebSocket = class extends EventTarget {
  constructor() {
    super();
    this.readyState = 0;
    setTimeout(() => {
      this.readyState = 3;
      const event = new CloseEvent("close", { code: 1006 });
      if (this.onclose) this.onclose(event);
      this.dispatchEvent(event);
    }, 30);
  }
  send() {}
  close() {}
};
"""


def test_where_the_live_session_never_connects_the_text_is_saved_over_rest(
    browsing: Browsing, browser: Any, server: str
) -> None:
    """A proxy that does not pass WebSockets on: the page tries a few times, gives up, and the
    text typed meanwhile (kept as a draft until then) is saved by the editor itself."""
    owner, _ = people(browser, server)
    page = browsing.new_page(storage_state=owner.storage_state)
    page.goto("/notes")
    note = api(page, "POST", "/api/documents", {"title": "Offline", "content": "Start"})
    page.context.add_init_script(NO_UPGRADE)
    page.goto(f"/notes/{note['id']}")
    box = page.get_by_label("Markdown")
    box.press("Control+End")
    box.press_sequentially(" and more")
    expect(page.locator("#note-page")).to_have_attribute("data-collab", "off", timeout=10_000)
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved · version \d+$"))
    assert api(page, "GET", f"/api/documents/{note['id']}")["content"] == "Start and more"
