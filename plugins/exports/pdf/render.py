"""The PDF exporter's typesetting with fpdf2, imported the first time a PDF is made (fpdf2 and
Pillow hold ~60 MB a web process that never exports one should not carry)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos
from PIL import Image as PILImage

from multinotes.plugin import ExportDocument, export_blocks

if TYPE_CHECKING:
    from . import PdfOptions

FONTS = Path(__file__).with_name("fonts")
SANS, MONO = "DejaVuSans", "DejaVuSansMono"
HEADING_SIZES = {1: 20, 2: 16, 3: 14, 4: 12, 5: 11, 6: 11}
BODY = 10.5
LINE = 5.6
#: Image types fpdf2 can embed (and none that can carry script, like SVG).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: A comparison's columns: text size, line height, padding, the space between paragraphs, and
#: the smaller text of each answer's provenance.
CELL_SIZE = 8.5
CELL_LINE = 4.2
CELL_PADDING = 1.8
PIECE_GAP = 1.6
META_SIZE = 7
META_LINE = 3.5
CELL_FONTS = {
    "text": (SANS, "", CELL_SIZE),
    "heading": (SANS, "B", CELL_SIZE + 1),
    "quote": (SANS, "I", CELL_SIZE),
    "code": (MONO, "", CELL_SIZE - 1),
}
#: Answers side by side turn the page sideways from this many columns.
LANDSCAPE_FROM = 3


@dataclass(frozen=True)
class Picture:
    """An image of a comparison's column: its ``src`` in ``ExportDocument.images`` and the size
    it is set at (mm)."""

    src: str
    width: float
    height: float


#: Text wrapped to a column's width; a column's answer as (style, lines or a picture) pieces.
#: (Named here: inside ``Renderer``, ``list`` is its method.)
Lines = list[str]
Pieces = list[tuple[str, Lines | Picture]]
#: The tallest an image in a comparison's column is set (mm).
PICTURE_HEIGHT = 70.0


class NotePdf(FPDF):
    """Pages with the note's title in the header and "page n of m" in the footer."""

    def __init__(self, title: str, page_size: str, landscape: bool = False) -> None:
        super().__init__(orientation="L" if landscape else "P", format=page_size)
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
        landscape = document.side_by_side and len(document.answers) >= LANDSCAPE_FROM
        self.pdf = NotePdf(document.title, options.page_size, landscape)
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
        # Side by side, each model's tokens and cost are in its own column.
        rows = provenance.shared_rows() if self.document.side_by_side else provenance.rows()
        if not rows:
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
            for label, value in rows:
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
        if (document.kind == "conversation" and document.messages) or document.side_by_side:
            for message in document.lead_messages:
                who = "You" if message.role == "user" else (message.model or message.role)
                pdf.set_font(SANS, "B", 11)
                pdf.set_fill_color(243, 244, 246)
                pdf.cell(0, 7, who, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
                self.blocks(export_blocks.markdown_blocks(message.markdown, self.base_url))
            if document.side_by_side:
                self.comparison()
        else:
            self.blocks(export_blocks.markdown_blocks(document.markdown, self.base_url))
        return bytes(pdf.output())

    # -- a comparison ----------------------------------------------------------------------

    def comparison(self) -> None:
        """The answers side by side: one equal column per model, its name on top (again on
        every page the answers run over), its tokens, cost and date below, then its answer.
        Each column flows on its own, so a short answer leaves no gaps in a long one."""
        pdf = self.pdf
        answers = self.document.answers
        width = pdf.epw / len(answers)
        inner = width - 2 * CELL_PADDING
        columns = [
            Column(self.pieces(export_blocks.markdown_blocks(a.markdown, self.base_url), inner))
            for a in answers
        ]
        # Heads are cut to a few lines, so every page has room for the answers below them.
        meta = [
            self.wrap(a.source.summary() if a.source else "", inner, SANS, "", META_SIZE)[:6]
            for a in answers
        ]
        show_meta = self.options.include_provenance and any(a.source for a in answers)
        names = [self.wrap(a.model, inner, SANS, "B", CELL_SIZE + 1)[:3] for a in answers]
        auto_break, bottom_margin = pdf.auto_page_break, pdf.b_margin
        pdf.set_auto_page_break(False)  # the columns break their pages themselves
        bottom = pdf.h - bottom_margin
        top = pdf.get_y() + 2
        if top + 12 * CELL_LINE + 6 * META_LINE > bottom:  # the heads would sit alone
            pdf.add_page()
            top = pdf.get_y()
        first = True
        while first or any(c.remaining for c in columns):
            if not first:
                pdf.add_page()
                top = pdf.get_y()
            top = self.column_heads(names, width, top)
            if first and show_meta:
                top = self.column_meta(meta, width, top)
            end = top
            for index, column in enumerate(columns):
                x = pdf.l_margin + index * width + CELL_PADDING
                end = max(end, self.flow(column, x, top + CELL_PADDING, bottom))
            pdf.set_draw_color(200, 200, 200)
            for index in range(1, len(columns)):
                x = pdf.l_margin + index * width
                pdf.line(x, top, x, end)
            pdf.line(pdf.l_margin, end, pdf.l_margin + pdf.epw, end)
            pdf.set_y(end)
            first = False
        pdf.set_auto_page_break(auto_break, bottom_margin)
        pdf.set_font(SANS, "", BODY)
        pdf.ln(3)

    def column_heads(self, names: Sequence[Lines], width: float, top: float) -> float:
        """Each model's name atop its column (shaded); the y below them."""
        pdf = self.pdf
        height = max(len(n) for n in names) * CELL_LINE + 2 * CELL_PADDING
        pdf.set_fill_color(238, 242, 255)
        pdf.rect(pdf.l_margin, top, pdf.epw, height, style="F")
        pdf.set_font(SANS, "B", CELL_SIZE + 1)
        for index, lines in enumerate(names):
            x = pdf.l_margin + index * width + CELL_PADDING
            for number, line in enumerate(lines):
                pdf.set_xy(x, top + CELL_PADDING + number * CELL_LINE)
                pdf.cell(width - 2 * CELL_PADDING, CELL_LINE, line)
        return top + height

    def column_meta(self, meta: Sequence[Lines], width: float, top: float) -> float:
        """Each answer's provenance (provider, tokens, cost, date) under its model's name."""
        pdf = self.pdf
        height = max(len(m) for m in meta) * META_LINE + 2 * CELL_PADDING
        pdf.set_fill_color(248, 250, 255)
        pdf.rect(pdf.l_margin, top, pdf.epw, height, style="F")
        pdf.set_font(SANS, "", META_SIZE)
        pdf.set_text_color(90, 90, 90)
        for index, lines in enumerate(meta):
            x = pdf.l_margin + index * width + CELL_PADDING
            for number, line in enumerate(lines):
                pdf.set_xy(x, top + CELL_PADDING + number * META_LINE)
                pdf.cell(width - 2 * CELL_PADDING, META_LINE, line)
        pdf.set_text_color(0, 0, 0)
        return top + height

    def flow(self, column: Column, x: float, y: float, bottom: float) -> float:
        """Set as much of ``column`` as fits between ``y`` and ``bottom``; the y it reached."""
        pdf = self.pdf
        top = y
        while column.remaining:
            kind, lines = column.pieces[column.piece]
            if isinstance(lines, Picture):
                if y + lines.height > bottom and y > top:
                    break  # on the next page, where it fits
                scale = min(1.0, (bottom - y) / lines.height)
                image = self.document.image(lines.src)
                assert image is not None  # pieces() made a Picture only for one it has
                pdf.image(
                    io.BytesIO(image.data),
                    x=x,
                    y=y,
                    w=lines.width * scale,
                    h=lines.height * scale,
                )
                y += lines.height * scale + PIECE_GAP
                column.piece, column.line = column.piece + 1, 0
                continue
            room = int((bottom - y) // CELL_LINE)
            if room <= 0:
                break
            family, style, size = CELL_FONTS.get(kind, CELL_FONTS["text"])
            pdf.set_font(family, style, size)
            if kind == "quote":
                pdf.set_text_color(80, 80, 80)
            shown = lines[column.line : column.line + room]
            for line in shown:
                pdf.set_xy(x, y)
                pdf.cell(0, CELL_LINE, line)
                y += CELL_LINE
            pdf.set_text_color(0, 0, 0)
            column.line += len(shown)
            if column.line < len(lines):
                break  # the rest of this piece goes on the next page
            column.piece, column.line = column.piece + 1, 0
            y += PIECE_GAP
        return y + CELL_PADDING

    def wrap(self, text: str, width: float, family: str, style: str, size: float) -> Lines:
        """``text`` as the lines it takes ``width`` wide in that font."""
        self.pdf.set_font(family, style, size)
        lines = self.pdf.multi_cell(
            width, CELL_LINE, text or " ", dry_run=True, output=MethodReturnValue.LINES
        )
        assert isinstance(lines, list)  # what output=LINES returns
        return [str(line) for line in lines] or [""]

    def pieces(self, blocks: Sequence[export_blocks.Block], width: float) -> Pieces:
        """``blocks`` as (style, lines) pieces wrapped ``width`` wide: a paragraph, a list
        item, a code block..."""
        pieces: Pieces = []
        for kind, text in _flatten(blocks):
            if kind == "image":
                src, _, alt = text.partition("\n")
                picture = self.picture(src, width)
                if picture is not None:
                    pieces.append((kind, picture))
                    continue
                kind, text = "text", f"[Image: {alt or src}]"
            family, style, size = CELL_FONTS.get(kind, CELL_FONTS["text"])
            pieces.append((kind, self.wrap(text, width, family, style, size)))
        return pieces

    def picture(self, src: str, width: float) -> Picture | None:
        """One of the document's images, at most ``width`` wide and ``PICTURE_HEIGHT`` tall
        (None: not one it has, or not an image after all, so its name is shown instead)."""
        image = self.document.image(src)
        if image is None or image.media_type not in IMAGE_TYPES:
            return None
        try:
            with PILImage.open(io.BytesIO(image.data)) as opened:
                pixels_wide, pixels_high = opened.size
        except Exception:
            return None
        if not pixels_wide or not pixels_high:
            return None
        # At most the column's width, never blown up past 96 dpi, at most PICTURE_HEIGHT.
        wide = min(width, pixels_wide * 25.4 / 96)
        high = wide * pixels_high / pixels_wide
        if high > PICTURE_HEIGHT:
            wide, high = wide * PICTURE_HEIGHT / high, PICTURE_HEIGHT
        return Picture(src, wide, high)


@dataclass
class Column:
    """One answer's pieces, and how far they have been set."""

    pieces: Pieces
    piece: int = 0
    line: int = 0

    @property
    def remaining(self) -> bool:
        return self.piece < len(self.pieces)


def _flatten(
    blocks: Sequence[export_blocks.Block], depth: int = 0, quoted: bool = False
) -> list[tuple[str, str]]:
    """Blocks as (style, text) paragraphs for a table cell, where fpdf2 sets plain text in one
    font: list items keep their markers and indents, tables become rows of ``a | b``, an image
    is named."""
    out: list[tuple[str, str]] = []
    text_kind = "quote" if quoted else "text"
    indent = "    " * depth
    for block in blocks:
        if isinstance(block, export_blocks.Heading):
            out.append(("heading", export_blocks.spans_text(block.spans)))
        elif isinstance(block, export_blocks.Paragraph):
            out.append((text_kind, indent + export_blocks.spans_text(block.spans)))
        elif isinstance(block, export_blocks.CodeBlock):
            out.append(("code", block.text))
        elif isinstance(block, export_blocks.ListBlock):
            for number, item in enumerate(block.items, start=block.start):
                marker = f"{number}." if block.ordered else ("•" if depth % 2 == 0 else "◦")
                first, *rest = item or [export_blocks.Paragraph([])]
                if isinstance(first, export_blocks.Paragraph):
                    text = export_blocks.spans_text(first.spans)
                    out.append((text_kind, f"{indent}{marker} {text}"))
                else:
                    out.append((text_kind, f"{indent}{marker}"))
                    rest = [first, *rest]
                out.extend(_flatten(rest, depth + 1, quoted))
        elif isinstance(block, export_blocks.Quote):
            out.extend(_flatten(block.blocks, depth, quoted=True))
        elif isinstance(block, export_blocks.Table):
            rows = [block.header, *block.rows] if block.header else list(block.rows)
            lines = [" | ".join(export_blocks.spans_text(cell) for cell in row) for row in rows]
            out.append((text_kind, "\n".join(lines)))
        elif isinstance(block, export_blocks.Image):
            out.append(("image", f"{block.src}\n{block.alt}"))
        elif isinstance(block, export_blocks.Rule):
            out.append((text_kind, "—" * 6))
    return out


def _base_of(link: str | None) -> str | None:
    if not link or "://" not in link:
        return None
    scheme, rest = link.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"
