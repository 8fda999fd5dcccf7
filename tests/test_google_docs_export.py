"""Google Docs through the HTTP API and a local Google (``plugins/exports/google_docs/tests/
fakes``), in both runtime modes: connecting with PKCE and offline access (drive.file only), a
note uploaded as HTML that Drive converts to a Google Doc, the same document updated on
re-export (a new one when it was deleted), a chosen folder, rate limits retried, an expired token
refreshed, a revoked connection asking to reconnect."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from multinotes.connections.models import ConnectedAccountRow
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.notes.models import Document
from multinotes.plugins.exports import google_docs as google_docs_plugin
from multinotes.plugins.exports.google_docs.tests.fakes.fake_google import DRIVE_FILE, FakeGoogle
from multinotes.testing import ApiClient
from tests.support import people

ann = people.ann


@pytest.fixture
async def fake_google() -> Any:
    fake = FakeGoogle()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def plugins() -> Any:
    return [("google_docs", google_docs_plugin)]


@pytest.fixture
def settings(make_settings: Any, fake_google: tuple[FakeGoogle, str]) -> Any:
    fake, url = fake_google
    return make_settings(
        plugins={
            "google_docs": {
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "api_base": url,
                "auth_base": url,
                "token_base": url,
            }
        }
    )


@pytest.fixture
def google(fake_google: tuple[FakeGoogle, str]) -> FakeGoogle:
    return fake_google[0]


async def connect(api: ApiClient) -> aiohttp.ClientResponse:
    started = await api.post(
        "/connections/google_docs/connect",
        data={"csrf_token": api.csrf},
        headers={"HX-Request": "true"},
        allow_redirects=False,
    )
    assert started.status == 204, await started.text()
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(started.headers["HX-Redirect"], allow_redirects=False) as consent,
    ):
        assert consent.status == 302, await consent.text()
        back = urlsplit(consent.headers["Location"])
    return await api.get(f"{back.path}?{back.query}", allow_redirects=False)


async def note(api: ApiClient, title: str, content: str) -> str:
    response = await api.post("/api/documents", {"title": title, "content": content})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def export(api: ApiClient, doc: str, **options: Any) -> aiohttp.ClientResponse:
    body: dict[str, Any] = {"format": "google_docs"}
    if options:
        body["options"] = options
    return await api.post(f"/api/documents/{doc}/export", body)


class Tags(HTMLParser):
    """The tags and text of the uploaded page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


