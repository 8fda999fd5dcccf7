"""Notion through the HTTP API and a local Notion (``plugins/exports/notion/tests/fakes``), in
both runtime modes: connecting a workspace (state bound to the session, Basic client auth, tokens
encrypted and never shown), a note exported as native blocks with a provenance callout, long
notes cut at Notion's limits, the same page updated on re-export, 429/5xx retried, an expired
token refreshed, a revoked connection asking to reconnect, and who may export what."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image
from sqlalchemy import select, update

from multinotes.connections.models import ConnectedAccountRow
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.notes.models import Document
from multinotes.plugin import plugin_context
from multinotes.plugins.exports import notion as notion_plugin
from multinotes.plugins.exports.notion.tests.fakes.fake_notion import FakeNotion
from multinotes.testing import ApiClient
from tests.support import people

ann = people.ann
bob = people.bob
eve = people.eve


@pytest.fixture
async def fake_notion() -> Any:
    fake = FakeNotion()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def plugins() -> Any:
    return [("notion", notion_plugin)]


@pytest.fixture
def settings(make_settings: Any, fake_notion: tuple[FakeNotion, str]) -> Any:
    fake, url = fake_notion
    return make_settings(
        plugins={
            "notion": {
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "api_base": url,
            }
        }
    )


@pytest.fixture
def notion(fake_notion: tuple[FakeNotion, str]) -> FakeNotion:
    return fake_notion[0]


async def connect(api: ApiClient, next_url: str = "/account#connections") -> aiohttp.ClientResponse:
    """Connect Notion as a browser would: the form, the consent screen, the callback."""
    started = await api.post(
        "/connections/notion/connect",
        data={"csrf_token": api.csrf, "next": next_url},
        headers={"HX-Request": "true"},
        allow_redirects=False,
    )
    assert started.status == 204, await started.text()
    authorize = started.headers["HX-Redirect"]
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(authorize, allow_redirects=False) as consent,
    ):
        assert consent.status == 302
        back = urlsplit(consent.headers["Location"])
    response = await api.get(f"{back.path}?{back.query}", allow_redirects=False)
    return response


async def note(api: ApiClient, title: str, content: str) -> str:
    response = await api.post("/api/documents", {"title": title, "content": content})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def export(api: ApiClient, doc: str, **options: Any) -> aiohttp.ClientResponse:
    body: dict[str, Any] = {"format": "notion"}
    if options:
        body["options"] = options
    return await api.post(f"/api/documents/{doc}/export", body)


RICH = """# Trip plan

