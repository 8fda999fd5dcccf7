"""multinotes-htmlpage: a MultinotesAI exporter plugin.

It turns a note (``ExportDocument``: title, Markdown, metadata) into a downloadable file, here a
self-contained HTML page. Replace ``export`` with your format.
"""

from __future__ import annotations

import html

from pydantic import BaseModel, Field

from multinotes.plugin import (
    ActionRegistrar,
    ExportDocument,
    Exporter,
    ExporterRegistrar,
    Invalid,
    SettingsRegistrar,
    export_actions,
    hookimpl,
)

PLUGIN = "htmlpage"


class HtmlpageSettings(BaseModel):
    stylesheet: str = Field(
        default="body { font-family: sans-serif; max-width: 42rem; margin: auto; }",
        max_length=5_000,
        description="CSS put in every exported page.",
    )


class HtmlpageExporter(Exporter):
    exporter_id = PLUGIN
    name = "Htmlpage (HTML page)"
    media_type = "text/html"
    extension = "html"

    def __init__(self, settings: HtmlpageSettings | None = None) -> None:
        self.settings = settings or HtmlpageSettings()

    async def export(self, document: ExportDocument) -> bytes:
        if "\x00" in document.markdown:
            raise Invalid("This note holds binary data, which an HTML page cannot show.")
        paragraphs = [p.strip() for p in document.markdown.split("\n\n") if p.strip()]
        body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        meta = "\n".join(
            f'<meta name="{html.escape(key)}" content="{html.escape(value)}">'
            for key, value in sorted(document.metadata.items())
        )
        page = (
            '<!doctype html>\n<html><head><meta charset="utf-8">\n'
            f"<title>{html.escape(document.title)}</title>\n{meta}\n"
            f"<style>{self.settings.stylesheet}</style></head>\n"
            f"<body><h1>{html.escape(document.title)}</h1>\n{body}\n</body></html>\n"
        )
        return page.encode()


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(HtmlpageExporter())


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    # The Export menu's entries for this format: a note downloads at once, a conversation or a
    # folder is exported in the background. They vanish while the plugin is switched off.
    for action in export_actions(HtmlpageExporter()):
        register(action)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(HtmlpageSettings)
