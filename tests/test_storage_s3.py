"""The S3 storage backend against a local fake speaking the S3 REST protocol (SigV4 checked)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from multinotes.settings import Settings
from multinotes.storage.s3 import S3Error, S3Storage
from multinotes.testing import ApiClient
from tests.fakes.s3_server import FakeS3

MiB = 1024 * 1024


@pytest.fixture
async def fake_s3() -> AsyncIterator[tuple[FakeS3, str]]:
    fake = FakeS3()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("/")).rstrip("/")
    await server.close()


def backend(fake: FakeS3, url: str, **kw: Any) -> S3Storage:
    values: dict[str, Any] = {
        "endpoint_url": url,
        "bucket": fake.bucket,
        "region": fake.region,
        "access_key": fake.access_key,
        "secret_key": fake.secret_key,
        "part_size": 5 * MiB,
    }
    values.update(kw)
    return S3Storage(**values)


async def pieces(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(storage: S3Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, start, end)])


async def test_small_objects_are_one_signed_put(fake_s3: tuple[FakeS3, str]) -> None:
    fake, url = fake_s3
    storage = backend(fake, url)
    try:
        assert await storage.put("u1/f1", pieces(b"hello world")) == 11
        assert fake.objects == {"u1/f1": b"hello world"}
        assert [r[0] for r in fake.requests] == ["PUT"]
        assert await read_all(storage, "u1/f1") == b"hello world"
        assert await read_all(storage, "u1/f1", 6, 11) == b"world"
        assert await read_all(storage, "u1/f1", 6) == b"world"
        assert await storage.size("u1/f1") == 11
        assert await storage.exists("u1/f1")
        assert storage.local_path("u1/f1") is None
        await storage.delete("u1/f1")
        assert not await storage.exists("u1/f1")
        assert await storage.size("u1/f1") is None
        await storage.delete("u1/f1")  # deleting twice is fine
    finally:
        await storage.close()


async def test_large_objects_stream_as_a_multipart_upload(fake_s3: tuple[FakeS3, str]) -> None:
    fake, url = fake_s3
    storage = backend(fake, url)
    data = bytes(range(256)) * (12 * MiB // 256)  # 12 MiB: parts of 5, 5 and 2 MiB
    try:
        assert await storage.put("u1/big", pieces(data)) == len(data)
        assert fake.objects["u1/big"] == data
        kinds = [(m, q.split("&")[0].split("=")[0]) for m, _, q in fake.requests]
        assert kinds == [
            ("POST", "uploads"),
            ("PUT", "partNumber"),
            ("PUT", "partNumber"),
            ("PUT", "partNumber"),
            ("POST", "uploadId"),
        ]
        assert fake.uploads == {}
        assert (
            await read_all(storage, "u1/big", 5 * MiB - 3, 5 * MiB + 3)
            == data[5 * MiB - 3 : 5 * MiB + 3]
        )
    finally:
        await storage.close()


async def test_a_failed_stream_keeps_nothing(fake_s3: tuple[FakeS3, str]) -> None:
    fake, url = fake_s3
    storage = backend(fake, url)

    async def breaks_after(n: int) -> AsyncIterator[bytes]:
        sent = 0
        while True:
            yield b"x" * MiB
            sent += MiB
            if sent >= n:
                raise ValueError("the client went away")

    try:
        with pytest.raises(ValueError):
            await storage.put("u1/broken", breaks_after(7 * MiB))
        assert fake.objects == {}
        assert fake.uploads == {}  # the multipart upload was aborted
        assert fake.requests[-1][:2] == ("DELETE", "/files/u1/broken")
        with pytest.raises(ValueError):
            await storage.put("u1/small", breaks_after(MiB))
        assert fake.objects == {}
        fake.fail_next_part = 500
        with pytest.raises(S3Error):
            await storage.put("u1/other", pieces(b"y" * 6 * MiB))
        assert fake.objects == {} and fake.uploads == {}
    finally:
        await storage.close()


async def test_requests_are_signed_and_a_wrong_secret_is_refused(
    fake_s3: tuple[FakeS3, str],
) -> None:
    fake, url = fake_s3
    wrong = backend(fake, url, secret_key="not-the-secret")
    try:
        with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
            await wrong.put("u1/x", pieces(b"data"))
        assert fake.objects == {}
    finally:
        await wrong.close()
    other_key = backend(fake, url, access_key="AKIAOTHER")
    try:
        with pytest.raises(S3Error, match="InvalidAccessKeyId"):
            await other_key.delete("u1/x")
    finally:
        await other_key.close()


# -- the files API on the S3 backend ---------------------------------------------------------


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake_s3: tuple[FakeS3, str]) -> Settings:
    fake, url = fake_s3
    return make_settings(
        storage_backend="s3",
        s3_endpoint_url=url,
        s3_bucket=fake.bucket,
        s3_region=fake.region,
        s3_access_key=fake.access_key,
        s3_secret_key=fake.secret_key,
    )


def form(data: bytes, name: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("file", data, filename=name)
    return body


async def test_files_api_on_s3(api: ApiClient, fake_s3: tuple[FakeS3, str]) -> None:
    fake, _ = fake_s3
    await api.register_and_login("ann@example.com")
    await api.mark_verified()
    data = b"%PDF-1.4\n" + b"0123456789" * 1000 + b"\n%%EOF\n"
    created = await (await api.post("/api/files", data=form(data, "doc.pdf"))).json()
    assert created["content_type"] == "application/pdf", created
    assert list(fake.objects.values()) == [data]
    path = f"/api/files/{created['id']}/content"
    whole = await api.get(path)
    assert whole.status == 200 and await whole.read() == data
    assert whole.headers["Content-Disposition"].startswith("inline")
    part = await api.get(path, headers={"Range": "bytes=10-19"})
    assert part.status == 206 and await part.read() == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert (await api.get(path, headers={"Range": f"bytes={len(data)}-"})).status == 416
    # Office documents are confirmed from the stored object's zip directory.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types>spreadsheetml.sheet.main+xml</Types>")
    sheet = await api.post("/api/files", data=form(out.getvalue(), "book.xlsx"))
    assert sheet.status == 201
    fake_zip = io.BytesIO()
    with zipfile.ZipFile(fake_zip, "w") as archive:
        archive.writestr("index.html", "<script>alert(1)</script>")
    refused = await api.post("/api/files", data=form(fake_zip.getvalue(), "book.xlsx"))
    assert refused.status == 422
    assert len(fake.objects) == 2
    assert (await api.delete(f"/api/files/{created['id']}")).status == 204
    assert len(fake.objects) == 1 and data not in fake.objects.values()


def test_readiness_names_missing_s3_settings(tmp_path: Any) -> None:
    from multinotes.readiness import production_checks

    def storage_check(**values: Any) -> Any:
        settings = Settings(data_dir=tmp_path, **values)
        return next(c for c in production_checks(settings) if c.name == "storage")

    assert storage_check().ok
    incomplete = storage_check(storage_backend="s3", s3_bucket="files")
    assert not incomplete.ok and incomplete.fatal
    assert "MULTINOTES_S3_ENDPOINT_URL" in incomplete.detail
    assert "MULTINOTES_S3_SECRET_KEY" in incomplete.detail
    complete = storage_check(
        storage_backend="s3",
        s3_bucket="files",
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_access_key="AKIA",
        s3_secret_key="s3cr3t",
    )
    assert complete.ok and "s3cr3t" not in complete.detail
