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
