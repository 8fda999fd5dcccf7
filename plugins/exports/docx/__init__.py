"""Word exporter: a note, a comparison or a conversation as a .docx (python-docx).

Everything uses real Word styles, so the document restyles in Word like any other: ``Title``,
``Heading 1``-``6``, ``List Bullet``/``List Number`` (and their level 2 and 3), ``Quote``, a
``Code`` paragraph style (monospace, shaded) and ``Code Char`` for inline code, ``Table Grid``
tables, hyperlinks as Word hyperlinks, images of the user's files inline, and the provenance as a
two-column table.
"""

from __future__ import annotations

import asyncio

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

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class DocxExporter(Exporter):
    exporter_id = "docx"
    name = "Word"
    description = "A Word document with real heading, list, code and table styles."
    media_type = MEDIA_TYPE
    extension = "docx"

    async def render(self, document: ExportDocument, options: ExportOptions) -> ExportFile:
        if "\x00" in document.markdown:
            raise Invalid(
                "This note holds binary data, which a Word document cannot show.",
                fields={"content": "contains a NUL character"},
            )
        from .render import Writer  # python-docx on first use: see render.py

        data = await asyncio.to_thread(Writer(document, options).render)
        return ExportFile(data, self.media_type, self.filename(document))


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(DocxExporter())


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    """The Export menu's entries for this format on notes, conversations and folders."""
    for action in export_actions(DocxExporter()):
        register(action)
