"""Exports from the workspace, in both runtime modes: one answer downloaded as PDF, Word, Markdown
or HTML with its provenance (prompt, model, tokens, cost, date, link back), and a prompt with its
models' answers side by side (a comparison): in the PDF each model in its own column, in Word a
table with one column per model and its name in the header row. Each file is opened with a real
reader. Access is as for reading the conversation: a viewer exports, a stranger gets 404."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from typing import Any

import docx
import pypdf
import pytest

from multinotes.plugins.exports import docx as docx_plugin
from multinotes.plugins.exports import html as html_plugin
from multinotes.plugins.exports import markdown as markdown_plugin
from multinotes.plugins.exports import pdf as pdf_plugin
from multinotes.plugins.providers import demo as demo_plugin
from multinotes.testing import ApiClient
from tests.support import people
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.waiting import eventually

ann = people.ann
bob = people.bob
eve = people.eve

ANSWERS = {
    "script/alpha": "Lisbon has **seven** hills.\n\n- São Jorge\n- Graça",
    "script/beta": "Porto has *many* hills, says beta.",
    "script/gamma": "Gamma counts\n\n```\nhills = 7\n```",
}
PROMPT = "How many hills?"


@pytest.fixture
def plugins():
    scripts = {model: Script(chunks=[text]) for model, text in ANSWERS.items()}
    return [
        *scripted_plugins(scripts, context_window=1000, max_output=100),
        ("demo", demo_plugin),
        ("markdown", markdown_plugin),
        ("pdf", pdf_plugin),
        ("docx", docx_plugin),
        ("html", html_plugin),
    ]


async def asked(api: ApiClient, models: list[str]) -> tuple[str, str, dict[str, str]]:
    """``PROMPT`` sent to ``models``: (conversation, prompt message, {model: answer message})."""
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": PROMPT, "models": models}
    )
    assert response.status == 200, await response.text()
    await response.text()  # the stream, to its end
    tree = await api.get_json(f"/api/conversations/{conversation}")
    prompt = next(m["id"] for m in tree["messages"] if m["role"] == "user")
    answers = {m["model"]: m["id"] for m in tree["messages"] if m["role"] == "assistant"}
    return conversation, prompt, answers


async def download(api: ApiClient, url: str) -> tuple[Any, bytes]:
    response = await api.get(url)
    body = await response.read()
    assert response.status == 200, body[:300]
    return response, body


async def error_of(response: Any) -> dict[str, Any]:
    return dict((await response.json())["error"])


def pdf_words(data: bytes) -> tuple[pypdf.PdfReader, list[tuple[int, float, float, str]]]:
    """Each text run of the PDF with its page, x and y (points from the bottom left)."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    runs: list[tuple[int, float, float, str]] = []
    for number, page in enumerate(reader.pages):

        def visit(text: str, cm: Any, tm: Any, font: Any, size: Any, number: int = number) -> None:
            if text.strip():
                runs.append((number, tm[4] + cm[4], tm[5] + cm[5], text.strip()))

        page.extract_text(visitor_text=visit)
    return reader, runs


def at(runs: list[tuple[int, float, float, str]], text: str) -> tuple[int, float, float]:
    found = [(page, x, y) for page, x, y, run in runs if text in run]
    assert found, f"{text!r} is not in the PDF"
    return found[0]


# -- one answer -----------------------------------------------------------------------------------


