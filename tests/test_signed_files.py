"""Signed file links (``GET /files/signed/{id}?exp=&sig=``), in both runtime modes: a public,
expiring link to one of a user's files, for a service that fetches it without signing in (Notion,
for the images of an exported note). The link works for anyone until it expires; a changed id,
expiry or signature is a 403; a deleted file is a 404; fetching it changes nothing."""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import select

from multinotes.files import signed
from multinotes.files.models import File
from multinotes.keys import DB, SETTINGS
from multinotes.testing import ApiClient
from tests.support import people

ann = people.ann
eve = people.eve


def png(color: str) -> bytes:
    picture = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(picture, "PNG")
    return picture.getvalue()


async def upload(api: ApiClient, data: bytes, name: str, media_type: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=media_type)
    response = await api.post("/api/files", data=form)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


def link(api: ApiClient, file_id: str, ttl: int = 600) -> str:
    """The signed link's path and query, as the app makes it (``signed_file_url``)."""
    parts = urlsplit(signed.signed_file_url(api.app, file_id, ttl))
    return f"{parts.path}?{parts.query}"


def query_of(path: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in urlsplit(path).query.split("&"))


async def fetch(client: ApiClient, path: str, method: str = "GET") -> Any:
    """As a service fetching the link would; asking for JSON gets errors as JSON (a browser
    gets the app's error page)."""
    return await client.request(method, path, headers={"Accept": "application/json"})


@pytest.fixture
async def stranger(make_client: Any) -> ApiClient:
    """Nobody signed in: Notion's image fetcher."""
    client: ApiClient = await make_client()
    return client


async def test_a_signed_link_serves_the_file_to_anyone_until_it_expires(ann, stranger):
    data = png("teal")
    file_id = await upload(ann, data, "map.png", "image/png")
    path = link(ann, file_id)
    assert path.startswith(f"/files/signed/{file_id}?exp=")

    response = await fetch(stranger, path)
    assert response.status == 200, await response.text()
    assert await response.read() == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    # The signed-in owner's own download is unchanged: the link adds a way in, nothing else.
    assert (await ann.get(f"/api/files/{file_id}/content")).status == 200
    # Without the link, a stranger still sees nothing.
    assert (await fetch(stranger, f"/api/files/{file_id}/content")).status in (401, 404)


async def test_an_expired_link_is_refused(ann, stranger):
    file_id = await upload(ann, png("red"), "red.png", "image/png")
    key = ann.app[SETTINGS].master_keys()[0]
    past = int(time.time()) - 1
    response = await fetch(stranger, signed.signed_path(key, file_id, past))
    assert response.status == 403
    error = (await response.json())["error"]
    assert error["code"] == "forbidden" and "expired" in error["message"]
    assert error["fields"] == {"sig": "invalid or expired"}
    # A browser opening the old link gets the app's error page, still a 403.
    opened = await stranger.get(signed.signed_path(key, file_id, past))
    assert opened.status == 403 and opened.content_type == "text/html"
    # Validly signed but a moment from now: still good.
    soon = int(time.time()) + 5
    assert (await fetch(stranger, signed.signed_path(key, file_id, soon))).status == 200


async def test_a_tampered_link_is_refused(ann, stranger):
    file_id = await upload(ann, png("blue"), "blue.png", "image/png")
    path = link(ann, file_id)
    query = query_of(path)
    longer = int(query["exp"]) + 3600
    flipped = ("0" if query["sig"][0] != "0" else "1") + query["sig"][1:]
    for bad in (
        f"/files/signed/{file_id}?exp={longer}&sig={query['sig']}",  # expiry pushed back
        f"/files/signed/{file_id}?exp={query['exp']}&sig={flipped}",  # signature changed
        f"/files/signed/{file_id}?exp={query['exp']}",  # no signature
        f"/files/signed/{file_id}?sig={query['sig']}",  # no expiry
        f"/files/signed/{file_id}?exp=soon&sig={query['sig']}",  # not a number
        f"/files/signed/{file_id}",
    ):
        response = await fetch(stranger, bad)
        assert response.status == 403, bad
        assert (await response.json())["error"]["fields"] == {"sig": "invalid or expired"}


async def test_a_link_opens_only_the_file_it_was_signed_for(ann, eve, stranger):
    mine = await upload(ann, png("green"), "green.png", "image/png")
    theirs = await upload(eve, png("black"), "black.png", "image/png")
    query = query_of(link(ann, mine))
    response = await fetch(
        stranger, f"/files/signed/{theirs}?exp={query['exp']}&sig={query['sig']}"
    )
    assert response.status == 403
    # Eve's own link to her file opens hers, not Ann's.
    response = await fetch(stranger, link(eve, theirs))
    assert response.status == 200 and await response.read() == png("black")


async def test_a_deleted_file_is_not_found(ann, stranger):
    file_id = await upload(ann, png("white"), "white.png", "image/png")
    path = link(ann, file_id)
    deleted = await ann.delete(f"/api/files/{file_id}")
    assert deleted.status in (200, 204), await deleted.text()
    response = await fetch(stranger, path)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_a_link_signed_with_a_retired_master_key_still_works(ann, stranger):
    file_id = await upload(ann, png("gray"), "gray.png", "image/png")
    settings = ann.app[SETTINGS]
    old = settings.master_keys()[0]
    path = signed.signed_path(old, file_id, int(time.time()) + 60)
    forged = signed.signed_path("not the instance's key", file_id, int(time.time()) + 60)
    assert (await fetch(stranger, forged)).status == 403
    # Rotated: the old key is listed in ``old_secret_keys``; its links keep working.
    original = settings.master_keys
    object.__setattr__(settings, "master_keys", lambda: ["a brand new key", old])
    try:
        assert (await fetch(stranger, path)).status == 200
        assert urlsplit(signed.signed_file_url(ann.app, file_id, 60)).query != urlsplit(path).query
    finally:
        object.__setattr__(settings, "master_keys", original)


async def test_fetching_a_signed_link_changes_nothing(ann, stranger):
    data = b"plain words\n"
    file_id = await upload(ann, data, "words.txt", "text/plain")

    async def snapshot() -> Any:
        async with ann.app[DB].read() as session:
            row = await session.scalar(select(File).where(File.id == file_id))
        assert row is not None
        return (row.name, row.size, row.sha256, row.updated_at, row.folder_id)

    before = await snapshot()
    for _ in range(2):
        response = await fetch(stranger, link(ann, file_id))
        assert response.status == 200
        body = await response.read()
        assert body == data and hashlib.sha256(body).hexdigest() == before[2]
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    head = await fetch(stranger, link(ann, file_id), "HEAD")
    assert head.status == 200
    assert await snapshot() == before
    listed = await ann.get_json("/api/files")
    assert [f["id"] for f in listed["files"]] == [file_id]


def test_links_live_between_a_second_and_a_year(api):
    with pytest.raises(ValueError):
        signed.signed_file_url(api.app, "abc", 0)
    with pytest.raises(ValueError):
        signed.signed_file_url(api.app, "abc", signed.MAX_TTL + 1)
    assert "/files/signed/abc?exp=" in signed.signed_file_url(api.app, "abc", signed.MAX_TTL)
