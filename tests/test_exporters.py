"""The export formats: each file is opened with a real reader (pypdf, python-docx, an HTML
parser, a YAML-shaped front matter) and checked by what it says, not by its size; nothing a note
holds becomes script in the HTML or an action in the PDF."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from html.parser import HTMLParser

import docx
import pypdf
import pytest
from PIL import Image

from multinotes.exporters import safe_filename
from multinotes.plugin import (
    ExportAnswer,
    ExportDocument,
    Exporter,
    ExportFile,
    ExportImage,
    ExportMessage,
    ExportOptions,
    ExportSource,
    Invalid,
    Provenance,
    export_blocks,
)
from multinotes.plugins.exports.docx import DocxExporter
from multinotes.plugins.exports.html import HtmlExporter, HtmlOptions
from multinotes.plugins.exports.markdown import MarkdownExporter
from multinotes.plugins.exports.pdf import PdfExporter, PdfOptions

IMAGE_SRC = "/api/files/f1/content"
NOTE = f"""# Trip to Lisbon — día uno

Walk to **Alfama**, then *tram 28*; take `cash`. See [the map](https://example.org/map).

- Pastéis de nata
- Miradouros
  1. Santa Luzia
  2. Graça

```python
print("olá")
```

| Place | Cost |
|:------|-----:|
| Belém | 10 € |

> Bring water.

![Harbour]({IMAGE_SRC})
"""
HOSTILE = """<script>alert("html")</script>

[click](javascript:alert('link')) and <img src=x onerror=alert(1)>

<a href="javascript:alert(2)">raw</a> [data](data:text/html;base64,PHNjcmlwdD4=)
"""


def png(color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 40), color).save(out, "PNG")
    return out.getvalue()


def note(markdown: str = NOTE, **changes: object) -> ExportDocument:
    provenance = Provenance(
        prompt="Plan a day in Lisbon",
        sources=(ExportSource("demo/swatch", "demo", 120, 480, 1234),),
        saved_at=datetime(2026, 5, 4, 9, 30, tzinfo=UTC),
        link="http://notes.example/notes/n1",
    )
    fields: dict[str, object] = {
        "title": "Lisbon: day one",
        "markdown": markdown,
        "provenance": provenance,
        "images": {IMAGE_SRC: ExportImage(IMAGE_SRC, png(), "image/png", "harbour.png")},
        "link": "http://notes.example/notes/n1",
        "metadata": {"model": "demo/swatch"},
    }
    fields.update(changes)
    return ExportDocument(**fields)  # type: ignore[arg-type]


def pdf_text(data: bytes) -> tuple[pypdf.PdfReader, str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def pdf_link_targets(reader: pypdf.PdfReader) -> list[str]:
    targets = []
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            action = annotation.get_object().get("/A") or {}
            targets.append(f"{action.get('/S')} {action.get('/URI')}")
    return targets


class Page(HTMLParser):
    """The tags, attributes and text of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


# -- PDF ------------------------------------------------------------------------------------------


async def test_a_note_becomes_a_pdf_with_its_text_provenance_image_and_page_numbers():
    result = await PdfExporter().render(note(), PdfOptions())
    assert isinstance(result, ExportFile)
    assert (result.media_type, result.filename) == ("application/pdf", "Lisbon- day one.pdf")
    reader, text = pdf_text(await result.read())
    assert "Trip to Lisbon — día uno" in text  # Unicode through the shipped DejaVu font
    assert "demo/swatch (demo)" in text and "Plan a day in Lisbon" in text
    assert "120 in, 480 out" in text and "1,234 credits" in text
    assert "Santa Luzia" in text and 'print("olá")' in text and "Belém" in text
    assert "Page 1 of" in text
    assert len(reader.pages[0].images) == 1
    fonts = {
        str(font.get_object()["/BaseFont"])
        for page in reader.pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert any("DejaVuSans" in f for f in fonts)
    assert "/URI https://example.org/map" in pdf_link_targets(reader)
    assert "/URI http://notes.example/notes/n1" in pdf_link_targets(reader)


async def test_pdf_page_size_and_provenance_are_options():
    letter = await PdfExporter().render(note(), PdfOptions(page_size="Letter"))
    reader, _ = pdf_text(await letter.read())
    width, height = reader.pages[0].mediabox.width, reader.pages[0].mediabox.height
    assert (round(float(width)), round(float(height))) == (612, 792)
    bare = await PdfExporter().render(note(), PdfOptions(include_provenance=False))
    _, text = pdf_text(await bare.read())
    assert "Provenance" not in text and "Plan a day in Lisbon" not in text


async def test_a_long_note_runs_over_several_numbered_pages():
    long = "\n\n".join(f"Paragraph {i} " + "words " * 60 for i in range(60))
    _, text = pdf_text(await PdfExporter().export(note(long)))
    reader = pypdf.PdfReader(io.BytesIO(await PdfExporter().export(note(long))))
    assert len(reader.pages) > 3
    assert f"Page {len(reader.pages)} of {len(reader.pages)}" in text
    assert "Paragraph 59" in text


async def test_nothing_in_a_note_becomes_script_or_an_action_in_the_pdf():
    data = await PdfExporter().export(note(HOSTILE))
    reader, text = pdf_text(data)
    assert '<script>alert("html")</script>' in text  # printed as the text it is
    assert all(t.startswith("/URI http") for t in pdf_link_targets(reader))
    assert b"/JavaScript" not in data and b"/JS" not in data and b"javascript:" not in data
    root = reader.trailer["/Root"]
    assert "/Names" not in root and "/AA" not in root  # no document-level scripts
    assert isinstance(root.get("/OpenAction", []), list)  # a view to open at, not an action


# -- Word -----------------------------------------------------------------------------------------


async def test_a_note_becomes_a_word_document_with_real_styles():
    result = await DocxExporter().render(note(), ExportOptions())
    assert result.media_type.endswith("wordprocessingml.document")
    assert result.filename == "Lisbon- day one.docx"
    document = docx.Document(io.BytesIO(await result.read()))
    styles = [(p.style.name, p.text) for p in document.paragraphs if p.text]
    assert ("Title", "Lisbon: day one") in styles
    assert ("Heading 1", "Trip to Lisbon — día uno") in styles
    assert ("List Bullet", "Pastéis de nata") in styles
    assert ("List Number 2", "Graça") in styles
    assert ("Code", 'print("olá")') in styles
    assert ("Quote", "Bring water.") in styles
    provenance, table = document.tables
    rows = {row.cells[0].text: row.cells[1].text for row in provenance.rows}
    assert rows["Model"] == "demo/swatch (demo)"
    assert rows["Prompt"] == "Plan a day in Lisbon"
    assert rows["Link"] == "http://notes.example/notes/n1"
    assert [[c.text for c in row.cells] for row in table.rows] == [
        ["Place", "Cost"],
        ["Belém", "10 €"],
    ]
    assert table.style.name == "Table Grid"
    assert len(document.inline_shapes) == 1
    links = [r.target_ref for r in document.part.rels.values() if r.is_external]
    assert "https://example.org/map" in links


async def test_a_word_document_carries_no_script_link():
    document = docx.Document(io.BytesIO(await DocxExporter().export(note(HOSTILE))))
    links = [r.target_ref for r in document.part.rels.values() if r.is_external]
    assert all(link.startswith("http") for link in links)
    assert any('<script>alert("html")</script>' in p.text for p in document.paragraphs)


# -- HTML -----------------------------------------------------------------------------------------


async def test_a_note_becomes_a_standalone_html_page_with_print_styles():
    result = await HtmlExporter().render(note(), HtmlOptions(theme="dark"))
    assert result.media_type == "text/html; charset=utf-8"
    page = Page((await result.read()).decode())
    assert "Lisbon: day one" in page.text
    assert [a["content"] for a in page.all("meta") if a.get("http-equiv")] == [
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'"
    ]
    (image,) = page.all("img")
    assert (image["src"] or "").startswith("data:image/png;base64,")
    assert "demo/swatch (demo)" in page.text
    assert ("html", {"lang": "en", "data-theme": "dark"}) in page.tags
    style = "".join(page.text)
    assert "@media print" in style


async def test_nothing_in_a_note_becomes_script_in_the_html_page():
    page = Page((await HtmlExporter().export(note(HOSTILE))).decode())
    assert not page.all("script")
    for _, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs)
        for value in attrs.values():
            assert not (value or "").lower().strip().startswith(("javascript:", "data:text"))


# -- Markdown -------------------------------------------------------------------------------------


async def test_markdown_keeps_provenance_as_front_matter_and_links_back():
    result = await MarkdownExporter().render(note(), ExportOptions())
    text = (await result.read()).decode()
    front, body = text.split("---\n", 2)[1:]
    fields = dict(
        line.split(": ", 1) for line in front.splitlines() if ": " in line and line[0] != " "
    )
    assert json.loads(fields["title"]) == "Lisbon: day one"
    assert json.loads(fields["prompt"]) == "Plan a day in Lisbon"
    assert json.loads(fields["link"]) == "http://notes.example/notes/n1"
    assert '  - model: "demo/swatch"' in front and "    output_tokens: 480" in front
    assert f"![Harbour](http://notes.example{IMAGE_SRC})" in body
    assert result.filename == "Lisbon- day one.md"


# -- comparisons and conversations ----------------------------------------------------------------


async def test_a_conversation_branch_lists_each_message_under_its_author():
    branch = ExportDocument(
        title="Chat",
        markdown="**You:** hi\n\n**demo/echo:** hello",
        kind="conversation",
        messages=(
            ExportMessage("user", "Which **colour**?"),
            ExportMessage("assistant", "Teal, says the model.", model="demo/swatch"),
        ),
    )
    _, text = pdf_text(await PdfExporter().export(branch))
    assert text.index("You") < text.index("Which colour?") < text.index("demo/swatch")
    document = docx.Document(io.BytesIO(await DocxExporter().export(branch)))
    assert [p.text for p in document.paragraphs if p.style.name == "Heading 2"] == [
        "You",
        "demo/swatch",
    ]


async def test_a_prompt_from_a_conversation_shows_its_answers_side_by_side_in_html():
    compared = ExportDocument(
        title="Hills",
        markdown="## You\n\nHow many hills?\n\n## a/one\n\nSeven.\n\n## b/two\n\nMany.",
        kind="comparison",
        messages=(
            ExportMessage("user", "How many hills?"),
            ExportMessage("assistant", "Seven.", model="a/one"),
            ExportMessage("assistant", "Many.", model="b/two"),
        ),
        answers=(ExportAnswer("a/one", "Seven."), ExportAnswer("b/two", "Many.")),
    )
    page = (await HtmlExporter().export(compared)).decode()
    grid = page.split('<section class="comparison" aria-label="Answers">', 1)[1]
    columns = Page(grid.split("</section>", 1)[0])
    assert [a["class"] for a in columns.all("article")] == ["answer", "answer"]
    assert "".join(columns.text).split() == ["a/oneSeven.", "b/twoMany."]
    assert page.count("Seven.") == 1  # each answer once, in its column


def comparison(answers: dict[str, str]) -> ExportDocument:
    """A prompt with ``{model: answer}`` as exported from a conversation (side by side)."""
    sources = {m: ExportSource(m, "demo", 12, 34, 56) for m in answers}
    return ExportDocument(
        title="Hills",
        markdown="\n\n".join(f"## {m}\n\n{a}" for m, a in answers.items()),
        kind="comparison",
        provenance=Provenance(prompt="How many hills?", sources=tuple(sources.values())),
        messages=(
            ExportMessage("user", "How many hills?"),
            *(ExportMessage("assistant", a, model=m) for m, a in answers.items()),
        ),
        answers=tuple(ExportAnswer(m, a, sources[m]) for m, a in answers.items()),
    )


async def test_a_long_comparison_runs_over_pages_with_every_models_name_on_each():
    long = "\n\n".join(f"Paragraph {n}: " + "seven hills and a river " * 14 for n in range(40))
    compared = comparison({"a/one": "Seven.", "b/two": long})
    reader, text = pdf_text(await PdfExporter().export(compared))
    assert len(reader.pages) > 2
    for page in reader.pages:
        words = page.extract_text()
        assert "a/one" in words and "b/two" in words  # the heads, again on every page
    assert text.count("Seven.") == 1 and "Paragraph 39:" in text
    assert text.count("demo · 12 in, 34 out tokens") == 2  # under the names, once
    page = reader.pages[0]
    assert page.mediabox.width < page.mediabox.height  # two columns fit upright


async def test_a_comparison_without_provenance_has_no_provenance_row_or_box():
    compared = comparison({"a/one": "Seven.", "b/two": "Many.", "c/three": "Some."})
    options = ExportOptions(include_provenance=False)
    document = docx.Document(
        io.BytesIO(await (await DocxExporter().render(compared, options)).read())
    )
    [table] = document.tables
    assert [c.text for c in table.rows[0].cells] == ["a/one", "b/two", "c/three"]
    assert [c.text for c in table.rows[1].cells] == ["Seven.", "Many.", "Some."]
    result = await PdfExporter().render(compared, PdfOptions(include_provenance=False))
    _, text = pdf_text(await result.read())
    assert "Provenance" not in text and "12 in" not in text and "Some." in text


# -- the contract ---------------------------------------------------------------------------------


async def test_an_exporter_of_the_first_contract_still_works():
    class Plain(Exporter):
        exporter_id, name, media_type, extension = "plain", "Plain", "text/plain", "txt"

        async def export(self, document: ExportDocument) -> bytes:
            return document.markdown.encode()

    result = await Plain().render(ExportDocument("A/B: c", "body"), ExportOptions())
    assert (await result.read(), result.filename) == (b"body", "A-B- c.txt")


def test_an_exporter_must_implement_render_or_export():
    with pytest.raises(TypeError, match="render"):

        class Nothing(Exporter):
            exporter_id, name, media_type, extension = "x", "X", "text/plain", "txt"


def test_options_refuse_unknown_fields():
    with pytest.raises(ValueError, match="colour"):
        PdfOptions.model_validate({"colour": "red"})


async def test_binary_content_is_refused_naming_the_part():
    for exporter in (PdfExporter(), DocxExporter(), HtmlExporter()):
        with pytest.raises(Invalid) as caught:
            await exporter.export(note("a\x00b"))
        assert caught.value.fields == {"content": "contains a NUL character"}


def test_file_names_are_safe():
    assert safe_filename("../../etc/passwd", "pdf") == "etc-passwd.pdf"
    assert safe_filename("...", "md") == "note.md"
    assert safe_filename("Ελληνικά: σημειώσεις", "md") == "Ελληνικά- σημειώσεις.md"
    assert len(safe_filename("x" * 500, "docx")) == 85


def test_markdown_blocks_keep_only_safe_links():
    blocks = export_blocks.markdown_blocks(
        "[a](javascript:x) [b](/notes/1) [c](mailto:a@b.c)", base_url="https://app.example"
    )
    (paragraph,) = blocks
    assert isinstance(paragraph, export_blocks.Paragraph)
    assert [s.link for s in paragraph.spans if s.link] == [
        "https://app.example/notes/1",
        "mailto:a@b.c",
    ]


async def test_a_streamed_file_is_cut_off_at_the_export_size_cap():
    from multinotes.errors import PayloadTooLarge
    from multinotes.note_exports.service import render_file

    read: list[int] = []

    class Endless(Exporter):
        exporter_id, name, media_type, extension = "endless", "Endless", "text/plain", "txt"

        async def render(self, document: ExportDocument, options: ExportOptions) -> ExportFile:
            async def chunks():
                for n in range(1000):
                    read.append(n)
                    yield b"x" * 1024

            return ExportFile(chunks(), self.media_type, self.filename(document))

    with pytest.raises(PayloadTooLarge, match="The Endless file of 'Big' is larger"):
        await render_file(Endless(), ExportDocument("Big", ""), ExportOptions(), cap=10 * 1024)
    assert len(read) == 11  # stopped at the chunk that passed the cap, not at the end