Lisbon has **seven** hills and *many* [trams](https://example.com/trams).

## Checklist

1. Book the flight
2. Pack
   - sunscreen
   - hat

```py
print("olá")
```

> Saudade is a feeling.

| City | Hills |
| --- | --- |
| Lisbon | 7 |
| Rome | 7 |

![a map](https://example.com/map.png)
"""


async def test_connect_export_and_export_again_updates_the_same_page(ann, notion):
    listed = await ann.get_json("/api/connections")
    assert listed["available"][0]["kind"] == "notion"
    assert listed["available"][0]["connected"] is False

    back = await connect(ann)
    assert back.status == 303
    assert back.headers["Location"] == "/account#connections"
    # The consent request: Notion's public-integration flow, no PKCE, state sent.
    asked = notion.authorize_requests[0]
    assert asked["owner"] == "user" and asked["response_type"] == "code"
    assert asked["state"] and "code_challenge" not in asked
    assert notion.token_requests[0]["grant_type"] == "authorization_code"

    listed = await ann.get_json("/api/connections")
    [connection] = listed["connections"]
    assert connection["account_name"] == "Ann's Workspace"
    assert connection["status"] == "active"
    assert "token" not in str(listed).lower().replace("tokens", "")
    # Stored encrypted: no token the fake issued is in the database as it is.
    async with ann.app[DB].read() as session:
        row = await session.scalar(select(ConnectedAccountRow))
    assert row is not None and row.access_token not in notion.access_tokens
    assert row.access_token.startswith("gAAAA")  # Fernet
    page = await (await ann.get("/account")).text()
    assert "Ann&#39;s Workspace" in page or "Ann's Workspace" in page

    doc = await note(ann, "Trip plan", RICH)
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    url = (await response.json())["url"]
    [page_id] = notion.created_pages()
    assert url == notion.pages[page_id]["url"]
    assert notion.title_of(page_id) == "Trip plan"
    assert notion.pages[page_id]["parent"]["page_id"] == notion.root_page

    blocks = notion.page_blocks(page_id)
    kinds = [b["type"] for b in blocks]
    assert kinds[:2] == ["heading_1", "paragraph"]
    assert "numbered_list_item" in kinds and "code" in kinds and "quote" in kinds
    assert "table" in kinds and "image" in kinds
    code = next(b for b in blocks if b["type"] == "code")
    assert code["code"]["language"] == "python"
    assert notion.plain_text(code) == 'print("olá")'
    paragraph = blocks[1]["paragraph"]["rich_text"]
    bold = next(i for i in paragraph if i["text"]["content"] == "seven")
    assert bold["annotations"]["bold"] is True
    link = next(i for i in paragraph if i["text"]["content"] == "trams")
    assert link["text"]["link"] == {"url": "https://example.com/trams"}
    pack = next(b for b in blocks if notion.plain_text(b) == "Pack")
    nested = [notion.blocks[c] for c in notion.children[pack["id"]]]
    assert [notion.plain_text(b) for b in nested] == ["sunscreen", "hat"]
    table = next(b for b in blocks if b["type"] == "table")
    rows = [notion.blocks[r]["table_row"]["cells"] for r in notion.children[table["id"]]]
    assert [c[0]["text"]["content"] for c in rows[0]] == ["City", "Hills"]
    assert len(rows) == 3

    # Edited, exported again: the same page, its blocks replaced.
    version = (await ann.get_json(f"/api/documents/{doc}"))["version"]
    edited = await ann.patch(
        f"/api/documents/{doc}",
        {"title": "Trip plan v2", "content": "Now Porto.", "version": version},
    )
    assert edited.status == 200, await edited.text()
    again = await export(ann, doc)
    assert again.status == 200, await again.text()
    assert (await again.json())["url"] == url
    assert notion.created_pages() == [page_id]
    assert notion.title_of(page_id) == "Trip plan v2"
    assert [notion.plain_text(b) for b in notion.page_blocks(page_id)] == ["Now Porto."]


async def upload_png(api: ApiClient, color: str) -> tuple[str, bytes]:
    picture = io.BytesIO()
    Image.new("RGB", (40, 20), color).save(picture, "PNG")
    form = aiohttp.FormData()
    form.add_field("file", picture.getvalue(), filename=f"{color}.png", content_type="image/png")
    response = await api.post("/api/files", data=form)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"]), picture.getvalue()


async def test_an_image_of_the_users_files_becomes_an_image_at_a_signed_link(ann, eve, notion):
    await connect(ann)
    mine, data = await upload_png(ann, "teal")
    theirs, _ = await upload_png(eve, "red")
    doc = await note(
        ann,
        "Map",
        f"![the map](/api/files/{mine}/content)\n\n![not mine](/api/files/{theirs}/content)",
    )
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    [page_id] = notion.created_pages()
    image, other = notion.page_blocks(page_id)

    assert image["type"] == "image" and image["image"]["type"] == "external"
    assert image["image"]["caption"][0]["text"]["content"] == "the map"
    url = image["image"]["external"]["url"]
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.path == f"/files/signed/{mine}"
    expires = int(parse_qs(parts.query)["exp"][0])
    assert 29 * 86400 < expires - time.time() <= 30 * 86400
    # Notion fetches it without signing in, and gets the image's bytes.
    async with aiohttp.ClientSession() as fetcher, fetcher.get(url) as fetched:
        assert fetched.status == 200
        assert fetched.headers["Content-Type"] == "image/png"
        assert await fetched.read() == data
    # A file Ann may not read gets no link: a line pointing to the note instead.
    assert other["type"] == "paragraph"
    assert "kept in MultinotesAI" in notion.plain_text(other)
    assert theirs not in str(notion.page_blocks(page_id))
    # A plugin makes such links through its context, for as long as it says.
    made = urlsplit(plugin_context(ann.app, "notion").signed_file_url(mine, 60))
    assert made.path == f"/files/signed/{mine}"
    assert int(parse_qs(made.query)["exp"][0]) - time.time() <= 60
    fetched_again = await ann.get(f"{made.path}?{made.query}")
    assert fetched_again.status == 200 and await fetched_again.read() == data


async def test_a_saved_answer_gets_a_provenance_callout(ann, notion):
    await connect(ann)
    doc = await note(ann, "Hills", "Lisbon has seven hills.")
    async with ann.app[DB].transaction() as session:
        await session.execute(
            update(Document)
            .where(Document.id == doc)
            .values(
                provenance={
                    "prompt": "How many hills?",
                    "sources": [{"model": "script/alpha", "input_tokens": 5, "cost": 12}],
                }
            )
        )
    assert (await export(ann, doc)).status == 200
    [page_id] = notion.created_pages()
    callout, paragraph = notion.page_blocks(page_id)
    assert callout["type"] == "callout" and paragraph["type"] == "paragraph"
    text = notion.plain_text(callout)
    assert "Prompt: How many hills?" in text and "Model: script/alpha" in text
    assert f"/notes/{doc}" in text

    plain = await note(ann, "Plain", "Just text.")
    assert (await export(ann, plain, include_provenance=False)).status == 200
    page = next(p for p in notion.created_pages() if p != page_id)
    assert [b["type"] for b in notion.page_blocks(page)] == ["paragraph"]


async def test_long_notes_respect_notions_limits(ann, notion):
    await connect(ann)
    long_paragraph = "x" * 4500
    many = "\n\n".join(f"Paragraph {n}" for n in range(230))
    doc = await note(ann, "Long", f"{long_paragraph}\n\n{many}")
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    [page_id] = notion.created_pages()
    blocks = notion.page_blocks(page_id)
    assert len(blocks) == 231
    first = blocks[0]["paragraph"]["rich_text"]
    assert [len(i["text"]["content"]) for i in first] == [2000, 2000, 500]
    # One create (100 blocks) and two appends (100 + 31): never more than 100 per request.
    appends = [r for r in notion.requests if r[0] == "PATCH" and r[1].endswith("/children")]
    assert len(appends) == 2


async def test_rate_limits_and_server_errors_are_retried(ann, notion):
    await connect(ann)
    doc = await note(ann, "Busy", "Hello")
    notion.next_failures = [(429, {"Retry-After": "1"}), (503, {})]
    started = time.monotonic()
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    assert time.monotonic() - started >= 1  # waited as Retry-After said
    assert len(notion.created_pages()) == 1

    notion.next_failures = [(500, {})] * 4
    failed = await export(ann, doc)
    assert failed.status == 503
    assert "Notion is not answering" in (await failed.json())["error"]["message"]


async def test_an_expired_token_is_refreshed_before_use(ann, notion):
    await connect(ann)
    doc = await note(ann, "Fresh", "Hello")
    async with ann.app[DB].transaction() as session:
        await session.execute(
            update(ConnectedAccountRow).values(expires_at=utcnow() - timedelta(minutes=5))
        )
    old_tokens = set(notion.access_tokens) - {notion.internal_token}
    notion.expire_access_tokens()
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    assert notion.token_requests[-1]["grant_type"] == "refresh_token"
    assert notion.access_tokens - {notion.internal_token}
    assert not notion.access_tokens & old_tokens


async def test_a_token_notion_refuses_is_refreshed_once_and_retried(ann, notion):
    await connect(ann)
    doc = await note(ann, "Retry", "Hello")
    notion.expire_access_tokens()  # refused although not expired by our clock
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    assert [r["grant_type"] for r in notion.token_requests] == [
        "authorization_code",
        "refresh_token",
    ]


async def test_a_revoked_connection_asks_to_reconnect(ann, notion):
    await connect(ann)
    doc = await note(ann, "Revoked", "Hello")
    notion.revoke_all()
    response = await export(ann, doc)
    assert response.status == 409
    error = (await response.json())["error"]
    assert error["code"] == "reconnect_required"
    assert error["fields"] == {"connection": "notion"}
    listed = await ann.get_json("/api/connections")
    assert listed["connections"][0]["status"] == "revoked"
    # The Export menu says so, with a link to reconnect that comes back to the note.
    menu = await ann.post(
        f"/exports/remote/{doc}?format=notion",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
    )
    text = await menu.text()
    assert "Reconnect Notion" in text and "/v1/oauth/authorize" in text
    # Reconnecting makes it work again.
    back = await connect(ann, f"/notes/{doc}")
    assert back.headers["Location"] == f"/notes/{doc}"
    assert (await export(ann, doc)).status == 200


async def test_not_connected_is_a_clear_409_and_the_menu_offers_to_connect(ann, notion):
    doc = await note(ann, "Lonely", "Hello")
    response = await export(ann, doc)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "not_connected"
    menu = await ann.post(
        f"/exports/remote/{doc}?format=notion",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
    )
    assert "Connect Notion" in await menu.text()
    assert notion.created_pages() == []


async def test_the_callback_refuses_a_state_from_another_session_and_a_replay(ann, bob, notion):
    started = await ann.post(
        "/connections/notion/connect",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
        allow_redirects=False,
    )
    state = parse_qs(urlsplit(started.headers["HX-Redirect"]).query)["state"][0]
    # Bob's browser with Ann's state: refused, and Ann's flow is left alone.
    stolen = await bob.get(
        f"/connections/notion/callback?code=x&state={state}", allow_redirects=False
    )
    assert stolen.status == 303 and stolen.headers["Location"] == "/account#connections"
    assert (await bob.get_json("/api/connections"))["connections"] == []
    assert notion.token_requests == []
    # A code nobody issued: Notion refuses it, nothing is stored.
    refused = await ann.get(
        f"/connections/notion/callback?code=forged&state={state}", allow_redirects=False
    )
    assert refused.status == 303
    assert (await ann.get_json("/api/connections"))["connections"] == []
    # The state worked once: used again, it is refused before Notion is asked.
    asked = len(notion.token_requests)
    await ann.get(f"/connections/notion/callback?code=x&state={state}", allow_redirects=False)
    assert len(notion.token_requests) == asked


async def test_a_viewer_exports_a_shared_note_and_a_stranger_cannot(ann, bob, eve, notion):
    doc = await note(ann, "Shared", "For Bob")
    shared = await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "bob@example.com"}
    )
    assert shared.status == 201, await shared.text()
    await connect(bob)
    response = await export(bob, doc)
    assert response.status == 200, await response.text()
    assert len(notion.created_pages()) == 1
    await connect(eve)
    assert (await export(eve, doc)).status == 404
    # A connection is its owner's: Eve cannot see or delete Bob's.
    bobs = (await bob.get_json("/api/connections"))["connections"][0]["id"]
    assert (await eve.delete(f"/api/connections/{bobs}")).status == 404
    assert (await bob.delete(f"/api/connections/{bobs}")).status == 204
    assert (await bob.get_json("/api/connections"))["connections"] == []


async def test_bad_input_is_a_clear_error(ann, notion):
    await connect(ann)
    doc = await note(ann, "Bad", "Hello")
    bad = await export(ann, doc, parent_page_id="not-an-id")
    assert bad.status == 422
    assert "options.parent_page_id" in (await bad.json())["error"]["fields"]
    unknown = await export(ann, doc, colour="red")
    assert unknown.status == 422
    listed = await ann.get_json("/api/exporters")
    [notion_format] = [e for e in listed["exporters"] if e["id"] == "notion"]
    assert notion_format["remote"] is True
    assert "parent_page_id" in notion_format["options"]["properties"]
    as_file = await ann.get(f"/api/documents/{doc}/export?format=notion")
    assert as_file.status == 422
    assert (await as_file.json())["error"]["code"] == "remote_exporter"
    missing = await export(ann, doc, parent_page_id="0" * 32)
    assert missing.status == 422
    assert "parent_page_id" in (await missing.json())["error"]["fields"]
    assert notion.created_pages() == []


async def test_the_user_picks_the_parent_page(ann, notion):
    projects = notion.add_page("Projects")
    await connect(ann)
    [connection] = (await ann.get_json("/api/connections"))["connections"]
    assert connection["destination"] is None
    listed = await ann.get_json(f"/api/connections/{connection['id']}/destinations")
    assert listed["label"] == "Parent page"
    names = {d["name"]: d["id"] for d in listed["destinations"]}
    assert names == {"Team notes": notion.root_page, "Projects": projects}

    refused = await ann.patch(f"/api/connections/{connection['id']}", {"destination_id": "nope"})
    assert refused.status == 422
    assert "destination_id" in (await refused.json())["error"]["fields"]
    chosen = await ann.patch(f"/api/connections/{connection['id']}", {"destination_id": projects})
    assert chosen.status == 200, await chosen.text()
    assert (await chosen.json())["destination"] == {"id": projects, "name": "Projects"}
    account = await (await ann.get("/account")).text()
    assert "Parent page: Projects" in account

    doc = await note(ann, "Under projects", "Hello")
    assert (await export(ann, doc)).status == 200
    [page_id] = notion.created_pages()[1:]  # after the Projects page itself
    assert notion.pages[page_id]["parent"]["page_id"] == projects

    # The same through the page: a form listing them, then back to the account.
    form = await (await ann.get(f"/connections/{connection['id']}/destination")).text()
    assert "Team notes" in form and "Projects" in form
    saved = await ann.post(
        f"/connections/{connection['id']}/destination",
        data={"csrf_token": ann.csrf, "destination_id": notion.root_page},
        allow_redirects=False,
    )
    assert saved.status == 303 and saved.headers["Location"] == "/account#connections"
    [connection] = (await ann.get_json("/api/connections"))["connections"]
    assert connection["destination"]["name"] == "Team notes"


async def test_an_internal_integration_secret_connects_too(ann, notion):
    wrong = await ann.post("/api/connections", {"kind": "notion", "access_token": "ntn_nope"})
    assert wrong.status == 422
    assert "access_token" in (await wrong.json())["error"]["fields"]
    assert (await ann.get_json("/api/connections"))["connections"] == []
    for bad in ("ntn_olá", "two words", "tab\there"):
        refused = await ann.post("/api/connections", {"kind": "notion", "access_token": bad})
        assert refused.status == 422, bad
    not_pasted = await ann.post("/api/connections", {"kind": "elsewhere", "access_token": "x"})
    assert not_pasted.status == 404

    made = await ann.post(
        "/api/connections", {"kind": "notion", "access_token": notion.internal_token}
    )
    assert made.status == 201, await made.text()
    body = await made.json()
    assert body["account_name"] == "Ann's Workspace"
    assert notion.internal_token not in str(body)
    doc = await note(ann, "Internal", "Hello")
    assert (await export(ann, doc)).status == 200
    assert len(notion.created_pages()) == 1
    assert notion.token_requests == []  # no OAuth at all

    # Revoked at Notion: nothing to refresh with, so the user is asked to reconnect.
    notion.access_tokens.discard(notion.internal_token)
    refused = await export(ann, doc)
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "reconnect_required"


async def test_the_account_page_form_takes_a_pasted_secret(ann, notion):
    page = await (await ann.get("/account")).text()
    assert "Internal integration secret" in page
    saved = await ann.post(
        "/connections/notion/token",
        data={"csrf_token": ann.csrf, "access_token": notion.internal_token},
        allow_redirects=False,
    )
    assert saved.status == 303 and saved.headers["Location"] == "/account#connections"
    [connection] = (await ann.get_json("/api/connections"))["connections"]
    assert connection["account_name"] == "Ann's Workspace"
