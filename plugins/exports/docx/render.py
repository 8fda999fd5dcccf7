"""The Word exporter's writer with python-docx, imported the first time a .docx is made (a web
process that never exports one does not carry python-docx and lxml)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from urllib.parse import urlsplit

from docx import Document as new_document
from docx.document import Document
from docx.enum.section import WD_ORIENT
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Length, Pt
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from multinotes.plugin import ExportDocument, ExportOptions, export_blocks

#: Image types Word shows (and none that can carry script, like SVG).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
ALIGN = {
    "left": WD_ALIGN_PARAGRAPH.LEFT,
    "right": WD_ALIGN_PARAGRAPH.RIGHT,
    "center": WD_ALIGN_PARAGRAPH.CENTER,
}
#: Answers side by side turn the page sideways from this many columns.
LANDSCAPE_FROM = 3
IMAGE_WIDTH = Inches(5.5)
# Word allows characters of XML 1.0 only; a note may hold others (control characters).
_XML_FORBIDDEN = {i for i in range(32) if i not in (9, 10, 13)}


def _clean(text: str) -> str:
    return text.translate({i: None for i in _XML_FORBIDDEN})


def _styles(doc: Document) -> None:
    styles = doc.styles
    code = styles.add_style("Code", WD_STYLE_TYPE.PARAGRAPH)
    code.base_style = styles["Normal"]
    code.font.name = "Consolas"
    code.font.size = Pt(9)
    code.paragraph_format.space_after = Pt(6)
    shading = OxmlElement("w:shd")
    shading.set(qn("w:val"), "clear")
    shading.set(qn("w:fill"), "F3F4F6")
    code.element.get_or_add_pPr().append(shading)
    char = styles.add_style("Code Char", WD_STYLE_TYPE.CHARACTER)
    char.font.name = "Consolas"
    char.font.size = Pt(9.5)


class Writer:
    def __init__(self, document: ExportDocument, options: ExportOptions) -> None:
        self.document = document
        self.options = options
        self.doc = new_document()
        _styles(self.doc)
        #: Where blocks go: the document, or a comparison table's cell.
        self.body: Document | _Cell = self.doc
        #: A cell not written to yet (its first paragraph is still to be used).
        self.fresh_cell: _Cell | None = None
        self.image_width: Length = IMAGE_WIDTH
        parts = urlsplit(document.link or "")
        self.base_url = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None

    def runs(self, paragraph: Paragraph, spans: Sequence[export_blocks.Span]) -> None:
        for span in spans:
            text = _clean(span.text)
            if span.link:
                self.hyperlink(paragraph, text, span.link)
                continue
            run = paragraph.add_run(text)
            run.bold = span.bold or None
            run.italic = span.italic or None
            if span.strike:
                run.font.strike = True
            if span.code:
                run.style = self.doc.styles["Code Char"]

    def hyperlink(self, paragraph: Paragraph, text: str, url: str) -> None:
        rel = paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
        link = OxmlElement("w:hyperlink")
        link.set(qn("r:id"), rel)
        run = OxmlElement("w:r")
        props = OxmlElement("w:rPr")
        style = OxmlElement("w:rStyle")
        style.set(qn("w:val"), "Hyperlink")
        props.append(style)
        color = OxmlElement("w:color")
        color.set(qn("w:val"), "1450AA")
        props.append(color)
        underline = OxmlElement("w:u")
        underline.set(qn("w:val"), "single")
        props.append(underline)
        run.append(props)
        node = OxmlElement("w:t")
        node.text = text
        node.set(qn("xml:space"), "preserve")
        run.append(node)
        link.append(run)
        paragraph._p.append(link)

    def paragraph(self, text: str = "", style: str | None = None) -> Paragraph:
        """A new paragraph in ``body``; in a cell, the first is the empty paragraph Word gives
        every cell."""
        if self.fresh_cell is not None:
            paragraph, self.fresh_cell = self.fresh_cell.paragraphs[0], None
            if text:
                paragraph.add_run(text)
            if style is not None:
                paragraph.style = self.doc.styles[style]
            return paragraph
        return self.body.add_paragraph(text, style=style)

    def blocks(self, blocks: Sequence[export_blocks.Block], depth: int = 0) -> None:
        for block in blocks:
            self.block(block, depth)

    def block(self, block: export_blocks.Block, depth: int) -> None:
        if isinstance(block, export_blocks.Heading):
            self.runs(self.paragraph(style=f"Heading {min(block.level, 6)}"), block.spans)
        elif isinstance(block, export_blocks.Paragraph):
            self.runs(self.paragraph(), block.spans)
        elif isinstance(block, export_blocks.CodeBlock):
            self.paragraph(_clean(block.text), style="Code")
        elif isinstance(block, export_blocks.ListBlock):
            self.list(block, depth)
        elif isinstance(block, export_blocks.Quote):
            for inner in block.blocks:
                if isinstance(inner, export_blocks.Paragraph):
                    self.runs(self.paragraph(style="Quote"), inner.spans)
                else:
                    self.block(inner, depth)
        elif isinstance(block, export_blocks.Table):
            self.table(block)
        elif isinstance(block, export_blocks.Image):
            self.image(block)
        elif isinstance(block, export_blocks.Rule):
            paragraph = self.paragraph()
            border = OxmlElement("w:pBdr")
            bottom = OxmlElement("w:bottom")
            for key, value in (("val", "single"), ("sz", "6"), ("space", "1"), ("color", "CCCCCC")):
                bottom.set(qn(f"w:{key}"), value)
            border.append(bottom)
            paragraph._p.get_or_add_pPr().append(border)

    def list(self, block: export_blocks.ListBlock, depth: int) -> None:
        base = "List Number" if block.ordered else "List Bullet"
        style = base if depth == 0 else f"{base} {min(depth + 1, 3)}"
        for item in block.items:
            first, *rest = item or [export_blocks.Paragraph([])]
            paragraph = self.paragraph(style=style)
            if isinstance(first, export_blocks.Paragraph):
                self.runs(paragraph, first.spans)
            else:
                rest = [first, *rest]
            self.blocks(rest, depth + 1)

    def table(self, block: export_blocks.Table) -> None:
        rows = [block.header, *block.rows] if block.header else list(block.rows)
        columns = max([len(r) for r in rows] or [1])
        table = self.body.add_table(len(rows), columns)
        table.style = self.doc.styles["Table Grid"]
        for r, cells in enumerate(rows):
            for c in range(columns):
                cell: _Cell = table.cell(r, c)
                paragraph = cell.paragraphs[0]
                spans = cells[c] if c < len(cells) else []
                if r == 0 and block.header:
                    spans = [export_blocks.Span(s.text, bold=True, link=s.link) for s in spans]
                self.runs(paragraph, spans)
                if c < len(block.align) and block.align[c] in ALIGN:
                    paragraph.alignment = ALIGN[block.align[c]]
        if not isinstance(self.body, _Cell):  # a cell ends with a paragraph of its own
            self.body.add_paragraph()

    def image(self, block: export_blocks.Image) -> None:
        image = self.document.image(block.src)
        if image is None or image.media_type not in IMAGE_TYPES:
            link = export_blocks.safe_link(block.src, self.base_url)
            text = f"[Image: {block.alt or block.src}]"
            self.runs(self.paragraph(), [export_blocks.Span(text, link=link)])
            return
        paragraph = self.paragraph()
        try:
            paragraph.add_run().add_picture(io.BytesIO(image.data), width=self.image_width)
        except Exception:  # not an image after all: say so instead of failing the export
            paragraph.add_run(_clean(f"[Image that could not be read: {image.name}]"))
            return
        if block.alt:
            self.paragraph(_clean(block.alt), style="Caption")

    def provenance(self) -> None:
        provenance = self.document.provenance
        if provenance is None or not self.options.include_provenance:
            return
        # Side by side, each model's tokens and cost are in its own column.
        rows = provenance.shared_rows() if self.document.side_by_side else provenance.rows()
        if not rows:
            return
        self.doc.add_heading("Provenance", level=2)
        table = self.doc.add_table(rows=len(rows), cols=2)
        table.style = self.doc.styles["Table Grid"]
        for index, (label, value) in enumerate(rows):
            table.cell(index, 0).paragraphs[0].add_run(label).bold = True
            cell = table.cell(index, 1).paragraphs[0]
            if label == "Link" and value.startswith(("http://", "https://")):
                self.hyperlink(cell, value, value)
            else:
                cell.add_run(_clean(value))
        self.doc.add_paragraph()

    def render(self) -> bytes:
        document = self.document
        self.doc.core_properties.title = _clean(document.title)[:255]
        self.doc.add_heading(_clean(document.title), level=0)
        if document.side_by_side and len(document.answers) >= LANDSCAPE_FROM:
            _landscape(self.doc)
        self.provenance()
        if (document.kind == "conversation" and document.messages) or document.side_by_side:
            for message in document.lead_messages:
                who = "You" if message.role == "user" else (message.model or message.role)
                self.doc.add_heading(_clean(who), level=2)
                self.blocks(export_blocks.markdown_blocks(message.markdown, self.base_url))
            if document.side_by_side:
                self.comparison()
        else:
            self.blocks(export_blocks.markdown_blocks(document.markdown, self.base_url))
        out = io.BytesIO()
        self.doc.save(out)
        return out.getvalue()

    def comparison(self) -> None:
        """The answers side by side: a table with one equal column per model, its name in the
        header row (repeated on every page), its provenance in the row below, then its answer
        in full Word styles."""
        answers = self.document.answers
        show_meta = self.options.include_provenance and any(a.source for a in answers)
        table = self.doc.add_table(rows=3 if show_meta else 2, cols=len(answers))
        table.style = self.doc.styles["Table Grid"]
        _repeat_as_header(table)
        section = self.doc.sections[-1]
        margins = (section.left_margin or 0) + (section.right_margin or 0)
        width = Length(((section.page_width or 0) - margins) // len(answers))
        self.image_width = Length(min(IMAGE_WIDTH, width - Inches(0.2)))
        for index, answer in enumerate(answers):
            for row in table.rows:
                row.cells[index].width = width
            head = table.cell(0, index).paragraphs[0]
            head.add_run(_clean(answer.model)).bold = True
            if show_meta:
                meta = table.cell(1, index).paragraphs[0]
                run = meta.add_run(_clean(answer.source.summary() if answer.source else ""))
                run.font.size = Pt(8)
            self.body = self.fresh_cell = table.cell(len(table.rows) - 1, index)
            self.blocks(export_blocks.markdown_blocks(answer.markdown, self.base_url))
        self.body, self.fresh_cell, self.image_width = self.doc, None, IMAGE_WIDTH
        self.doc.add_paragraph()


def _landscape(doc: Document) -> None:
    section = doc.sections[-1]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = section.page_height, section.page_width


def _repeat_as_header(table: Table) -> None:
    """Word repeats the table's first row atop every page it runs over."""
    props = table.rows[0]._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    props.append(header)
