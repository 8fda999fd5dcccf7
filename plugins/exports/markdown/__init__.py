"""Markdown exporter: a note as a .md file with its provenance as YAML front matter."""

from __future__ import annotations

import json

from multinotes.plugin import ExportDocument, Exporter, ExporterRegistrar, hookimpl

__version__ = "1.0.0"


class MarkdownExporter(Exporter):
    exporter_id = "markdown"
    name = "Markdown"
    media_type = "text/markdown; charset=utf-8"
    extension = "md"

    async def export(self, document: ExportDocument) -> bytes:
        lines = ["---", f"title: {json.dumps(document.title)}"]
        for key, value in sorted(document.metadata.items()):
            lines.append(f"{key}: {json.dumps(value)}")
        lines += ["---", "", document.markdown.rstrip(), ""]
        return "\n".join(lines).encode()


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(MarkdownExporter())
