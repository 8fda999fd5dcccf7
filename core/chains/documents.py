"""The text of an uploaded document, as a chain's ``{{input}}`` ("document workflows"): PDF
(pypdf), Word (python-docx) and plain text. Audio is transcribed by the runner through the
pipeline (it is a metered generation). Every problem is an ``Invalid`` on ``file_id``."""

from __future__ import annotations

import asyncio
import io

from multinotes.errors import Invalid

#: File kinds (``multinotes.files.sniff``) whose text is read here.
TEXT_KINDS = frozenset({"pdf", "docx", "text", "markdown", "csv"})


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Invalid(
                "The PDF is encrypted.",
                code="document_unreadable",
                fields={"file_id": "an encrypted PDF cannot be read"},
            )
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except PdfReadError as exc:
        raise Invalid(
            "The PDF could not be read.",
            code="document_unreadable",
            fields={"file_id": f"not a readable PDF ({exc})"[:200]},
        ) from None


def _docx_text(data: bytes) -> str:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception:  # python-docx raises several kinds for a broken package
        raise Invalid(
            "The Word document could not be read.",
            code="document_unreadable",
            fields={"file_id": "not a readable .docx file"},
        ) from None
    paragraphs = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            paragraphs.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(paragraphs)


def _plain_text(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="replace")


def _extract(kind: str, data: bytes) -> str:
    if kind == "pdf":
        return _pdf_text(data)
    if kind == "docx":
        return _docx_text(data)
    return _plain_text(data)


async def extract_text(kind: str, data: bytes) -> str:
    """The document's text (stripped); ``Invalid`` when it has none or cannot be read. Parsing
    runs in a thread: a long PDF must not hold the event loop."""
    if kind not in TEXT_KINDS:
        raise Invalid(
            f"Text cannot be read from a {kind} file.",
            code="unsupported_document",
            fields={"file_id": "use a PDF, Word (.docx), text or audio file"},
        )
    text = (await asyncio.to_thread(_extract, kind, data)).strip()
    if not text:
        raise Invalid(
            "No text was found in the document (a scanned PDF holds only images).",
            code="document_empty",
            fields={"file_id": "the document has no text"},
        )
    return text