async def test_an_answer_downloads_as_each_format_with_its_provenance(ann: ApiClient):
    conversation, _, answers = await asked(ann, ["script/alpha", "script/beta"])
    alpha = answers["script/alpha"]
    back = f"/chat/{conversation}?leaf={alpha}"

    response, body = await download(ann, f"/api/messages/{alpha}/export?format=pdf")
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="How many hills- (script-alpha).pdf"'
    )
    reader = pypdf.PdfReader(io.BytesIO(body))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "Lisbon has seven hills." in text and "São Jorge" in text
    assert PROMPT in text and "script/alpha (script)" in text and "Tokens 10 in" in text
    links = [a.get_object()["/A"].get("/URI", "") for a in reader.pages[0].get("/Annots", [])]
    assert any(str(link).endswith(back) for link in links)  # the Link row links back
    assert "Porto" not in text  # the other model's answer is not this one

    response, body = await download(ann, f"/api/messages/{alpha}/export?format=docx")
    assert response.headers["Content-Type"].endswith("wordprocessingml.document")
    document = docx.Document(io.BytesIO(body))
    provenance = {r.cells[0].text: r.cells[1].text for r in document.tables[0].rows}
    assert provenance["Prompt"] == PROMPT
    assert provenance["Model"] == "script/alpha (script)"
    assert provenance["Tokens"].startswith("10 in, ")
    assert re.fullmatch(r"\d[\d,]* credits \(\$\d+\.\d{5}\)", provenance["Cost"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", provenance["Date"])
    assert provenance["Link"].endswith(back)
    assert [p.text for p in document.paragraphs if p.style.name == "List Bullet"] == [
        "São Jorge",
        "Graça",
    ]

    _, body = await download(ann, f"/api/messages/{alpha}/export?format=markdown")
    front, rest = body.decode().split("\n---\n", 1)
    assert f'prompt: "{PROMPT}"' in front and '  - model: "script/alpha"' in front
    assert "    input_tokens: 10" in front and back in front
    assert rest.strip().startswith("Lisbon has **seven** hills.")

    _, body = await download(
        ann, f"/api/messages/{alpha}/export?format=html&include_provenance=false"
    )
    assert "<strong>seven</strong>" in body.decode() and "Provenance" not in body.decode()


async def test_the_images_an_answer_generated_are_in_its_export(ann: ApiClient):
    switched = await ann.patch("/api/admin/plugins/demo", {"enabled": True})  # off in production
    assert switched.status == 200, await switched.text()
    _, prompt, answers = await asked(ann, ["demo/swatch", "script/alpha"])
    swatch = answers["demo/swatch"]

    _, body = await download(ann, f"/api/messages/{swatch}/export?format=pdf")
    [image] = pypdf.PdfReader(io.BytesIO(body)).pages[0].images
    assert image.image is not None and image.image.size == (64, 64)
    _, body = await download(ann, f"/api/messages/{swatch}/export?format=docx")
    assert len(docx.Document(io.BytesIO(body)).inline_shapes) == 1
    _, body = await download(ann, f"/api/messages/{swatch}/export?format=html")
    assert body.decode().count('src="data:image/png;base64,') == 1

    _, body = await download(ann, f"/api/messages/{prompt}/export-comparison?format=docx")
    table = docx.Document(io.BytesIO(body)).tables[-1]
    assert [c.text for c in table.rows[0].cells] == ["demo/swatch", "script/alpha"]
    picture = table.rows[-1].cells[0]._tc.xpath(".//pic:pic")
    assert len(picture) == 1  # the swatch, inside its model's column
    _, body = await download(ann, f"/api/messages/{prompt}/export-comparison?format=pdf")
    [image] = pypdf.PdfReader(io.BytesIO(body)).pages[0].images
    assert image.image is not None and image.image.size == (64, 64)


# -- a comparison ---------------------------------------------------------------------------------


async def test_a_comparison_pdf_sets_each_model_in_its_own_column(ann: ApiClient):
    _, prompt, _ = await asked(ann, list(ANSWERS))
    response, body = await download(ann, f"/api/messages/{prompt}/export-comparison?format=pdf")
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="How many hills.pdf"'
    )
    reader, runs = pdf_words(body)
    page = reader.pages[0]
    assert page.mediabox.width > page.mediabox.height  # three columns: landscape
    assert at(runs, PROMPT)[0] == 0

    heads = [at(runs, model) for model in ANSWERS]
    assert {y for _, _, y in heads} == {heads[0][2]}  # one row of names...
    xs = [x for _, x, _ in heads]
    assert xs == sorted(xs) and len(set(xs)) == 3  # ...left to right
    width = float(page.mediabox.width) / 3
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=1) and xs[1] - xs[0] > width * 0.8

    # Each answer starts in its model's column, below the names and the tokens line.
    for (_, x, y), first_words in zip(
        heads, ["Lisbon has seven hills.", "Porto has many hills", "Gamma counts"], strict=True
    ):
        _, answer_x, answer_y = at(runs, first_words)
        assert answer_x == pytest.approx(x, abs=1) and answer_y < y
    tokens = [(x, y) for _, x, y, run in runs if run.startswith("script · 10 in")]
    assert len(tokens) == 3 and {round(x) for x, _ in tokens} == {round(x) for x in xs}
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "hills = 7" in text and "Provenance" in text


async def test_a_comparison_word_document_has_a_column_per_model(ann: ApiClient):
    _, prompt, _ = await asked(ann, list(ANSWERS))
    _, body = await download(ann, f"/api/messages/{prompt}/export-comparison?format=docx")
    document = docx.Document(io.BytesIO(body))
    [table] = [t for t in document.tables if len(t.columns) == 3]
    header, provenance, content = table.rows
    assert [c.text for c in header.cells] == list(ANSWERS)
    assert all(c.paragraphs[0].runs[0].bold for c in header.cells)
    assert header._tr.trPr is not None and "tblHeader" in header._tr.trPr.xml  # repeats
    assert all(c.text.startswith("script · 10 in, ") for c in provenance.cells)
    alpha, beta, gamma = content.cells
    assert alpha.paragraphs[0].text == "Lisbon has seven hills."
    assert [p.style.name for p in alpha.paragraphs[1:]] == ["List Bullet", "List Bullet"]
    assert beta.text == "Porto has many hills, says beta."
    assert [p.style.name for p in gamma.paragraphs] == ["Normal", "Code"]
    headings = [p.text for p in document.paragraphs if p.style.name == "Heading 2"]
    assert headings[-1] == "You" and PROMPT in [p.text for p in document.paragraphs]
    assert document.sections[0].page_width > document.sections[0].page_height


