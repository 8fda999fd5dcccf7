"""A note as Notion blocks: headings, paragraphs of rich text (bold, italic, code, strikethrough,
links), bulleted and numbered lists, code with its language, quotes, tables, dividers, images,
and the provenance as a callout.

Notion's limits shape the output: a text item holds at most 2,000 characters (longer text is cut
into several items), a block at most 100 items (a longer paragraph becomes several), a table at
most 100 rows per request (a longer one is several tables, each with the header), and a request
nests children at most two levels below its blocks (deeper list items are flattened into the
deepest level). The caller sends at most 100 blocks per request.

Images: Notion shows an image from a public address only. An image of the user's files lives
behind their login, so it becomes an image block whose external URL is the signed, expiring link
the core made for it (``ExportImage.url``); without one (a file the exporter could not read), a
line saying the image is kept in MultinotesAI, linking to the note. An image from an
``https://`` address elsewhere becomes an image block.
"""

from __future__ import annotations

from typing import Any

from multinotes.plugin import ExportDocument, ExportOptions, export_blocks

Block = export_blocks.Block
Span = export_blocks.Span

MAX_TEXT = 2000
MAX_ITEMS = 100
MAX_ROWS = 100
#: Top-level blocks are depth 1; Notion takes children two levels below them in one request.
MAX_DEPTH = 3

#: The languages Notion's code block takes.
LANGUAGES = frozenset(
    {
        "abap",
        "arduino",
        "bash",
        "basic",
        "c",
        "clojure",
        "coffeescript",
        "c++",
        "c#",
        "css",
        "dart",
        "diff",
        "docker",
        "elixir",
        "elm",
        "erlang",
        "flow",
        "fortran",
        "f#",
        "gherkin",
        "glsl",
        "go",
        "graphql",
        "groovy",
        "haskell",
        "html",
        "java",
        "javascript",
        "json",
        "julia",
        "kotlin",
        "latex",
        "less",
        "lisp",
        "livescript",
        "lua",
        "makefile",
        "markdown",
        "markup",
        "matlab",
        "mermaid",
        "nix",
        "objective-c",
        "ocaml",
        "pascal",
        "perl",
        "php",
        "powershell",
        "prolog",
        "protobuf",
        "python",
        "r",
        "reason",
        "ruby",
        "rust",
        "sass",
        "scala",
        "scheme",
        "scss",
        "shell",
        "sql",
        "swift",
        "typescript",
        "verilog",
        "vhdl",
        "xml",
        "yaml",
        "plain text",
        "vb.net",
        "visual basic",
        "webassembly",
        "java/c/c++/c#",
    }
)
ALIASES = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "jsx": "javascript",
    "ts": "typescript",
    "tsx": "typescript",
    "sh": "shell",
    "zsh": "shell",
    "console": "shell",
    "yml": "yaml",
    "cpp": "c++",
    "cc": "c++",
    "csharp": "c#",
    "cs": "c#",
    "golang": "go",
    "rb": "ruby",
    "rs": "rust",
    "kt": "kotlin",
    "dockerfile": "docker",
    "md": "markdown",
    "tex": "latex",
    "objc": "objective-c",
    "ps1": "powershell",
    "proto": "protobuf",
}


