"""Markdown exporter: a note as a .md file with its provenance as YAML front matter.

The front matter holds the title, the document's metadata, and (unless the option is off) the
provenance: prompt, each model with its provider, tokens and cost, the date and the link back.
Values are JSON strings and numbers, which YAML reads as they are. Site-relative image and link
addresses are made absolute against the note's link, so they still resolve from another app.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from multinotes.plugin import (
    ActionRegistrar,
    ExportDocument,
    Exporter,
    ExporterRegistrar,
    ExportFile,
    ExportOptions,
    export_actions,
    hookimpl,
)

__version__ = "1.1.0"

_RELATIVE_TARGET = re.compile(r"(\]\()(/[^)\s]*)")


def _absolute(markdown: str, link: str | None) -> str:
    parts = urlsplit(link or "")
    if not parts.netloc:
        return markdown
    base = f"{parts.scheme}://{parts.netloc}"
    return _RELATIVE_TARGET.sub(
        lambda m: m.group(1) + (m.group(2) if m.group(2).startswith("//") else base + m.group(2)),
        markdown,
    )


def front_matter(document: ExportDocument, options: ExportOptions) -> list[str]:
    lines = ["---", f"title: {json.dumps(document.title, ensure_ascii=False)}"]
    provenance = document.provenance if options.include_provenance else None
    for key, value in sorted(document.metadata.items()):
        if provenance is not None and key in ("prompt", "model", "link", "saved_at"):
            continue  # written below, in full
        lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    if provenance is not None:
        if provenance.prompt:
            lines.append(f"prompt: {json.dumps(provenance.prompt, ensure_ascii=False)}")
        if provenance.sources:
            lines.append("models:")
            for source in provenance.sources:
                lines.append(f"  - model: {json.dumps(source.model)}")
                if source.provider:
                    lines.append(f"    provider: {json.dumps(source.provider)}")
                lines.append(f"    input_tokens: {source.input_tokens}")
                lines.append(f"    output_tokens: {source.output_tokens}")
                lines.append(f"    cost_credits: {source.cost}")
                lines.append(f"    cost_usd: {source.cost_usd:.5f}")
        if provenance.saved_at is not None:
            lines.append(f"saved_at: {json.dumps(provenance.saved_at.isoformat())}")
        if provenance.link:
            lines.append(f"link: {json.dumps(provenance.link)}")
    lines.append("---")
    return lines


class MarkdownExporter(Exporter):
    exporter_id = "markdown"
    name = "Markdown"
    description = "A .md file with the provenance as front matter."
    media_type = "text/markdown; charset=utf-8"
    extension = "md"

    async def render(self, document: ExportDocument, options: ExportOptions) -> ExportFile:
        lines = front_matter(document, options)
        lines += ["", _absolute(document.markdown, document.link).rstrip(), ""]
        return ExportFile("\n".join(lines).encode(), self.media_type, self.filename(document))


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(MarkdownExporter())


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    """The Export menu's entries for this format on notes, conversations and folders."""
    for action in export_actions(MarkdownExporter()):
        register(action)
