"""A note's Markdown as a small tree of blocks, for exporters that lay out pages themselves
(PDF, Word): headings, paragraphs of styled spans, lists, code, quotes, tables, images, rules.

It is parsed exactly as the app renders notes (``multinotes.markdown``: CommonMark, tables,
strikethrough, math), and with the same safety rules: raw HTML is text, never markup; a link
keeps only an ``http``, ``https`` or ``mailto`` address (a site-relative one is made absolute
against ``base_url``, or dropped), so nothing a note holds becomes a script link in a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

from markdown_it.token import Token

from multinotes.markdown import _parser, is_off_site

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


@dataclass(frozen=True)
class Span:
    """A run of text with one style. ``link`` is a safe absolute address or None."""

    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    strike: bool = False
    link: str | None = None


@dataclass(frozen=True)
class Heading:
    level: int
    spans: list[Span]


@dataclass(frozen=True)
class Paragraph:
    spans: list[Span]


@dataclass(frozen=True)
class Image:
    """An image: ``src`` as written (look it up in ``ExportDocument.images``)."""

    src: str
    alt: str


@dataclass(frozen=True)
class CodeBlock:
    text: str
    language: str = ""


@dataclass(frozen=True)
class ListBlock:
    ordered: bool
    items: list[list[Block]]
    start: int = 1


@dataclass(frozen=True)
class Quote:
    blocks: list[Block]


@dataclass(frozen=True)
class Table:
    header: list[list[Span]]
    rows: list[list[list[Span]]]
    align: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    pass


Block = Heading | Paragraph | Image | CodeBlock | ListBlock | Quote | Table | Rule


def safe_link(href: str, base_url: str | None = None) -> str | None:
    """``href`` if it is an http(s) or mailto address; a site-relative one joined to
    ``base_url``; anything else (``javascript:``, ``data:``, ``file:``...) None."""
    href = href.strip()
    if not href or any(ord(ch) < 32 for ch in href):
        return None
    if not is_off_site(href):  # a path of this site
        if base_url is None or href.startswith("#"):
            return None
        href = urljoin(base_url.rstrip("/") + "/", href.lstrip("/"))
    scheme = urlsplit(href).scheme.lower()
    return href if scheme in SAFE_SCHEMES else None


def spans_text(spans: Sequence[Span]) -> str:
    return "".join(s.text for s in spans)


def _inline(tokens: Sequence[Token], base_url: str | None) -> tuple[list[Span], list[Image]]:
    """Spans of an inline token's children, and the images among them (taken out)."""
    spans: list[Span] = []
    images: list[Image] = []
    style = Span("")
    for token in tokens:
        kind = token.type
        if kind == "text":
            spans.append(replace(style, text=token.content))
        elif kind == "code_inline":
            spans.append(replace(style, text=token.content, code=True))
        elif kind in ("math_inline", "math_inline_double"):
            spans.append(replace(style, text=token.content.strip(), code=True))
        elif kind in ("softbreak",):
            spans.append(replace(style, text=" "))
        elif kind == "hardbreak":
            spans.append(replace(style, text="\n"))
        elif kind in ("html_inline",):  # never markup: shown as the text it is
            spans.append(replace(style, text=token.content))
        elif kind == "strong_open":
            style = replace(style, bold=True)
        elif kind == "strong_close":
            style = replace(style, bold=False)
        elif kind == "em_open":
            style = replace(style, italic=True)
        elif kind == "em_close":
            style = replace(style, italic=False)
        elif kind == "s_open":
            style = replace(style, strike=True)
        elif kind == "s_close":
            style = replace(style, strike=False)
        elif kind == "link_open":
            style = replace(style, link=safe_link(str(token.attrGet("href") or ""), base_url))
        elif kind == "link_close":
            style = replace(style, link=None)
        elif kind == "image":
            alt = "".join(child.content for child in token.children or [])
            images.append(Image(str(token.attrGet("src") or ""), alt))
    merged: list[Span] = []
    for span in spans:
        if merged and replace(merged[-1], text="") == replace(span, text=""):
            merged[-1] = replace(merged[-1], text=merged[-1].text + span.text)
        elif span.text:
            merged.append(span)
    return merged, images


def _close_index(tokens: Sequence[Token], start: int) -> int:
    """The index of the token closing the one opened at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += tokens[index].nesting
        if depth == 0:
            return index
    return len(tokens) - 1


def _table(tokens: Sequence[Token], base_url: str | None) -> Table:
    header: list[list[Span]] = []
    rows: list[list[list[Span]]] = []
    align: list[str] = []
    row: list[list[Span]] = []
    in_head = False
    for token in tokens:
        if token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            if in_head:
                header = row
            else:
                rows.append(row)
        elif token.type in ("th_open", "td_open"):
            if in_head:
                style = str(token.attrGet("style") or "")
                align.append(style.removeprefix("text-align:") if style else "")
        elif token.type == "inline":
            spans, images = _inline(token.children or [], base_url)
            spans += [Span(f"[{i.alt or 'image'}]") for i in images]
            row.append(spans)
    return Table(header, rows, align)


def _blocks(tokens: Sequence[Token], base_url: str | None) -> list[Block]:
    blocks: list[Block] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        kind = token.type
        if kind == "heading_open":
            spans, images = _inline(tokens[index + 1].children or [], base_url)
            if spans_text(spans).strip():
                blocks.append(Heading(int(token.tag[1]), spans))
            blocks.extend(images)
            index += 3
            continue
        if kind == "paragraph_open":
            spans, images = _inline(tokens[index + 1].children or [], base_url)
            if spans_text(spans).strip():
                blocks.append(Paragraph(spans))
            blocks.extend(images)
            index += 3
            continue
        if kind in ("fence", "code_block"):
            blocks.append(CodeBlock(token.content.rstrip("\n"), token.info.strip().split(" ")[0]))
        elif kind in ("math_block", "math_block_label"):
            blocks.append(CodeBlock(token.content.strip(), "math"))
        elif kind == "html_block":
            blocks.append(Paragraph([Span(token.content.rstrip("\n"))]))
        elif kind == "hr":
            blocks.append(Rule())
        elif kind in ("bullet_list_open", "ordered_list_open"):
            end = _close_index(tokens, index)
            items: list[list[Block]] = []
            inner = index + 1
            while inner < end:
                if tokens[inner].type == "list_item_open":
                    item_end = _close_index(tokens, inner)
                    items.append(_blocks(tokens[inner + 1 : item_end], base_url))
                    inner = item_end
                inner += 1
            start = int(str(token.attrGet("start") or 1))
            blocks.append(ListBlock(kind == "ordered_list_open", items, start))
            index = end
        elif kind == "blockquote_open":
            end = _close_index(tokens, index)
            blocks.append(Quote(_blocks(tokens[index + 1 : end], base_url)))
            index = end
        elif kind == "table_open":
            end = _close_index(tokens, index)
            blocks.append(_table(tokens[index + 1 : end], base_url))
            index = end
        index += 1
    return blocks


def markdown_blocks(text: str, base_url: str | None = None) -> list[Block]:
    """``text`` (Markdown) as blocks. ``base_url`` (the app's address) makes site-relative
    links absolute; without it they are dropped (the text stays)."""
    return _blocks(_parser().parse(text or ""), base_url)
