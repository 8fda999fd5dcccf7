"""Accessibility of the main pages: axe-core (vendored in tests/browser/vendor, see
webui/static/vendor/VENDORED.md) finds no serious or critical violation on any of them, in the
light and the dark theme; and moving through a page with Tab never makes hidden controls pop
into view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
LOGGED_IN_PAGES = [
    "/",
    "/chat",
    "/notes",
    "/files",
    "/search?q=tides",
    "/shared",
    "/usage",
    "/account",
    "/notifications",
    "/trash",
    "/admin/plugins",
    "/admin/models",
    "/admin/users",
]
PUBLIC_PAGES = ["/", "/login", "/register"]


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each."""
    # Evaluated over the DevTools protocol, not as a <script>: the page's CSP stays as it is.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    results = page.evaluate(
        """async () => {
            const found = await axe.run(document, {resultTypes: ["violations"]});
            return found.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.slice(0, 5).map(n => ({
                                target: n.target.join(" "), summary: n.failureSummary}))}));
        }"""
    )
    return [json.dumps(v, ensure_ascii=False) for v in results]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations_on_the_main_pages(
    browsing: Any, admin: Any, scheme: str
) -> None:
    found: dict[str, list[str]] = {}
    page = browsing.new_page(storage_state=admin.storage_state)
    page.emulate_media(color_scheme=scheme)
    for path in LOGGED_IN_PAGES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if problems := serious_violations(page):
            found[path] = problems
    anonymous = browsing.new_page()
    anonymous.emulate_media(color_scheme=scheme)
    for path in PUBLIC_PAGES:
        anonymous.goto(path)
        if problems := serious_violations(anonymous):
            found[f"{path} (logged out)"] = problems
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(v) for path, v in found.items())


@pytest.mark.parametrize("path", ["/chat", "/notes"])
def test_tabbing_through_a_page_never_reveals_hidden_controls(
    browsing: Any, admin: Any, path: str
) -> None:
    """Every stop on the way is a control one can see before it is reached (the skip link at
    the top excepted): no raw file input, no "Apply" button appearing from nowhere."""
    page = browsing.new_page(storage_state=admin.storage_state)
    page.goto(path)
    popped: list[str] = []
    seen: set[str] = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        stop = page.evaluate(
            """() => {
                const el = document.activeElement;
                if (!el || el === document.body) return null;
                const hidden = el.matches(".visually-hidden, .visually-hidden *")
                    || (el.matches("input[type=file]") && el.getBoundingClientRect().width > 2);
                return {key: el.outerHTML.slice(0, 120), hidden,
                        skip: el.matches("a[href='#main']")};
            }"""
        )
        if stop is None or stop["key"] in seen:
            continue
        seen.add(stop["key"])
        if stop["hidden"] and not stop["skip"]:
            popped.append(stop["key"])
    assert not popped, "hidden controls shown by Tab:\n" + "\n".join(popped)


RICH_NOTE = (
    "# Field notes\n\nSome **bold** text, a [link](/notes) and a list:\n\n- one\n- two\n\n"
    '```python\ndef greet(name):\n    return f"Hello {name}"\n```\n\n'
    "Inline math $e^{i\\pi} + 1 = 0$ and a table:\n\n| Model | Tokens |\n|---|---|\n| Echo | 12 |\n"
)


def _sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split("\n\n"):
        name, data = "", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        if name:
            events.append((name, json.loads(data) if data else {}))
    return events


@pytest.fixture(scope="module")
def with_content(browser: Any, server: str, admin: Any) -> dict[str, str]:
    """The administrator's work, so pages show what they show in use: a conversation with an
    answer, that answer saved as a note in a folder, a rich note with an edit in its history and
    a public link to it; the URLs of the pages that show them."""
    context = browser.new_context(base_url=server, storage_state=admin.storage_state)
    try:
        page = context.new_page()
        page.goto("/notes")
        token = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
        headers = {"X-CSRF-Token": token}

        def post(path: str, data: dict[str, Any]) -> Any:
            response = page.request.post(path, data=data, headers=headers)
            assert response.ok, (path, response.status, response.text())
            return response

        folder = post("/api/folders", {"name": "Axe folder"}).json()["id"]
        streamed = post("/api/messages", {"content": "Explain **tides**", "models": ["demo/echo"]})
        events = _sse_events(streamed.text())
        conversation = next(d for n, d in events if n == "prompt")["conversation_id"]
        answer = next(d for n, d in events if n == "done")["message_id"]
        saved = post(f"/api/messages/{answer}/save", {"folder_id": folder}).json()["document_id"]
        note = post("/api/documents", {"title": "Rich note", "content": RICH_NOTE}).json()
        edited = page.request.patch(
            f"/api/documents/{note['id']}",
            data={"version": note["version"], "content": RICH_NOTE + "\nOne more line.\n"},
            headers=headers,
        )
        assert edited.ok, edited.text()
        public = post(
            "/api/shares", {"object_type": "document", "object_id": note["id"], "public": True}
        ).json()["url"]
        users = page.request.get("/api/admin/users", params={"q": admin.email}).json()
        someone = next(u["id"] for u in users["users"] if u["email"] == admin.email)
        return {
            "conversation": f"/chat/{conversation}",
            "saved answer": f"/notes/{saved}",
            "rich note": f"/notes/{note['id']}",
            "history": f"/notes/{note['id']}/history",
            "folder": f"/notes?folder={folder}",
            "admin user": f"/admin/users/{someone}",
            "public link": public,
        }
    finally:
        context.close()


#: Pages beside the main ones, shown with content (a conversation with an answer, notes,
#: history) or reached less often (the console's other pages, privacy, password reset).
CONTENT_PAGES = ["conversation", "saved answer", "rich note", "history", "folder", "admin user"]
OTHER_PAGES = [
    "/account/privacy",
    "/admin/audit",
    "/admin/credits",
    "/admin/tools",
    "/admin/legal",
    "/admin/plugins/demo",
]
OTHER_PUBLIC_PAGES = ["/password/forgot", "/offline", "/legal/privacy"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations_on_pages_with_content(
    browsing: Any, admin: Any, with_content: dict[str, str], scheme: str
) -> None:
    found: dict[str, list[str]] = {}
    page = browsing.new_page(storage_state=admin.storage_state)
    page.emulate_media(color_scheme=scheme)
    for path in [with_content[name] for name in CONTENT_PAGES] + OTHER_PAGES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if problems := serious_violations(page):
            found[path] = problems
    anonymous = browsing.new_page()
    anonymous.emulate_media(color_scheme=scheme)
    for path in [with_content["public link"], *OTHER_PUBLIC_PAGES]:
        anonymous.goto(path)
        anonymous.wait_for_load_state("networkidle")
        if problems := serious_violations(anonymous):
            found[f"{path} (logged out)"] = problems
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(v) for path, v in found.items())
