"""The notes workspace end to end, as issue #5's "done when" tells it, through the HTTP API in
both runtime modes: a person saves an answer into a folder, edits it, shares it publicly and with
a colleague, and finds it again by a word it contains and by a paraphrase of its meaning."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from multinotes.search.tasks import embed_pending
from multinotes.settings import Settings
from multinotes.testing import ApiClient

PROMPT = "Describe how a cat hunts mice in the garden"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(rate_limits_enabled=False)


async def search(api: ApiClient, q: str, **params: Any) -> list[dict[str, Any]]:
    query = urlencode({"q": q, "record": "false", **params})
    return list((await api.get_json(f"/api/search?{query}"))["results"])


async def test_an_answer_kept_as_a_note_is_edited_shared_and_found_again(
    api: ApiClient, make_client: Any
):
    await api.register_admin()
    await api.mark_verified()
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200

    # Ask, then keep the answer in a folder.
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    streamed = await api.post(
        f"/api/conversations/{conversation}/messages",
        {"content": PROMPT, "models": ["demo/echo"]},
    )
    assert streamed.status == 200
    await streamed.text()
    tree = await api.get_json(f"/api/conversations/{conversation}")
    answer = next(m for m in tree["messages"] if m["role"] == "assistant")
    folder = (await (await api.post("/api/folders", {"name": "Pets"})).json())["id"]
    saved = await api.post(f"/api/messages/{answer['id']}/save", {"folder_id": folder})
    assert saved.status == 201
    document = (await saved.json())["document_id"]
    note = await api.get_json(f"/api/documents/{document}")
    assert note["folder_id"] == folder and note["has_provenance"]

    # Edit it: the edit makes version 2; the saved answer stays as version 1.
    edited = await api.patch(
        f"/api/documents/{document}",
        {
            "version": note["version"],
            "title": "Garden hunter",
            "content": note["content"] + "\n\nThe tabby stalks the vole patiently.",
        },
    )
    assert edited.status == 200
    assert [
        v["version"]
        for v in (await api.get_json(f"/api/documents/{document}/versions"))["versions"]
    ] == [2, 1]

    # Share it publicly: anyone with the link reads it without logging in.
    link = await api.post(
        "/api/shares", {"object_type": "document", "object_id": document, "public": True}
    )
    assert link.status == 201
    url = (await link.json())["url"]
    token = re.search(r"/s/([A-Za-z0-9_-]+)$", url)
    assert token
    visitor: ApiClient = await make_client()
    page = await visitor.get(f"/s/{token[1]}")
    assert page.status == 200 and "Garden hunter" in await page.text()

    # Share it with a colleague, who can open it and find it.
    colleague: ApiClient = await make_client()
    await colleague.register_and_login("colleague@example.com", name="Col League")
    await colleague.mark_verified()
    shared = await api.post(
        "/api/shares",
        {
            "object_type": "document",
            "object_id": document,
            "email": "colleague@example.com",
            "role": "viewer",
        },
    )
    assert shared.status == 201
    assert (await colleague.get_json(f"/api/documents/{document}"))["title"] == "Garden hunter"
    [incoming] = (await colleague.get_json("/api/shared-with-me"))["items"]
    assert incoming["object_id"] == document

    # Found again by a word it contains, and by a paraphrase with no word in common.
    await embed_pending(api.app)
    for who in (api, colleague):
        by_word = await search(who, "tabby", mode="text", kind="note")
        assert [r["id"] for r in by_word] == [document]
        assert "<mark>tabby</mark>" in by_word[0]["snippet"]
    by_meaning = await search(
        api, "kitty catching small animals outdoors", mode="semantic", kind="note"
    )
    assert by_meaning and by_meaning[0]["id"] == document
    assert (await search(api, "kitty catching small animals outdoors", kind="note"))[0][
        "id"
    ] == document

    # Revoking the colleague's share takes effect on the very next request.
    share_id = (await shared.json())["id"]
    assert (await api.delete(f"/api/shares/{share_id}")).status in (200, 204)
    assert (await colleague.get(f"/api/documents/{document}")).status == 404
    assert await search(colleague, "tabby", mode="text", kind="note") == []
