"""Rich answers and notes: code keeps its language for highlighting, math goes out as escaped TeX
for the browser to typeset, and tables come in a box that scrolls on a phone; all of it through
the sanitiser, so nothing in a model's answer runs."""

from __future__ import annotations

import nh3

from multinotes.markdown import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_CLASSES,
    ALLOWED_TAGS,
    render_markdown,
)


def test_fenced_code_keeps_its_language_for_the_highlighter() -> None:
    html = render_markdown("```python\nprint('<hi>')\n```")
    assert "<pre><code class=\"language-python\">print('&lt;hi&gt;')\n</code></pre>" in html


def test_dollar_math_is_escaped_tex_marked_inline_or_display() -> None:
    html = render_markdown("Area $\\pi r^2<x$ here.\n\n$$\n\\frac{a}{b}\n$$\n")
    assert '<code class="math-inline">\\pi r^2&lt;x</code>' in html
    assert '<pre><code class="math-display">\\frac{a}{b}</code></pre>' in html


def test_bracket_delimiters_and_math_fences_are_math_too() -> None:
    html = render_markdown("Inline \\(a+b\\) and \\[c = d\\]\n\n```math\ne^{i\\pi}\n```\n")
    assert '<code class="math-inline">a+b</code>' in html
    assert '<code class="math-display">c = d</code>' in html
    assert '<pre><code class="math-display">e^{i\\pi}</code></pre>' in html


def test_prices_in_dollars_are_not_math() -> None:
    html = render_markdown("It costs $5 and $10 a month.")
    assert "math" not in html
    assert "$5 and $10" in html


def test_markup_inside_math_stays_text() -> None:
    html = render_markdown('$<script>alert(1)</script>$ and \\(<img src=x onerror="y">\\)')
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;" in html


def test_tables_are_wrapped_in_a_scroll_box() -> None:
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert html.startswith('<div class="table-scroll"><table>')
    assert html.rstrip().endswith("</table>\n</div>")


def test_the_sanitiser_still_drops_other_classes_and_tags() -> None:
    # Raw HTML is never passed through, and the sanitiser allows a div only as the table box.
    html = render_markdown('<div class="evil" onclick="x">hi</div>')
    assert "<div" not in html
    assert "&lt;div" in html
    cleaned = nh3.clean(
        '<div class="table-scroll evil" onclick="x"><code class="math-inline">x</code></div>',
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
    )
    assert cleaned == '<div class="table-scroll"><code class="math-inline">x</code></div>'
