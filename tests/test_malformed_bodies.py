"""Malformed request bodies are the client's fault: a 4xx in the one error shape, with a field
error saying what to send, never a 500 — for JSON endpoints and the multipart uploads alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from multinotes.app import create_app
from multinotes.settings import Settings
from multinotes.testing import ApiClient

UPLOADS = [("/api/files", "file"), ("/api/me/avatar", "avatar")]

#: (content type, body) pairs that are not a well-formed multipart form.
BROKEN_MULTIPART = [
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=file\r\n\r\nhi"),
    ("multipart/form-data; boundary=", b"hello"),
    ("multipart/form-data; boundary=x", b""),
    ("multipart/form-data; boundary=x", b"no boundary in here at all"),
    ("multipart/form-data; boundary=x", b"--x\r\nBroken header line\r\n\r\ndata\r\n--x--\r\n"),
    (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\ncut of',
    ),
    ("multipart/mixed; boundary=x", b"--x\r\n\r\nhi\r\n--x--\r\n"),
    ("application/json", b'{"file": "not a file"}'),
    ("text/plain", b"just text"),
    ("application/x-www-form-urlencoded", b"file=abc"),
]


def assert_client_error(status: int, body: Any, *, fields: bool = True) -> None:
    assert 400 <= status < 500, (status, body)
    error = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), body
    if fields:
        assert error.get("fields"), body


@pytest.fixture
async def someone(api: ApiClient) -> ApiClient:
    await api.register_and_login("malformed@example.com")
    await api.mark_verified()
    return api


@pytest.mark.parametrize(("path", "field"), UPLOADS)
async def test_a_broken_multipart_upload_is_a_client_error_naming_the_field(
    someone: ApiClient, path: str, field: str
):
    for content_type, data in BROKEN_MULTIPART:
        response = await someone.post(path, data=data, headers={"Content-Type": content_type})
        body = await response.json()
        assert_client_error(response.status, body)
        assert field in body["error"]["fields"], (content_type, data, body)


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"title": "unterminated', "application/json"),
        (b"\xff\xfe not utf-8", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"a string"', "application/json"),
        (b"null", "application/json"),
        (b"title=x", "application/x-www-form-urlencoded"),
        (b"--x\r\n\r\n--x--", "multipart/form-data"),
        (b'{"title": "ok"}', "text/plain"),
    ],
)
async def test_a_json_endpoint_refuses_a_malformed_body_with_a_field_error(
    someone: ApiClient, raw: bytes, content_type: str
):
    response = await someone.post(
        "/api/documents", data=raw, headers={"Content-Type": content_type}
    )
    assert_client_error(response.status, await response.json())


@pytest.mark.parametrize(
    "body",
    [
        {"title": ["not", "a", "string"]},
        {"title": "x", "folder_id": 12},
        {"title": "x", "folder_id": {"id": "y"}},
        {"title": "x", "content": None, "unknown": True},
        {"title": "\ud800"},
    ],
)
async def test_json_of_the_wrong_shape_is_a_422_naming_the_field(someone: ApiClient, body: Any):
    response = await someone.post("/api/documents", body)
    assert response.status in (400, 422)
    assert_client_error(response.status, await response.json())


@pytest.mark.parametrize("path", ["/api/documents", "/account/avatar", "/api/files"])
async def test_a_broken_form_without_the_csrf_header_is_refused_not_a_500(
    someone: ApiClient, path: str
):
    """The CSRF check reads a cookie session's form for its token field; a form it cannot
    parse has no token."""
    for content_type, data in BROKEN_MULTIPART[:5]:
        response = await someone.client.post(
            path, data=data, headers={"Content-Type": content_type, "Accept": "application/json"}
        )
        assert 400 <= response.status < 500, (path, content_type, response.status)


@pytest.mark.parametrize(("path", "field"), UPLOADS)
async def test_an_upload_cut_off_by_a_client_that_went_away_is_a_4xx_in_the_log(
    make_settings: Callable[..., Settings], path: str, field: str
):
    """The connection closes halfway through the file (a cancelled upload, a lost network):
    that is the client's doing, logged as a 4xx with nothing kept, not a 500. Served as
    ``multinotes serve`` serves, which lets the handler run on when the client goes away."""
    app = create_app(make_settings(email_verification_required=False))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
            credentials = {"email": "gone@example.com", "password": "a long enough password"}
            (await http.post("/api/auth/register", json={**credentials, "name": "G"})).close()
            csrf = (await (await http.post("/api/auth/login", json=credentials)).json())[
                "csrf_token"
            ]
            cookies = "; ".join(f"{c.key}={c.value}" for c in http.cookie_jar)
            start = (
                (
                    f'--XX\r\nContent-Disposition: form-data; name="{field}"; filename="a.png"\r\n'
                    "Content-Type: image/png\r\n\r\n"
                ).encode()
                + b"\x89PNG\r\n\x1a\n"
                + b"\0" * 20_000
            )
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookies}\r\n"
                f"X-CSRF-Token: {csrf}\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
                f"Content-Length: {len(start) + 100_000}\r\n\r\n"
            )
            with capture_logs() as logged:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head.encode() + start)
                await writer.drain()
                await asyncio.sleep(0.3)
                writer.close()
                await reader.read()
                posts: list[dict[str, Any]] = []
                for _ in range(50):
                    posts = [
                        e for e in logged if e.get("method") == "POST" and e.get("path") == path
                    ]
                    if posts:
                        break
                    await asyncio.sleep(0.1)
            assert posts, "the cut-off upload was not logged"
            assert posts[0]["status"] == 400, posts[0]  # incomplete_body
            assert not [e for e in logged if e["event"] == "unhandled_error"]
    finally:
        await runner.cleanup()
