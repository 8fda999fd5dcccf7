"""Markdown to safe HTML, for model answers and notes.

markdown-it-py renders (raw HTML in the source is not passed through), then nh3 (the ammonia
sanitiser) keeps only an allowlist of tags and attributes, so nothing a model or a user writes
can run script in a reader's browser.

Images from other sites are rendered as links, never as ``<img>``: a reader's browser would
fetch them on sight, telling a stranger who read the note, when and from where (and a request
to any address is a request forgery). Images of this site (relative paths) stay images.

Math (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]`` and fenced ``math`` blocks) is emitted
as escaped TeX in ``<code class="math-inline">`` / ``<pre><code class="math-display">``: the page
shows the TeX as code, and ``js/rich-text.js`` typesets it with the vendored KaTeX (DOM-built, so
the CSP holds). Fenced code keeps its ``language-*`` class for highlight.js. Tables come wrapped in
``<div class="table-scroll">`` so a wide one scrolls inside its box on a phone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from html import escape

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "em",
    "del",
    "s",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "img",
    "sup",
    "sub",
    "div",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}
#: Classes that must not be spoofable beyond these values.
ALLOWED_CLASSES = {"div": {"table-scroll"}}


#: A scheme ("https:", "data:"), or a start browsers read as another host ("//", "/\\").
_OFF_SITE = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.-]*:|[/\\]{2})")


def is_off_site(src: str) -> bool:
    """Whether an image address points anywhere but a path of this site."""
    return bool(_OFF_SITE.match(src)) or any(ord(ch) < 32 for ch in src)


def _image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    src = str(tokens[idx].attrGet("src") or "")
    if not is_off_site(src):
        return RendererHTML.image(renderer, tokens, idx, options, env)
    # A link the reader may choose to follow, instead of a request made on sight.
    alt = renderer.renderInlineAsText(tokens[idx].children or [], options, env)
    return f'<a href="{escape(src)}">{escape("Image: " + (alt or src))}</a>'


def _math(display: bool) -> Callable[..., str]:
    css = "math-display" if display else "math-inline"

    def render(
        renderer: RendererHTML,
        tokens: Sequence[Token],
        idx: int,
        options: OptionsDict,
        env: EnvType,
    ) -> str:
        code = f'<code class="{css}">{escape(tokens[idx].content.strip())}</code>'
        return f"<pre>{code}</pre>\n" if tokens[idx].block else code

    return render


def _bracket_math(state: StateInline, silent: bool) -> bool:
    r"""``\(inline\)`` and ``\[display\]``, the delimiters models write most after dollars."""
    start = state.pos
    opener = state.src[start : start + 2]
    if opener not in ("\\(", "\\["):
        return False
    closer = "\\)" if opener == "\\(" else "\\]"
    end = state.src.find(closer, start + 2)
    if end < 0 or not state.src[start + 2 : end].strip():
        return False
    if not silent:
        token = state.push("math_inline" if opener == "\\(" else "math_inline_double", "math", 0)
        token.content = state.src[start + 2 : end]
        token.markup = opener
    state.pos = end + 2
    return True


def _table_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return '<div class="table-scroll">' + renderer.renderToken(tokens, idx, options, env)


def _table_close(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return renderer.renderToken(tokens, idx, options, env) + "</div>\n"


def _fence(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    if tokens[idx].info.strip().lower() in ("math", "latex", "tex"):
        return _math(True)(renderer, tokens, idx, options, env)
    return RendererHTML.fence(renderer, tokens, idx, options, env)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    parser = (
        MarkdownIt("commonmark", {"html": False, "linkify": False})
        .enable("table")
        .enable("strikethrough")
    )
    # No space inside the dollars and no digit after the closing one: "$5 and $10" stays money.
    dollarmath_plugin(parser, allow_space=False, allow_digits=False, double_inline=True)
    parser.inline.ruler.before("escape", "bracket_math", _bracket_math)
    parser.add_render_rule("image", _image)
    parser.add_render_rule("fence", _fence)
    parser.add_render_rule("table_open", _table_open)
    parser.add_render_rule("table_close", _table_close)
    inline, display = _math(False), _math(True)
    for rule, render in (
        ("math_inline", inline),
        ("math_inline_double", display),
        ("math_block", display),
        ("math_block_label", display),
    ):
        parser.add_render_rule(rule, render)
    return parser


def render_markdown(text: str) -> str:
    html = _parser().render(text or "")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