async def test_connect_export_and_export_again_updates_the_same_doc(ann, google):
    back = await connect(ann)
    assert back.status == 303 and back.headers["Location"] == "/account#connections"
    asked = google.authorize_requests[0]
    assert asked["scope"] == DRIVE_FILE  # drive.file only
    assert asked["access_type"] == "offline" and asked["code_challenge_method"] == "S256"
    exchange = google.token_requests[0]
    assert exchange["grant_type"] == "authorization_code" and exchange["code_verifier"]
    [connection] = (await ann.get_json("/api/connections"))["connections"]
    assert connection["kind"] == "google_docs"
    assert connection["account_name"] == google.email

    doc = await note(
        ann, "Report", "# Findings\n\n- **one**\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    async with ann.app[DB].transaction() as session:
        await session.execute(
            update(Document)
            .where(Document.id == doc)
            .values(provenance={"prompt": "Summarise", "sources": [{"model": "script/alpha"}]})
        )
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    url = (await response.json())["url"]
    [file_id] = google.files
    assert url.startswith(f"https://docs.google.com/document/d/{file_id}/")
    uploaded = google.files[file_id]
    assert uploaded["name"] == "Report"
    page = parsed(uploaded["html"])
    assert {"h1", "ul", "strong", "table"} <= set(page.tags)
    text = " ".join(page.text)
    assert "Findings" in text and "Summarise" in text and "script/alpha" in text

    version = (await ann.get_json(f"/api/documents/{doc}"))["version"]
    edited = await ann.patch(
        f"/api/documents/{doc}", {"title": "Report v2", "content": "Updated.", "version": version}
    )
    assert edited.status == 200, await edited.text()
    again = await export(ann, doc)
    assert again.status == 200, await again.text()
    assert (await again.json())["url"] == url
    assert list(google.files) == [file_id]
    assert google.files[file_id]["versions"] == 2
    assert google.files[file_id]["name"] == "Report v2"
    assert "Updated." in google.files[file_id]["html"]
    assert google.uploads == [
        ("POST", "/upload/drive/v3/files"),
        ("PATCH", f"/upload/drive/v3/files/{file_id}"),
    ]

    # Deleted in Drive since: the next export makes a new document.
    google.files[file_id]["trashed"] = True
    third = await export(ann, doc)
    assert third.status == 200
    assert len(google.files) == 2 and (await third.json())["url"] != url


async def test_a_chosen_folder_and_a_folder_that_does_not_exist(ann, google):
    await connect(ann)
    doc = await note(ann, "Filed", "Text")
    response = await export(ann, doc, folder_id="folder-reports-0001")
    assert response.status == 200, await response.text()
    [made] = google.files.values()
    assert made["parents"] == ["folder-reports-0001"]
    other = await note(ann, "Lost", "Text")
    missing = await export(ann, other, folder_id="folder-nowhere-000")
    assert missing.status == 422
    assert "folder_id" in (await missing.json())["error"]["fields"]
    bad = await export(ann, other, folder_id="../etc")
    assert bad.status == 422


async def test_rate_limits_are_retried_and_an_expired_token_refreshed(ann, google):
    await connect(ann)
    doc = await note(ann, "Busy", "Text")
    google.next_failures = [
        (429, {"Retry-After": "0"}, "rateLimitExceeded"),
        (403, {}, "userRateLimitExceeded"),
        (500, {}, "backendError"),
    ]
    response = await export(ann, doc)
    assert response.status == 200, await response.text()
    assert len(google.files) == 1

    async with ann.app[DB].transaction() as session:
        await session.execute(
            update(ConnectedAccountRow).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    google.expire_access_tokens()
    again = await export(ann, doc)
    assert again.status == 200, await again.text()
    refresh = google.token_requests[-1]
    assert refresh["grant_type"] == "refresh_token"
    assert refresh["client_secret"] == google.client_secret


async def test_a_revoked_connection_asks_to_reconnect(ann, google):
    await connect(ann)
    doc = await note(ann, "Revoked", "Text")
    google.revoke_all()
    response = await export(ann, doc)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "reconnect_required"
    [connection] = (await ann.get_json("/api/connections"))["connections"]
    assert connection["status"] == "revoked"
    account = await (await ann.get("/account")).text()
    assert "needs reconnecting" in account and "Reconnect Google Docs" in account
    assert google.files == {}


async def test_a_consent_google_denies_connects_nothing(ann, google):
    started = await ann.post(
        "/connections/google_docs/connect",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
        allow_redirects=False,
    )
    state = parse_qs(urlsplit(started.headers["HX-Redirect"]).query)["state"][0]
    denied = await ann.get(
        f"/connections/google_docs/callback?error=access_denied&state={state}",
        allow_redirects=False,
    )
    assert denied.status == 303 and denied.headers["Location"] == "/account#connections"
    assert (await ann.get_json("/api/connections"))["connections"] == []
    assert google.token_requests == []


async def test_the_user_picks_the_folder(ann, google):
    await connect(ann)
    [connection] = (await ann.get_json("/api/connections"))["connections"]
    listed = await ann.get_json(f"/api/connections/{connection['id']}/destinations")
    assert listed["label"] == "Folder"
    assert [d["name"] for d in listed["destinations"]] == ["My Drive", "Reports"]
    chosen = await ann.patch(
        f"/api/connections/{connection['id']}", {"destination_id": "folder-reports-0001"}
    )
    assert chosen.status == 200, await chosen.text()
    doc = await note(ann, "Filed by default", "Text")
    assert (await export(ann, doc)).status == 200
    [made] = google.files.values()
    assert made["parents"] == ["folder-reports-0001"]
