"""Rich answers and notes in a real browser: code blocks are highlighted and have a copy button,
math is typeset by the vendored KaTeX, and wide tables scroll inside their box on a phone — in a
chat answer once it has streamed, in a note's preview and on a public link. All of it under the
app's CSP (a blocked script, style or font fails the test through ``page_problems``).
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_account, wait_for_js

RICH = """Here is code:

```python
def greet(name):
    return f"Hello {name}"
```

Euler: $e^{i\\pi} + 1 = 0$ and

$$
\\int_0^1 x^2 \\, dx = \\frac{1}{3}
$$

| Model | Input | Output | Context | Latency | Notes about this model that go on |
|---|---|---|---|---|---|
| alpha-long-model-name | 0.50 | 1.50 | 128000 | 350 ms | fast and cheap for most prompts |
"""


@pytest.fixture(scope="module")
def writer(browser: Any, server: str, admin: Any) -> Any:
    # ``admin`` first: the shared server's first account becomes its administrator.
    email = f"rita.{secrets.token_hex(3)}@example.com"
    return api_account(browser, server, "Rita Rich", email).storage_state


def csrf(page: Any) -> str:
    return str(page.locator('meta[name="csrf-token"]').get_attribute("content"))


def make_note(page: Any, content: str) -> str:
    page.goto("/notes")
    response = page.request.post(
        "/api/documents",
        data={"title": "Rich note", "content": content},
        headers={"X-CSRF-Token": csrf(page)},
    )
    assert response.status == 201, response.text()
    return str(response.json()["id"])


def assert_rich(scope: Any) -> None:
    code = scope.locator(".code-block").first
    expect(code.locator(".code-lang")).to_have_text("python")
    expect(code.locator("code .hljs-keyword").first).to_have_text("def")
    expect(code.get_by_role("button", name="Copy code")).to_be_visible()
    expect(scope.locator(".math-inline .katex")).to_have_count(1)
    expect(scope.locator(".math-display .katex-display")).to_have_count(1)
    # The TeX source is gone from view: it was typeset, not shown as code.
    expect(scope.locator("code.math-inline, code.math-display")).to_have_count(0)
    expect(scope.locator(".table-scroll > table")).to_have_count(1)


def test_a_note_preview_highlights_code_typesets_math_and_copies_code(
    browsing: Any, writer: Any, screenshot: Any
) -> None:
    page = browsing.new_page(storage_state=writer)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    note = make_note(page, RICH)
    page.goto(f"/notes/{note}")
    preview = page.locator("#note-preview")
    assert_rich(preview)
    # KaTeX's own fonts load from our static folder (no CDN, allowed by the CSP).
    wait_for_js(
        page,
        "document.fonts.check('16px KaTeX_Main') && "
        "[...document.fonts].some(f => f.family.includes('KaTeX') && f.status === 'loaded')",
    )
    preview.get_by_role("button", name="Copy code").click()
    wait_for_js(
        page,
        "async () => (await navigator.clipboard.readText())"
        " === 'def greet(name):\\n    return f\"Hello {name}\"\\n'",
    )
    screenshot(page, "rich-note-preview")


def test_a_streamed_answer_is_decorated_once_it_finishes(browsing: Any, writer: Any) -> None:
    page = browsing.new_page(storage_state=writer)
    page.goto("/chat")
    page.locator("#model-summary").click()
    for box in page.locator('#model-picker input[name="models"]:not([disabled])').all():
        box.set_checked(box.get_attribute("value") == "demo/echo")
    page.locator("#model-summary").click()
    page.get_by_label("Prompt", exact=True).fill(RICH)
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    card = page.locator('#thread .answer[data-model="demo/echo"]:visible').last
    expect(card.locator('[data-field="status"]')).to_have_text("Complete")
    assert_rich(card.locator(".answer-body"))


def test_on_a_phone_a_wide_table_scrolls_inside_its_box_on_a_public_link(
    browsing: Any, writer: Any, screenshot: Any
) -> None:
    owner = browsing.new_page(storage_state=writer)
    note = make_note(owner, RICH)
    shared = owner.request.post(
        "/api/shares",
        data={"object_type": "document", "object_id": note, "public": True},
        headers={"X-CSRF-Token": csrf(owner)},
    )
    assert shared.status == 201, shared.text()

    visitor = browsing.new_page(phone=True)
    visitor.goto(shared.json()["url"])
    body = visitor.locator(".public-note")
    assert_rich(body)
    box = body.locator(".table-scroll")
    sizes = box.evaluate("b => [b.scrollWidth, b.clientWidth]")
    assert sizes[0] > sizes[1], sizes  # the table is wider than the phone ...
    assert visitor.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        "the page scrolls sideways"
    )  # ... but only its box scrolls
    # A box that scrolls can be reached with the keyboard.
    expect(box).to_have_attribute("tabindex", "0")
    expect(box).to_have_attribute("role", "region")
    screenshot(visitor, "rich-public-phone")
