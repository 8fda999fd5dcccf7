"""PDF exporter: a note, a comparison or a conversation as a paginated PDF (fpdf2).

Text is set in DejaVu (shipped in ``fonts/``, with its licence), so any script DejaVu covers
prints as it is. Headings, paragraphs with bold, italic, code and links, nested lists, code
blocks, tables, quotes, images of the user's files, a provenance box and page numbers. The PDF
holds no JavaScript and no actions but links to http(s) and mailto addresses: raw HTML in a note
is printed as text.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field

from multinotes.plugin import (
    ActionRegistrar,
    ExportDocument,
    Exporter,
    ExporterRegistrar,
    ExportFile,
    ExportOptions,
    Invalid,
    export_actions,
    hookimpl,
)

__version__ = "1.0.0"


class PdfOptions(ExportOptions):
    page_size: Literal["A4", "Letter"] = Field(default="A4", description="Paper size.")


class PdfExporter(Exporter):
    exporter_id = "pdf"
    name = "PDF"
    description = "A printable PDF with the provenance box and page numbers."
    media_type = "application/pdf"
    extension = "pdf"
    Options = PdfOptions

    async def render(self, document: ExportDocument, options: ExportOptions) -> ExportFile:
        chosen = options if isinstance(options, PdfOptions) else PdfOptions()
        if "\x00" in document.markdown:
            raise Invalid(
                "This note holds binary data, which a PDF cannot show.",
                fields={"content": "contains a NUL character"},
            )
        from .render import Renderer  # fpdf2 on first use: see render.py

        data = await asyncio.to_thread(Renderer(document, chosen).render)
        return ExportFile(data, self.media_type, self.filename(document))


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(PdfExporter())


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    """The Export menu's entries for this format on notes, conversations and folders."""
    for action in export_actions(PdfExporter()):
        register(action)
