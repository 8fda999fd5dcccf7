"""The app installs like an app: a web manifest, a service worker that keeps the shell (styles,
scripts, an offline page) so a page opened without a network says so instead of the browser's
error; and a newcomer's first visit to Chat starts with a short introduction."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def test_the_manifest_describes_an_installable_app(page: Any) -> None:
    page.goto("/login")
    href = page.locator('link[rel="manifest"]').get_attribute("href")
    assert href
    manifest = page.request.get(href)
    assert manifest.ok and "manifest+json" in manifest.headers["content-type"]
    body = manifest.json()
    assert body["name"] == "MultinotesAI" and body["start_url"] == "/chat"
    assert body["display"] == "standalone" and body["icons"]
    for icon in body["icons"]:
        assert page.request.get(icon["src"]).ok, icon


def test_offline_a_page_shows_the_offline_page_from_the_cache(
    browsing: Any, admin: Any, page_problems: Any
) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    page.goto("/notes")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now under the worker's control
    assert page.evaluate("!!navigator.serviceWorker.controller")
    page_problems.allow(r"net::ERR_INTERNET_DISCONNECTED")
    page.context.set_offline(True)
    try:
        page.goto("/files")
        # The worker may have been stopped while idle; starting it again on a busy machine can
        # take longer than the default 5 s.
        expect(page.get_by_role("heading", name="You are offline")).to_be_visible(timeout=15_000)
        # The shell's styles came from the cache: the page is laid out, not bare HTML.
        assert page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth !== 'none'")
    finally:
        page.context.set_offline(False)
    page.get_by_role("button", name="Try again").click()
    expect(page).to_have_url(f"{browsing.base_url}/files")


def test_a_first_visit_to_chat_starts_with_a_short_introduction(browsing: Any, admin: Any) -> None:
    page = browsing.new_page(storage_state=admin.storage_state)
    page.goto("/chat")
    intro = page.get_by_role("region", name="Welcome to MultinotesAI")
    expect(intro).to_be_visible()
    expect(intro).to_contain_text("demo")
    expect(intro.get_by_role("link", name="add a provider key")).to_have_attribute(
        "href", "/admin/plugins"
    )
    intro.get_by_role("button", name="Got it").click()
    expect(intro).to_be_hidden()
    page.reload()
    expect(page.get_by_role("region", name="Welcome to MultinotesAI")).to_be_hidden()