def language(name: str) -> str:
    """Notion's name for a fenced block's language; ``plain text`` for any it does not know."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in LANGUAGES else "plain text"


def rich_text(spans: list[Span]) -> list[dict[str, Any]]:
    """Spans as Notion text items, each at most 2,000 characters."""
    items: list[dict[str, Any]] = []
    for span in spans:
        text = span.text
        for start in range(0, len(text), MAX_TEXT):
            item: dict[str, Any] = {
                "type": "text",
                "text": {"content": text[start : start + MAX_TEXT]},
            }
            if span.link:
                item["text"]["link"] = {"url": span.link}
            styles = {
                "bold": span.bold,
                "italic": span.italic,
                "code": span.code,
                "strikethrough": span.strike,
            }
            if any(styles.values()):
                item["annotations"] = {k: v for k, v in styles.items() if v}
            items.append(item)
    return items


def plain(text: str) -> list[dict[str, Any]]:
    return rich_text([Span(text)])


def _text_blocks(kind: str, items: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    """One block of ``kind`` per 100 items (a heading's overflow continues as paragraphs)."""
    if not items:
        items = []
    blocks = []
    for n, start in enumerate(range(0, max(len(items), 1), MAX_ITEMS)):
        this = kind if n == 0 or not kind.startswith("heading") else "paragraph"
        body: dict[str, Any] = {"rich_text": items[start : start + MAX_ITEMS]}
        if n == 0:
            body.update(extra)
        blocks.append({"object": "block", "type": this, this: body})
    return blocks


def _heading(level: int) -> str:
    return f"heading_{min(max(level, 1), 3)}"


def _table(table: export_blocks.Table) -> list[dict[str, Any]]:
    width = (
        max(len(table.header), *(len(r) for r in table.rows)) if table.rows else len(table.header)
    )
    width = max(width, 1)

    def row(cells: list[list[Span]]) -> dict[str, Any]:
        padded = [*cells, *([[]] * (width - len(cells)))][:width]
        return {
            "object": "block",
            "type": "table_row",
            "table_row": {"cells": [rich_text(c)[:MAX_ITEMS] for c in padded]},
        }

    header = row(table.header)
    blocks = []
    per_table = MAX_ROWS - 1  # each part repeats the header row
    rows = table.rows or [[]]
    for start in range(0, len(rows), per_table):
        part = [header, *(row(r) for r in rows[start : start + per_table])]
        blocks.append(
            {
                "object": "block",
                "type": "table",
                "table": {
                    "table_width": width,
                    "has_column_header": True,
                    "has_row_header": False,
                    "children": part,
                },
            }
        )
    return blocks


class Converter:
    """Blocks of one document; ``link`` is the note in the app (for images kept there)."""

    def __init__(self, document: ExportDocument) -> None:
        self.document = document
        self.link = document.link

    def image(self, image: export_blocks.Image) -> list[dict[str, Any]]:
        src = image.src
        own = self.document.image(src)
        url = own.url if own is not None else (src if src.startswith("https://") else None)
        if url is not None:
            return [
                {
                    "object": "block",
                    "type": "image",
                    "image": {
                        "type": "external",
                        "external": {"url": url},
                        "caption": plain(image.alt) if image.alt else [],
                    },
                }
            ]
        label = f"Image “{image.alt}”" if image.alt else "An image"
        spans = [Span(f"🖼 {label} is kept in MultinotesAI", italic=True)]
        if self.link:
            spans += [Span(": "), Span("open the note", italic=True, link=self.link)]
        return _text_blocks("paragraph", rich_text(spans))

    def convert(self, blocks: list[Block], depth: int = 1) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for block in blocks:
            out.extend(self.one(block, depth))
        return out

    def _with_children(
        self, kind: str, spans: list[Span], rest: list[Block], depth: int, **extra: Any
    ) -> list[dict[str, Any]]:
        """A block with text and nested blocks; below the deepest level Notion takes in one
        request, the nested blocks follow it as siblings instead."""
        made = _text_blocks(kind, rich_text(spans), **extra)
        if not rest:
            return made
        if depth < MAX_DEPTH:
            first = made[0]
            first[first["type"]]["children"] = self.convert(rest, depth + 1)[:MAX_ITEMS]
            return made
        return made + self.convert(rest, depth)

    def one(self, block: Block, depth: int) -> list[dict[str, Any]]:
        if isinstance(block, export_blocks.Heading):
            return _text_blocks(_heading(block.level), rich_text(block.spans))
        if isinstance(block, export_blocks.Paragraph):
            return _text_blocks("paragraph", rich_text(block.spans))
        if isinstance(block, export_blocks.CodeBlock):
            return _text_blocks(
                "code", plain(block.text.rstrip("\n")), language=language(block.language)
            )
        if isinstance(block, export_blocks.Image):
            return self.image(block)
        if isinstance(block, export_blocks.Rule):
            return [{"object": "block", "type": "divider", "divider": {}}]
        if isinstance(block, export_blocks.Table):
            return _table(block)
        if isinstance(block, export_blocks.Quote):
            head, rest = _split_first(block.blocks)
            return self._with_children("quote", head, rest, depth)
        if isinstance(block, export_blocks.ListBlock):
            kind = "numbered_list_item" if block.ordered else "bulleted_list_item"
            out = []
            for item in block.items:
                head, rest = _split_first(item)
                out.extend(self._with_children(kind, head, rest, depth))
            return out
        return []


def _split_first(blocks: list[Block]) -> tuple[list[Span], list[Block]]:
    """The first paragraph's spans (a list item's or quote's own text) and the blocks after."""
    if blocks and isinstance(blocks[0], export_blocks.Paragraph):
        return list(blocks[0].spans), list(blocks[1:])
    return [], list(blocks)


def provenance_callout(document: ExportDocument) -> list[dict[str, Any]]:
    """Where the answer came from (prompt, models, tokens, cost, date, link) as a callout."""
    if document.provenance is None:
        return []
    spans: list[Span] = [Span("Saved from MultinotesAI", bold=True)]
    for label, value in document.provenance.rows():
        spans.append(Span("\n"))
        spans.append(Span(f"{label}: ", bold=True))
        link = value if label == "Link" and value.startswith(("https://", "http://")) else None
        spans.append(Span(value, link=link))
    return _text_blocks("callout", rich_text(spans), icon={"type": "emoji", "emoji": "🧭"})


def page_blocks(
    document: ExportDocument, options: ExportOptions, base_url: str | None
) -> list[dict[str, Any]]:
    """Every block of the page: the provenance callout (when asked for), then the note."""
    blocks = provenance_callout(document) if options.include_provenance else []
    parsed = export_blocks.markdown_blocks(document.markdown, base_url)
    return blocks + Converter(document).convert(parsed)


def title_text(title: str) -> list[dict[str, Any]]:
    return plain(title or "Untitled note")[:MAX_ITEMS]


def folder_intro(title: str, link: str | None) -> list[dict[str, Any]]:
    """The first line of a folder's page: where its notes come from."""
    spans = [Span("Notes of the folder "), Span(title or "Untitled folder", bold=True)]
    spans.append(Span(" in MultinotesAI"))
    if link and link.startswith(("https://", "http://")):
        spans += [Span(": "), Span("open the folder", link=link)]
    return _text_blocks("paragraph", rich_text([*spans, Span(".")]))
