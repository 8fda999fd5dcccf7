"""HTML exporter: a note, a comparison or a conversation as one standalone, sanitised page.

The body is the app's own rendering (``render_markdown``: markdown-it, then the nh3 allowlist),
so nothing a note holds can run script; the page also forbids scripts outright with a
Content-Security-Policy. Images of the user's files are embedded as ``data:`` URIs (PNG, JPEG,
GIF, WebP only), so the file needs nothing from the server. Styles (``page.css``) are inline
and include print rules: no page chrome, links printed after their text, no breaks inside code
blocks, tables or the provenance box.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Literal

from pydantic import Field

from multinotes.plugin import (
    ActionRegistrar,
    ExportAnswer,
    ExportDocument,
    Exporter,
    ExporterRegistrar,
    ExportFile,
    ExportOptions,
    Invalid,
    export_actions,
    hookimpl,
    render_markdown,
)

__version__ = "1.0.0"

STYLESHEET = Path(__file__).with_name("page.css")
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: No script, no plugin, no request anywhere: the page is complete in itself.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'"


class HtmlOptions(ExportOptions):
    theme: Literal["light", "dark"] = Field(
        default="light", description="Colours on screen (print is always light)."
    )


def _embed_images(body: str, document: ExportDocument) -> str:
    """Point the sanitised ``<img src>`` of each of the user's images at its bytes."""
    for src, image in document.images.items():
        if image.media_type not in IMAGE_TYPES:
            continue
        data = base64.b64encode(image.data).decode()
        body = body.replace(
            f'src="{html.escape(src)}"', f'src="data:{image.media_type};base64,{data}"'
        )
    return body


def _provenance(document: ExportDocument, options: ExportOptions) -> str:
    if document.provenance is None or not options.include_provenance:
        return ""
    # Side by side, each model's tokens and cost are under its name in its column.
    provenance = document.provenance
    listed = provenance.shared_rows() if document.side_by_side else provenance.rows()
    rows = []
    for label, value in listed:
        shown = html.escape(value)
        if label == "Link" and value.startswith(("http://", "https://")):
            shown = f'<a href="{html.escape(value)}">{shown}</a>'
        rows.append(f"<tr><th scope=row>{html.escape(label)}</th><td>{shown}</td></tr>")
    return (
        '<section class="provenance" aria-label="Provenance"><h2>Provenance</h2>'
        f"<table>{''.join(rows)}</table></section>\n"
    )


def _message(role: str, who: str, markdown: str) -> str:
    return (
        f'<article class="message {html.escape(role)}">'
        f"<h2>{html.escape(who)}</h2>{render_markdown(markdown)}</article>"
    )


def _answer(answer: ExportAnswer, options: ExportOptions) -> str:
    summary = ""
    if answer.source is not None and options.include_provenance:
        summary = f'<p class="answer-provenance">{html.escape(answer.source.summary())}</p>'
    return (
        f'<article class="answer"><h2>{html.escape(answer.model)}</h2>{summary}'
        f"{render_markdown(answer.markdown)}</article>"
    )


def _body(document: ExportDocument, options: ExportOptions) -> str:
    """A conversation message by message; a prompt exported from a conversation with its
    models' answers side by side (a saved comparison is a note: its own Markdown, as edited)."""
    if document.kind == "conversation" and document.messages:
        return "\n".join(
            _message(m.role, "You" if m.role == "user" else (m.model or m.role), m.markdown)
            for m in document.messages
        )
    if document.side_by_side:
        parts = [
            _message(m.role, "You" if m.role == "user" else (m.model or m.role), m.markdown)
            for m in document.lead_messages
        ]
        columns = "".join(_answer(a, options) for a in document.answers)
        parts.append(f'<section class="comparison" aria-label="Answers">{columns}</section>')
        return "\n".join(parts)
    return render_markdown(document.markdown)


def page(document: ExportDocument, options: HtmlOptions) -> str:
    css = STYLESHEET.read_text()
    body = _embed_images(_body(document, options), document)
    return (
        "<!doctype html>\n"
        f'<html lang="en" data-theme="{options.theme}"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="MultinotesAI">\n'
        f"<title>{html.escape(document.title)}</title>\n<style>{css}</style></head>\n"
        f"<body><main><h1>{html.escape(document.title)}</h1>\n"
        f"{_provenance(document, options)}<div class=content>{body}</div></main></body></html>\n"
    )


class HtmlExporter(Exporter):
    exporter_id = "html"
    name = "HTML page"
    description = "One standalone web page, images included, that prints cleanly."
    media_type = "text/html; charset=utf-8"
    extension = "html"
    Options = HtmlOptions

    async def render(self, document: ExportDocument, options: ExportOptions) -> ExportFile:
        chosen = options if isinstance(options, HtmlOptions) else HtmlOptions()
        if "\x00" in document.markdown:
            raise Invalid(
                "This note holds binary data, which an HTML page cannot show.",
                fields={"content": "contains a NUL character"},
            )
        data = page(document, chosen).encode()
        return ExportFile(data, self.media_type, self.filename(document))


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(HtmlExporter())


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    """The Export menu's entries for this format on notes, conversations and folders."""
    for action in export_actions(HtmlExporter()):
        register(action)
