"""Files: upload within limits, download, preview, rename/move/delete, owner-only access."""

from __future__ import annotations

import asyncio
import io
import wave
import zipfile
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from multinotes.files.models import File
from multinotes.http.downloads import content_disposition
from multinotes.keys import SETTINGS
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.support.stored_files import row_count, stored_objects

# -- tiny valid samples ---------------------------------------------------------------------------


def image(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return out.getvalue()


def office(kind: str) -> bytes:
    main = {
        "docx": ("word/document.xml", "wordprocessingml.document.main+xml"),
        "xlsx": ("xl/workbook.xml", "spreadsheetml.sheet.main+xml"),
        "pptx": ("ppt/presentation.xml", "presentationml.presentation.main+xml"),
    }[kind]
    types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Override PartName="/' + main[0] + '" ContentType="application/'
        "vnd.openxmlformats-officedocument." + main[1] + '"/></Types>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr(main[0], "<x/>")
    return out.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 40
SAMPLES: dict[str, tuple[bytes, str, str]] = {
    # name: (bytes, declared type, expected stored type)
    "a.png": (image("PNG"), "image/png", "image/png"),
    "a.jpg": (image("JPEG"), "image/jpeg", "image/jpeg"),
    "a.gif": (image("GIF"), "image/gif", "image/gif"),
    "a.webp": (image("WEBP"), "image/webp", "image/webp"),
    "a.pdf": (
        b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "application/pdf",
        "application/pdf",
    ),
    "a.mp3": (
        b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400),
        "audio/mpeg",
        "audio/mpeg",
    ),
    "a.wav": (wav(), "audio/wav", "audio/wav"),
    "a.flac": (b"fLaC\x00\x00\x00\x22" + bytes(60), "audio/flac", "audio/flac"),
    "a.aac": (b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(60), "audio/aac", "audio/aac"),
    "a.ogg": (b"OggS\x00\x02" + bytes(200), "audio/ogg", "audio/ogg"),
    "a.m4a": (
        b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00isomM4A " + bytes(100),
        "audio/mp4",
        "audio/mp4",
    ),
    "a.mp4": (MP4, "video/mp4", "video/mp4"),
    "a.webm": (
        b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(100),
        "video/webm",
        "video/webm",
    ),
    "a.docx": (office("docx"), "", DOCX),
    "a.xlsx": (
        office("xlsx"),
        "application/octet-stream",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    "a.pptx": (
        office("pptx"),
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    "a.txt": ("Grüße, plain text\n".encode(), "text/plain", "text/plain"),
    "a.md": (b"# Title\n\nSome *markdown*.\n", "text/markdown", "text/markdown"),
    "a.csv": (b"a,b\n1,2\n", "text/csv", "text/csv"),
}


def form(data: bytes, name: str, content_type: str = "", **fields: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    for key, value in fields.items():
        body.add_field(key, value)
    body.add_field("file", data, filename=name, content_type=content_type or None)
    return body


async def upload(api: ApiClient, data: bytes, name: str, content_type: str = "", **kw: Any) -> Any:
    return await api.post("/api/files", data=form(data, name, content_type, **kw))


async def user(api: ApiClient, email: str = "ann@example.com") -> ApiClient:
    await api.register_and_login(email)
    await api.mark_verified()
    return api


# -- round trips ----------------------------------------------------------------------------------


async def test_each_allowed_kind_round_trips(api: ApiClient) -> None:
    await user(api)
    for name, (data, declared, stored) in SAMPLES.items():
        response = await upload(api, data, name, declared)
        body = await response.json()
        assert response.status == 201, (name, body)
        assert body["name"] == name and body["size"] == len(data)
        assert body["content_type"] == stored, name
        got = await api.get(f"/api/files/{body['id']}/content")
        assert got.status == 200, name
        assert await got.read() == data, name
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        meta = await api.get_json(f"/api/files/{body['id']}")
        assert meta["id"] == body["id"] and meta["source"] == "upload"
    listing = await api.get_json("/api/files?limit=5")
    assert len(listing["files"]) == 5 and listing["next_cursor"]
    seen = [f["id"] for f in listing["files"]]
    cursor = listing["next_cursor"]
    while cursor:
        page = await api.get_json(f"/api/files?limit=5&before={cursor}")
        seen += [f["id"] for f in page["files"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == len(SAMPLES)
    used = await api.get_json("/api/files/usage")
    assert used["used"] == sum(len(d) for d, _, _ in SAMPLES.values())
    assert used["quota"] == api.app[SETTINGS].default_storage_quota_bytes
    assert Settings.model_fields["default_storage_quota_bytes"].default == 5 * 1024**3
    assert Settings.model_fields["max_upload_bytes"].default == 25 * 1024**2


# -- refused content ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "declared"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "cat.png", "image/png"),
        (b"<html><body>hi</body></html>", "page.html", "text/html"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "logo.svg",
            "image/svg+xml",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "notes.txt",
            "text/plain",
        ),
        (b"<!doctype html><script>alert(1)</script>", "readme.md", "text/markdown"),
        (b"MZ\x90\x00\x03" + bytes(100), "tool.exe", "application/octet-stream"),
        (b"plain words\x00with a NUL", "a.txt", "text/plain"),
        (b"\xff\xfe\x00bad utf8 \xc3", "a.txt", "text/plain"),
        (image("PNG"), "photo.jpg", "image/jpeg"),  # a PNG named and declared as JPEG
        (image("PNG"), "photo.png", "text/html"),  # declared type disagrees
        (image("PNG"), "photo.html", ""),  # extension disagrees
    ],
)
async def test_disguised_or_unknown_files_are_refused(
    api: ApiClient, settings: Settings, data: bytes, name: str, declared: str
) -> None:
    await user(api)
    response = await upload(api, data, name, declared)
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "file_type_refused"
    assert "file" in body["error"]["fields"]
    assert await row_count(api) == 0
    assert stored_objects(settings) == []


async def test_a_zip_that_is_not_an_office_document_is_refused(
    api: ApiClient, settings: Settings
) -> None:
    await user(api)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("evil.html", "<script>alert(1)</script>")
    for name in ("report.docx", "archive.zip"):
        response = await upload(api, out.getvalue(), name)
        body = await response.json()
        assert response.status == 422, body
        assert body["error"]["fields"]["file"]
    macro = office("docx").replace(b"", b"")  # a macro-enabled workbook declares itself
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types><Override ContentType="application/vnd.ms-word.document.macroEnabled.'
            'main+xml wordprocessingml.document.main+xml"/></Types>',
        )
    assert macro
    response = await upload(api, buf.getvalue(), "macro.docx")
    assert response.status == 422
    assert await row_count(api) == 0
    assert stored_objects(settings) == []


# -- limits ---------------------------------------------------------------------------------------


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_upload_bytes=64 * 1024, default_storage_quota_bytes=200 * 1024)


async def chunked(data: bytes, pieces: int = 16) -> AsyncIterator[bytes]:
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        await asyncio.sleep(0)
        yield data[start : start + step]


def streamed_form(data: bytes, name: str) -> aiohttp.MultipartWriter:
    """A multipart body without a Content-Length: the server learns the size only by reading."""
    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(chunked(data))
    part.set_content_disposition("form-data", name="file", filename=name)
    return writer


async def test_a_file_over_the_size_limit_is_refused(api: ApiClient, settings: Settings) -> None:
    await user(api)
    big = b"x" * (65 * 1024)
    response = await upload(api, big, "big.txt")
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "file_too_large"
    # Streamed without a length: stopped while reading.
    response = await api.post("/api/files", data=streamed_form(big, "big.txt"))
    assert response.status == 413, await response.text()
    assert (await response.json())["error"]["code"] == "file_too_large"
    assert await row_count(api) == 0
    assert stored_objects(settings) == []
    # Bigger than the app-wide request limit is fine when the upload limit allows it.
    ok = await upload(api, b"y" * (60 * 1024), "fine.txt")
    assert ok.status == 201


async def test_upload_limit_may_exceed_the_global_request_limit(
    make_settings: Callable[..., Settings],
) -> None:
    from multinotes.app import create_app
    from multinotes.testing import app_client

    settings = make_settings(max_request_bytes=16 * 1024, max_upload_bytes=128 * 1024)
    async with app_client(create_app(settings)) as api:
        await user(api)
        response = await upload(api, b"z" * (100 * 1024), "large.txt")
        assert response.status == 201, await response.text()
        # Other routes keep the global limit.
        response = await api.post(
            "/api/auth/login",
            data=b"{" + b" " * (20 * 1024) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 413


async def test_quota_reached_mid_stream_keeps_nothing(api: ApiClient, settings: Settings) -> None:
    await user(api)
    for index in range(3):
        assert (await upload(api, b"q" * (60 * 1024), f"f{index}.txt")).status == 201
    # 180 KiB used of 200: a 30 KiB file streamed without a length passes the quota mid-stream.
    response = await api.post("/api/files", data=streamed_form(b"r" * (30 * 1024), "r.txt"))
    body = await response.json()
    assert response.status == 413, body
    assert body["error"]["code"] == "quota_exceeded"
    assert await row_count(api) == 3
    assert len(stored_objects(settings)) == 3
    # With a declared length, it is refused before any byte is read.
    response = await upload(api, b"r" * (30 * 1024), "r.txt")
    assert (await response.json())["error"]["code"] == "quota_exceeded"
    assert (await api.get_json("/api/files/usage"))["used"] == 180 * 1024


async def test_concurrent_uploads_cannot_exceed_the_quota(
    api: ApiClient, settings: Settings
) -> None:
    await user(api)
    assert (await upload(api, b"a" * (60 * 1024), "one.txt")).status == 201
    # 140 KiB left: each of three 60 KiB uploads fits alone, all three do not.
    results = await asyncio.gather(
        *(
            api.post("/api/files", data=streamed_form(b"c" * (60 * 1024), f"c{i}.txt"))
            for i in range(3)
        )
    )
    statuses = sorted(r.status for r in results)
    assert statuses == [201, 201, 413], statuses
    usage = await api.get_json("/api/files/usage")
    assert usage["used"] == 180 * 1024 <= usage["quota"]
    assert len(stored_objects(settings)) == 3


# -- serving --------------------------------------------------------------------------------------


async def test_content_disposition_inline_only_for_safe_types(api: ApiClient) -> None:
    await user(api)
    for name, expected in (
        ("a.png", "inline"),
        ("a.pdf", "inline"),
        ("a.mp3", "inline"),
        ("a.txt", "inline"),
        ("a.docx", "attachment"),
        ("a.xlsx", "attachment"),
    ):
        data, declared, _ = SAMPLES[name]
        created = await (await upload(api, data, name, declared)).json()
        await api.patch(f"/api/files/{created['id']}", {"name": "ü " + name})
        response = await api.get(f"/api/files/{created['id']}/content")
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith(expected), (name, disposition)
        assert "filename*=UTF-8''%C3%BC%20" in disposition
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    # Anything that could run in a browser is an attachment, whatever the stored row says.
    for ctype in (
        "text/html",
        "image/svg+xml",
        "application/xml",
        "text/javascript",
        "application/octet-stream",
    ):
        row = File(name="x", content_type=ctype)
        assert content_disposition(row).startswith("attachment"), ctype


async def test_range_requests(api: ApiClient) -> None:
    await user(api)
    created = await (await upload(api, MP4, "clip.mp4", "video/mp4")).json()
    response = await api.get(
        f"/api/files/{created['id']}/content", headers={"Range": "bytes=100-199"}
    )
    assert response.status == 206
    assert await response.read() == MP4[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(MP4)}"
    assert response.headers["Content-Type"].startswith("video/mp4")
    tail = await api.get(f"/api/files/{created['id']}/content", headers={"Range": "bytes=-10"})
    assert await tail.read() == MP4[-10:]


async def test_previews(api: ApiClient) -> None:
    await user(api)
    big = await (await upload(api, image("PNG", (1600, 900)), "wide.png")).json()
    response = await api.get(f"/api/files/{big['id']}/preview")
    assert response.status == 200 and response.content_type == "image/png"
    with Image.open(io.BytesIO(await response.read())) as thumb:
        assert max(thumb.size) == 512 and thumb.size == (512, 288)
    jpeg = await (await upload(api, image("JPEG", (800, 800)), "sq.jpg")).json()
    response = await api.get(f"/api/files/{jpeg['id']}/preview")
    assert response.content_type == "image/jpeg"
    text = "line\n" * 2000
    doc = await (await upload(api, text.encode(), "long.txt")).json()
    preview = await api.get_json(f"/api/files/{doc['id']}/preview")
    assert preview["text"] == text[:4096] and preview["truncated"] is True
    pdf = await (await upload(api, SAMPLES["a.pdf"][0], "doc.pdf")).json()
    preview = await api.get_json(f"/api/files/{pdf['id']}/preview")
    assert preview["family"] == "pdf" and preview["size"] == len(SAMPLES["a.pdf"][0])
    audio = await (await upload(api, wav(), "s.wav")).json()
    assert (await api.get_json(f"/api/files/{audio['id']}/preview"))["family"] == "audio"


# -- changing -------------------------------------------------------------------------------------


async def test_rename_move_and_delete(api: ApiClient, settings: Settings) -> None:
    await user(api)
    first, second = [
        (await (await api.post("/api/folders", {"name": name})).json())["id"]
        for name in ("First", "Second")
    ]
    created = await (await upload(api, b"hello", "a.txt", folder_id=first)).json()
    assert created["folder_id"] == first
    path = f"/api/files/{created['id']}"
    response = await api.patch(path, {"name": "renamed.txt", "folder_id": second})
    body = await response.json()
    assert response.status == 200, body
    assert body["name"] == "renamed.txt" and body["folder_id"] == second
    moved = await api.patch(path, {"folder_id": None})
    assert (await moved.json())["folder_id"] is None
    for bad in ({"name": "renamed.html"}, {"folder_id": "../../etc"}, {"size": 1}, {"name": None}):
        response = await api.patch(path, bad)
        assert response.status == 422, bad
    assert (await api.get_json(path))["name"] == "renamed.txt"
    listed = await api.get_json("/api/files?folder_id=" + second)
    assert listed["files"] == []
    assert len(stored_objects(settings)) == 1
    assert (await api.delete(path)).status == 204
    assert (await api.get(path)).status == 404
    assert (await api.get(path + "/content")).status == 404
    assert stored_objects(settings) == []
    assert (await api.get_json("/api/files/usage"))["used"] == 0


async def test_other_users_get_404_and_change_nothing(
    api: ApiClient, make_client: Callable[[], Any], settings: Settings
) -> None:
    await user(api)
    created = await (await upload(api, b"secret", "mine.txt")).json()
    other = await user(await make_client(), "bob@example.com")
    path = f"/api/files/{created['id']}"
    assert (await other.get(path)).status == 404
    assert (await other.get(path + "/content")).status == 404
    assert (await other.get(path + "/preview")).status == 404
    assert (await other.patch(path, {"name": "stolen.txt"})).status == 404
    assert (await other.delete(path)).status == 404
    assert (await other.get_json("/api/files"))["files"] == []
    assert (await other.get_json("/api/files/usage"))["used"] == 0
    mine = await api.get_json(path)
    assert mine["name"] == "mine.txt"
    assert await (await api.get(path + "/content")).read() == b"secret"
    assert len(stored_objects(settings)) == 1


async def test_cookie_uploads_need_the_csrf_header(api: ApiClient) -> None:
    await user(api)
    # Straight through the test client: no X-CSRF-Token header, the token in a form field.
    response = await api.client.post(
        "/api/files", data=form(b"hello", "a.txt", csrf_token=api.csrf or "")
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "csrf_failed"
    assert await row_count(api) == 0
    response = await api.client.post(
        "/api/files", data=form(b"hello", "a.txt"), headers={"X-CSRF-Token": api.csrf or ""}
    )
    assert response.status == 201


async def test_anonymous_and_unverified_users_cannot_upload(api: ApiClient) -> None:
    response = await upload(api, b"hello", "a.txt")
    assert response.status == 401
    await api.register_and_login("new@example.com")
    response = await upload(api, b"hello", "a.txt")
    if api.app[SETTINGS].requires_email_verification:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "email_unverified"
    else:
        assert response.status == 201


async def test_store_bytes_keeps_generated_media_as_a_file(api: ApiClient) -> None:
    from multinotes.files.service import store_bytes

    me = await user(api)
    assert me.user is not None
    row = await store_bytes(api.app, me.user["id"], "picture.png", "image/png", image("PNG"))
    listed = await api.get_json("/api/files")
    assert [f["id"] for f in listed["files"]] == [row.id]
    assert listed["files"][0]["source"] == "generated"


async def test_malformed_upload_forms_are_refused(api: ApiClient, settings: Settings) -> None:
    await user(api)
    response = await api.post("/api/files", {"file": "not multipart"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "not_multipart"
    no_file = aiohttp.FormData(default_to_multipart=True)
    no_file.add_field("folder_id", "a" * 32)
    no_file.add_field("other", "x")
    response = await api.post("/api/files", data=no_file)
    assert response.status == 422 and "file" in (await response.json())["error"]["fields"]
    as_text = aiohttp.FormData(default_to_multipart=True)
    as_text.add_field("file", "just a text field")
    assert (await api.post("/api/files", data=as_text)).status == 422
    many = aiohttp.FormData()
    for index in range(12):
        many.add_field(f"f{index}", "x")
    many.add_field("file", b"hello", filename="a.txt")
    assert (await api.post("/api/files", data=many)).status == 422
    bad_folder = await upload(api, b"hello", "a.txt", folder_id="../x")
    assert (await bad_folder.json())["error"]["fields"] == {"folder_id": "Not a folder id."}
    empty = await upload(api, b"", "a.txt")
    assert empty.status == 422
    assert await row_count(api) == 0
    assert stored_objects(settings) == []


async def test_a_body_cut_off_before_its_closing_boundary_or_with_broken_headers_keeps_nothing(
    api: ApiClient, settings: Settings
) -> None:
    """A form whose body ends inside the file (no boundary after it) would otherwise store the
    truncated bytes as if they were the whole file."""
    await user(api)
    start = (
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nthe first half of a longer text"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=XX"}
    cut = await api.post("/api/files", data=start, headers=headers)
    assert cut.status == 400
    assert (await cut.json())["error"]["code"] == "incomplete_upload"
    broken = await api.post(
        "/api/files",
        data=b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        b"this is no header line\r\n\r\nhello\r\n--XX--\r\n",
        headers=headers,
    )
    assert broken.status == 400
    assert (await broken.json())["error"]["code"] == "bad_multipart"
    assert await row_count(api) == 0
    assert stored_objects(settings) == []
    whole = await api.post("/api/files", data=start + b"\r\n--XX--\r\n", headers=headers)
    assert whole.status == 201
    assert (await whole.json())["size"] == len(b"the first half of a longer text")


async def test_half_written_uploads_left_by_a_crash_are_removed_at_startup(
    make_settings: Callable[..., Settings],
) -> None:
    import os
    import time

    from multinotes.app import create_app
    from multinotes.testing import app_client

    settings = make_settings()
    tmp = settings.data_dir / "files" / ".tmp"
    tmp.mkdir(parents=True)
    (tmp / "old.part").write_bytes(b"half")
    (tmp / "running.part").write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    os.utime(tmp / "old.part", (two_days_ago, two_days_ago))
    async with app_client(create_app(settings)):
        assert sorted(p.name for p in tmp.iterdir()) == ["running.part"]


async def test_the_file_endpoints_are_in_the_openapi_document(api: ApiClient) -> None:
    spec = await api.get_json("/api/openapi.json")
    upload_op = spec["paths"]["/api/files"]["post"]
    form_schema = upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form_schema["properties"]["file"]["format"] == "binary"
    assert "201" in upload_op["responses"]
    for path in (
        "/api/files/{id}",
        "/api/files/{id}/content",
        "/api/files/{id}/preview",
        "/api/files/usage",
    ):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/api/files/{id}"]) >= {"get", "patch", "delete"}
