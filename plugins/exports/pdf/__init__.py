"""PDF exporter: a note, a comparison or a conversation as a paginated PDF (fpdf2).

Text is set in DejaVu (shipped in ``fonts/``, with its licence), so any script DejaVu covers
prints as it is. Headings, paragraphs with bold, italic, code and links, nested lists, code
blocks, tables, quotes, images of the user's files, a provenance box and page numbers. The PDF
holds no JavaScript and no actions but links to http(s) and mailto addresses: raw HTML in a note
is printed as text.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from fpdf import FPDF
from fpdf.enums import XPos, YPos
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
    export_blocks,
    hookimpl,
)

__version__ = "1.0.0"

FONTS = Path(__file__).with_name("fonts")
SANS, MONO = "DejaVuSans", "DejaVuSansMono"
HEADING_SIZES = {1: 20, 2: 16, 3: 14, 4: 12, 5: 11, 6: 11}
BODY = 10.5
LINE = 5.6
#: Image types fpdf2 can embed (and none that can carry script, like SVG).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class PdfOptions(ExportOptions):
    page_size: Literal["A4", "Letter"] = Field(default="A4", description="Paper size.")


class NotePdf(FPDF):
    """Pages with the note's title in the header and "page n of m" in the footer."""

    def __init__(self, title: str, page_size: str) -> None:
        super().__init__(format=page_size)
        self.note_title = title
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(auto=True, margin=18)
        self.add_font(SANS, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(SANS, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.add_font(SANS, "I", str(FONTS / "DejaVuSans-Oblique.ttf"))
        self.add_font(SANS, "BI", str(FONTS / "DejaVuSans-BoldOblique.ttf"))
        self.add_font(MONO, "", str(FONTS / "DejaVuSansMono.ttf"))
        self.set_title(title)
        self.set_creator("MultinotesAI")

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(SANS, "", 8)
        self.set_text_color(120, 120, 120)
        self.cell(0, 6, self.note_title[:90], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0, 0, 0)
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(SANS, "", 8)
        self.set_text_color(120, 120, 120)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0, 0, 0)


class Renderer:
    def __init__(self, document: ExportDocument, options: PdfOptions) -> None:
        self.document = document
        self.options = options
        self.pdf = NotePdf(document.title, options.page_size)
        self.base_url = _base_of(document.link)

    # -- inline ----------------------------------------------------------------------------

    def spans(
        self, spans: Sequence[export_blocks.Span], size: float = BODY, bold: bool = False
    ) -> None:
        pdf = self.pdf
        for span in spans:
            if span.code:
                pdf.set_font(MONO, "", size - 1)
            else:
                style = ("B" if span.bold or bold else "") + ("I" if span.italic else "")
                pdf.set_font(SANS, style, size)
            if span.link:
                pdf.set_text_color(20, 80, 170)
                pdf.write(size * 0.53, span.text, link=span.link)
                pdf.set_text_color(0, 0, 0)
            else:
                pdf.write(size * 0.53, span.text)
        pdf.ln(size * 0.53)
        pdf.set_font(SANS, "", BODY)

    # -- blocks ----------------------------------------------------------------------------

    def blocks(self, blocks: Sequence[export_blocks.Block], depth: int = 0) -> None:
        for block in blocks:
            self.block(block, depth)

    def block(self, block: export_blocks.Block, depth: int) -> None:
        pdf = self.pdf
        if isinstance(block, export_blocks.Heading):
            size = HEADING_SIZES.get(block.level, BODY)
            pdf.ln(2)
            self.spans(block.spans, size=size, bold=True)
            pdf.ln(1.5)
        elif isinstance(block, export_blocks.Paragraph):
            self.spans(block.spans)
            pdf.ln(2)
        elif isinstance(block, export_blocks.CodeBlock):
            pdf.set_font(MONO, "", 9)
            pdf.set_fill_color(243, 244, 246)
            pdf.multi_cell(
                0, 4.6, block.text or " ", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
            pdf.set_font(SANS, "", BODY)
            pdf.ln(2.5)
        elif isinstance(block, export_blocks.ListBlock):
            self.list(block, depth)
        elif isinstance(block, export_blocks.Quote):
            left = pdf.l_margin
            pdf.set_left_margin(left + 6)
            pdf.set_x(left + 6)
            pdf.set_text_color(80, 80, 80)
            self.blocks(block.blocks, depth)
            pdf.set_text_color(0, 0, 0)
            pdf.set_left_margin(left)
            pdf.set_x(left)
        elif isinstance(block, export_blocks.Table):
            self.table(block)
        elif isinstance(block, export_blocks.Image):
            self.image(block)
        elif isinstance(block, export_blocks.Rule):
            y = pdf.get_y() + 2
            pdf.set_draw_color(200, 200, 200)
            pdf.line(pdf.l_margin, y, pdf.w - pdf.r_margin, y)
            pdf.ln(5)

    def list(self, block: export_blocks.ListBlock, depth: int) -> None:
        pdf = self.pdf
        left = pdf.l_margin
        indent = 6.0
        for number, item in enumerate(block.items, start=block.start):
            marker = f"{number}." if block.ordered else ("•" if depth % 2 == 0 else "◦")
            pdf.set_x(left)
            pdf.set_font(SANS, "", BODY)
            pdf.cell(indent, LINE, marker)
            pdf.set_left_margin(left + indent)
            first, *rest = item or [export_blocks.Paragraph([])]
            if isinstance(first, export_blocks.Paragraph):
                self.spans(first.spans)
            else:
                pdf.ln(LINE)
                rest = [first, *rest]
            self.blocks(rest, depth + 1)
            pdf.set_left_margin(left)
            pdf.set_x(left)
        pdf.ln(1.5)

    def table(self, block: export_blocks.Table) -> None:
        pdf = self.pdf
        pdf.set_font(SANS, "", 9)
        columns = max([1, len(block.header), *(len(r) for r in block.rows)])
        align = {"left": "LEFT", "right": "RIGHT", "center": "CENTER"}
        aligns = [align.get(a, "LEFT") for a in block.align] + ["LEFT"] * columns
        with pdf.table(
            text_align=tuple(aligns[:columns]),
            line_height=4.8,
            first_row_as_headings=bool(block.header),
        ) as table:
            for cells in [block.header, *block.rows] if block.header else block.rows:
                row = table.row()
                for index in range(columns):
                    spans = cells[index] if index < len(cells) else []
                    row.cell(export_blocks.spans_text(spans))
        pdf.set_font(SANS, "", BODY)
        pdf.ln(2)

    def image(self, block: export_blocks.Image) -> None:
        pdf = self.pdf
        image = self.document.image(block.src)
        if image is None or image.media_type not in IMAGE_TYPES:
            link = export_blocks.safe_link(block.src, self.base_url)
            self.spans([export_blocks.Span(f"[Image: {block.alt or block.src}]", link=link)])
            return
        try:
            info = pdf.image(io.BytesIO(image.data), w=0, h=0)
        except Exception:  # not an image after all: say so instead of failing the export
            self.spans([export_blocks.Span(f"[Image that could not be read: {image.name}]")])
            return
        del info
        pdf.ln(2)

    def provenance(self) -> None:
        provenance = self.document.provenance
        if provenance is None or not self.options.include_provenance:
            return
        pdf = self.pdf
        pdf.set_font(SANS, "B", 10)
        pdf.set_fill_color(238, 242, 255)
        pdf.cell(0, 7, "Provenance", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(SANS, "", 9)
        with pdf.table(
            col_widths=(22, 78),
            line_height=4.8,
            first_row_as_headings=False,
            cell_fill_color=(248, 250, 255),
            cell_fill_mode="ALL",
        ) as table:
            for label, value in provenance.rows():
                row = table.row()
                row.cell(label)
                is_link = label == "Link" and value.startswith(("http://", "https://"))
                row.cell(value, link=value if is_link else None)
        pdf.set_font(SANS, "", BODY)
        pdf.ln(4)

    def render(self) -> bytes:
        pdf = self.pdf
        document = self.document
        pdf.add_page()
        pdf.set_font(SANS, "B", 22)
        pdf.multi_cell(0, 10, document.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
        self.provenance()
        if document.kind == "conversation" and document.messages:
            for message in document.messages:
                who = "You" if message.role == "user" else (message.model or message.role)
                pdf.set_font(SANS, "B", 11)
                pdf.set_fill_color(243, 244, 246)
                pdf.cell(0, 7, who, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
                self.blocks(export_blocks.markdown_blocks(message.markdown, self.base_url))
        else:
            self.blocks(export_blocks.markdown_blocks(document.markdown, self.base_url))
        return bytes(pdf.output())


def _base_of(link: str | None) -> str | None:
    if not link or "://" not in link:
        return None
    scheme, rest = link.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


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
