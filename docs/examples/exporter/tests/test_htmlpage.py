"""multinotes-htmlpage: in the console as an exporter, switched off at run time, and the file it
writes."""

from __future__ import annotations

import multinotes_htmlpage
import pytest

from multinotes.plugin import ExportDocument, Invalid
from multinotes.testing import plugin_client


async def test_the_exporter_appears_in_the_console_and_toggles(tmp_path):
    async with plugin_client(tmp_path, [("htmlpage", multinotes_htmlpage)]) as api:
        await api.register_admin()
        [plugin] = await api.get_json("/api/admin/plugins")
        assert (plugin["name"], plugin["kinds"], plugin["enabled"]) == (
            "htmlpage",
            ["exporter"],
            True,
        )
        response = await api.patch("/api/admin/plugins/htmlpage", {"enabled": False})
        assert (await response.json())["enabled"] is False
        response = await api.patch(
            "/api/admin/plugins/htmlpage", {"settings": {"stylesheet": "body { color: red; }"}}
        )
        assert response.status == 200, await response.text()


async def test_a_notes_export_menu_offers_the_format_and_downloads_it(tmp_path):
    async with plugin_client(tmp_path, [("htmlpage", multinotes_htmlpage)]) as api:
        await api.register_admin()
        response = await api.post("/api/documents", {"title": "Fish & chips", "content": "Hot."})
        note = (await response.json())["id"]
        link = f"/api/documents/{note}/export?format=htmlpage"
        page = await (await api.get(f"/notes/{note}")).text()
        assert f'href="{link}"' in page and 'aria-label="Export"' in page
        download = await api.get(link)
        assert download.status == 200 and download.content_type == "text/html"
        assert "<title>Fish &amp; chips</title>" in await download.text()
        await api.patch("/api/admin/plugins/htmlpage", {"enabled": False})
        assert link not in await (await api.get(f"/notes/{note}")).text()


async def test_a_note_becomes_an_html_page_with_everything_escaped():
    exporter = multinotes_htmlpage.HtmlpageExporter()
    document = ExportDocument(
        title="Fish & <chips>",
        markdown="First paragraph.\n\nSecond <b>one</b>.",
        metadata={"model": "demo/echo"},
    )
    page = (await exporter.export(document)).decode()
    assert "<title>Fish &amp; &lt;chips&gt;</title>" in page
    assert "<p>First paragraph.</p>\n<p>Second &lt;b&gt;one&lt;/b&gt;.</p>" in page
    assert '<meta name="model" content="demo/echo">' in page
    assert (exporter.media_type, exporter.extension) == ("text/html", "html")


async def test_the_stylesheet_setting_is_used():
    settings = multinotes_htmlpage.HtmlpageSettings(stylesheet="h1 { color: teal; }")
    page = await multinotes_htmlpage.HtmlpageExporter(settings).export(ExportDocument("T", "x"))
    assert b"<style>h1 { color: teal; }</style>" in page


async def test_binary_content_is_refused_with_a_clear_error():
    with pytest.raises(Invalid, match="binary"):
        await multinotes_htmlpage.HtmlpageExporter().export(ExportDocument("T", "a\x00b"))
