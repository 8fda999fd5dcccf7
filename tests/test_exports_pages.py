"""The Export menu on the pages: every enabled format on a note (a saved comparison is a note), a
conversation and a folder, contributed by the exporter plugins through the actions hook; a
background export's progress bar in the menu turning into a download link; a format switched off
vanishes from the next page."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest

from multinotes.plugins.exports import docx as docx_plugin
from multinotes.plugins.exports import html as html_plugin
from multinotes.plugins.exports import markdown as markdown_plugin
from multinotes.plugins.exports import pdf as pdf_plugin
from multinotes.testing import ApiClient
from tests.support import people
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.waiting import eventually

ann = people.ann
eve = people.eve

MODEL = "script/alpha"


@pytest.fixture
def plugins():
    scripts = {MODEL: Script(chunks=["Seven ", "hills."])}
    return [
        *scripted_plugins(scripts, context_window=1000, max_output=100),
        ("markdown", markdown_plugin),
        ("pdf", pdf_plugin),
        ("docx", docx_plugin),
        ("html", html_plugin),
    ]


async def page(api: ApiClient, url: str) -> str:
    response = await api.get(url)
    assert response.status == 200, url
    return await response.text()


def export_entries(html: str) -> dict[str, str]:
    """The Export group's entries: action id → its address."""
    group = html.split('aria-label="Export"', 1)[1].split("</div>", 1)[0]
    links = re.findall(r'<a href="([^"]+)"[^>]*data-plugin-action="([^"]+)"', group)
    forms = re.findall(
        r'<form method="post" action="([^"]+)".*?data-plugin-action="([^"]+)"', group, re.S
    )
    return {action: href.replace("&amp;", "&") for href, action in [*links, *forms]}


async def test_a_note_menu_lists_every_enabled_format_and_a_disabled_one_vanishes(ann: ApiClient):
    created = await ann.post("/api/documents", {"title": "Plan", "content": "# Plan"})
    doc = (await created.json())["id"]
    entries = export_entries(await page(ann, f"/notes/{doc}"))
    assert entries == {
        f"{f}-export-note": f"/api/documents/{doc}/export?format={f}"
        for f in ("markdown", "pdf", "docx", "html")
    }
    response = await ann.get(entries["pdf-export-note"])
    assert response.status == 200 and response.headers["Content-Type"] == "application/pdf"

    assert (await ann.patch("/api/admin/plugins/pdf", {"enabled": False})).status == 200
    assert "pdf-export-note" not in export_entries(await page(ann, f"/notes/{doc}"))


async def test_a_folder_exports_from_its_menu_with_a_progress_bar_then_a_link(ann: ApiClient):
    folder = (await (await ann.post("/api/folders", {"name": "Trip"})).json())["id"]
    for n in range(3):
        await ann.post("/api/documents", {"title": f"Day {n}", "content": "x", "folder_id": folder})
    entries = export_entries(await page(ann, f"/notes?folder={folder}"))
    assert entries["html-export-folder"] == f"/exports/folder/{folder}?format=html"

    started = await ann.client.post(
        entries["html-export-folder"],
        data={"csrf_token": ann.csrf or ""},
        headers={"HX-Request": "true"},
    )
    fragment = await started.text()
    assert started.status == 200, fragment
    job = re.search(r'id="export-([0-9a-f]+)"', fragment)
    assert job is not None
    state: dict[str, Any] = {}

    async def ready() -> bool:
        state["html"] = await page(ann, f"/exports/{job.group(1)}/progress")
        return "Download" in state["html"]

    await eventually(ready, timeout=30)
    link = re.search(r'href="([^"]+)" class="export-download"', state["html"])
    assert link is not None and "Download Trip.zip" in state["html"]
    archive = zipfile.ZipFile(io.BytesIO(await (await ann.get(link.group(1))).read()))
    assert sorted(archive.namelist()) == ["Day 0.html", "Day 1.html", "Day 2.html"]


async def test_without_javascript_the_export_opens_its_own_page(ann: ApiClient, eve: ApiClient):
    conversation = (await (await ann.post("/api/conversations", {})).json())["id"]
    response = await ann.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "How many hills?", "models": [MODEL]},
    )
    await response.text()
    entries = export_entries(await page(ann, f"/chat/{conversation}"))
    assert entries["markdown-export-conversation"] == (
        f"/exports/conversation/{conversation}?format=markdown"
    )
    started = await ann.client.post(
        entries["markdown-export-conversation"],
        data={"csrf_token": ann.csrf or ""},
        allow_redirects=False,
    )
    assert started.status == 303
    location = started.headers["Location"]
    assert re.fullmatch(r"/exports/[0-9a-f]+", location)
    assert "Export" in await page(ann, location)
    assert (await eve.get(location)).status == 404
    refused = await eve.client.post(
        entries["markdown-export-conversation"],
        data={"csrf_token": eve.csrf or ""},
        allow_redirects=False,
    )
    assert refused.status == 404