async def test_a_comparison_in_markdown_has_a_section_per_model_and_in_html_a_grid(
    ann: ApiClient,
):
    _, prompt, _ = await asked(ann, ["script/alpha", "script/beta"])
    _, body = await download(ann, f"/api/messages/{prompt}/export-comparison?format=markdown")
    text = body.decode()
    assert '  - model: "script/alpha"' in text and '  - model: "script/beta"' in text
    sections = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert sections == ["You", "script/alpha", "script/beta"]

    _, body = await download(ann, f"/api/messages/{prompt}/export-comparison?format=html")

    class Columns(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.depth, self.heads, self.inside = 0, [], False

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag == "section" and ("class", "comparison") in attrs:
                self.depth = 1
            self.inside = self.depth > 0 and tag == "h2"

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.heads.append(data)
                self.inside = False

    page = Columns()
    page.feed(body.decode())
    assert page.heads == ["script/alpha", "script/beta"]
    assert body.decode().count("Lisbon has <strong>seven</strong> hills.") == 1


async def test_a_comparison_holds_one_answer_per_model_the_newest(ann: ApiClient):
    conversation, prompt, answers = await asked(ann, ["script/alpha", "script/beta"])
    again = await ann.post(f"/api/messages/{answers['script/alpha']}/regenerate", {})
    assert again.status == 200, await again.text()
    await again.text()
    tree = await ann.get_json(f"/api/conversations/{conversation}")
    alphas = [m for m in tree["messages"] if m["model"] == "script/alpha"]
    assert len(alphas) == 2

    _, body = await download(ann, f"/api/messages/{prompt}/export-comparison?format=docx")
    [table] = docx.Document(io.BytesIO(body)).tables[-1:]
    assert [c.text for c in table.rows[0].cells] == ["script/alpha", "script/beta"]

    # The conversation's branch down to the prompt, exported in the background, is the same.
    created = await ann.post("/api/exports", {"format": "docx", "message_id": prompt})
    assert created.status == 202, await created.text()
    job = f"/api/exports/{(await created.json())['id']}"
    state: dict[str, Any] = {}

    async def done() -> bool:
        state.update(await ann.get_json(job))
        return state["status"] in ("done", "failed")

    await eventually(done, timeout=60)
    assert state["status"] == "done", state
    _, body = await download(ann, state["download_url"])
    [table] = docx.Document(io.BytesIO(body)).tables[-1:]
    assert [c.text for c in table.rows[0].cells] == ["script/alpha", "script/beta"]


# -- access and bad input -------------------------------------------------------------------------


async def test_a_viewer_exports_a_shared_conversations_answers_and_a_stranger_gets_404(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    conversation, prompt, answers = await asked(ann, ["script/alpha", "script/beta"])
    shared = await ann.post(
        "/api/shares",
        {"object_type": "conversation", "object_id": conversation, "email": "bob@example.com"},
    )
    assert shared.status == 201, await shared.text()

    _, body = await download(bob, f"/api/messages/{answers['script/beta']}/export?format=markdown")
    assert "Porto has *many* hills" in body.decode()
    _, body = await download(bob, f"/api/messages/{prompt}/export-comparison?format=markdown")
    assert "Lisbon" in body.decode() and "Porto" in body.decode()

    for url in (
        f"/api/messages/{answers['script/alpha']}/export?format=pdf",
        f"/api/messages/{answers['script/alpha']}/export?format=nonsense",
        f"/api/messages/{answers['script/alpha']}/export",
        f"/api/messages/{prompt}/export-comparison?format=docx",
        f"/api/messages/{prompt}/export-comparison?colour=red",
        "/api/messages/no-such-message/export?format=pdf",
    ):
        response = await eve.get(url)
        assert response.status == 404, url
        assert (await error_of(response))["code"] == "not_found"


async def test_the_wrong_kind_of_message_a_bad_format_or_option_is_a_clear_error(
    ann: ApiClient,
):
    _, prompt, answers = await asked(ann, ["script/alpha"])
    alpha = answers["script/alpha"]
    response = await ann.get(f"/api/messages/{prompt}/export?format=pdf")
    assert response.status == 404 and (await error_of(response))["message"] == "No such answer."
    response = await ann.get(f"/api/messages/{alpha}/export-comparison?format=pdf")
    assert response.status == 404 and (await error_of(response))["message"] == "No such prompt."

    response = await ann.get(f"/api/messages/{alpha}/export")
    assert response.status == 422 and "format" in (await error_of(response))["fields"]
    response = await ann.get(f"/api/messages/{alpha}/export?format=odt")
    error = await error_of(response)
    assert response.status == 422 and error["code"] == "unknown_format"
    response = await ann.get(f"/api/messages/{prompt}/export-comparison?format=pdf&page_size=A3")
    assert response.status == 422 and "page_size" in (await error_of(response))["fields"]
    response = await ann.get(f"/api/messages/{alpha}/export?format=docx&colour=red")
    assert response.status == 422 and "colour" in (await error_of(response))["fields"]
