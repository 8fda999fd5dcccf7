"""Markdown to safe HTML, for model answers and notes.

markdown-it-py renders (raw HTML in the source is not passed through), then nh3 (the ammonia
sanitiser) keeps only an allowlist of tags and attributes, so nothing a model or a user writes
can run script in a reader's browser.

Images from other sites are rendered as links, never as ``<img>``: a reader's browser would
fetch them on sight, telling a stranger who read the note, when and from where (and a request
to any address is a request forgery). Images of this site (relative paths) stay images.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from html import escape

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

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
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}


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


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    parser = (
        MarkdownIt("commonmark", {"html": False, "linkify": False})
        .enable("table")
        .enable("strikethrough")
    )
    parser.add_render_rule("image", _image)
    return parser


def render_markdown(text: str) -> str:
    html = _parser().render(text or "")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
