"""Storage in any S3-compatible store (AWS S3, MinIO, Ceph, R2, ...), over aiohttp with
Signature Version 4; path-style addressing, so any endpoint URL works.

Uploads stream: the first part is buffered (at most ``part_size`` bytes); a smaller object is
one PutObject, a larger one a multipart upload (aborted if the stream fails), so an object
becomes visible only when it is complete.
"""

from __future__ import annotations

import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aiohttp
from yarl import URL

from multinotes import outgoing
from multinotes.errors import ConfigError
from multinotes.settings import Settings

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: S3 needs at least 5 MiB for every part but the last.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
READ_CHUNK = 256 * 1024


class S3Error(Exception):
    """The store refused or failed a request (status and S3 error code in the message)."""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    url: URL,
    headers: dict[str, str],
    payload_hash: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    now: datetime | None = None,
    service: str = "s3",
) -> dict[str, str]:
    """Headers for ``url`` with an AWS Signature Version 4 ``Authorization`` added."""
    now = now or datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    signed = {k.lower(): v.strip() for k, v in headers.items()}
    signed["host"] = url.raw_authority
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_hash
    names = sorted(signed)
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(url.query.items())
    )
    canonical = "\n".join(
        [
            method,
            url.raw_path or "/",
            query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), service), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = dict(headers)
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


def _xml_text(body: bytes, tag: str) -> str | None:
    try:
        root = ET.fromstring(body)  # noqa: S314 - the configured store's own answer
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == tag:
            return element.text
    return None


class S3Storage:
    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        region: str,
        access_key: str,
        secret_key: str,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        self.endpoint = URL(endpoint_url.rstrip("/"))
        self.bucket = bucket
        self.region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self.part_size = part_size
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        missing = [
            name
            for name in ("s3_endpoint_url", "s3_bucket", "s3_access_key", "s3_secret_key")
            if not getattr(settings, name)
        ]
        if missing:
            raise ConfigError("storage_backend is s3 but these are unset: " + ", ".join(missing))
        assert settings.s3_secret_key is not None
        return cls(
            endpoint_url=str(settings.s3_endpoint_url),
            bucket=str(settings.s3_bucket),
            region=settings.s3_region,
            access_key=str(settings.s3_access_key),
            secret_key=settings.s3_secret_key.get_secret_value(),
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=outgoing.connector(),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _url(self, key: str, query: Mapping[str, str] | None = None) -> URL:
        path = f"{self.endpoint.raw_path.rstrip('/')}/{quote(self.bucket)}/{quote(key, safe='/')}"
        url = self.endpoint.with_path(path, encoded=True)
        return url.with_query(query) if query else url

    async def _request(
        self,
        method: str,
        key: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Mapping[str, str], bytes]:
        url = self._url(key, query)
        signed = sign(
            method,
            url,
            headers or {},
            hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
        )
        async with self.session.request(
            method, url, data=body or None, headers=signed, **outgoing.AIOHTTP_REQUEST_ARGS
        ) as resp:
            data = await resp.read()
            if resp.status not in ok:
                code = _xml_text(data, "Code") or ""
                raise S3Error(f"S3 {method} answered {resp.status} {code}".strip())
            return resp.status, resp.headers, data

    # -- the Storage interface --------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[tuple[int, str]] = []
        total = 0
        try:
            async for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = await self._create_multipart(key)
                    part = bytes(buffer[: self.part_size])
                    del buffer[: self.part_size]
                    parts.append(await self._upload_part(key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                await self._request("PUT", key, body=bytes(buffer))
                return total
            if buffer or not parts:
                parts.append(await self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
            await self._complete(key, upload_id, parts)
        except BaseException:
            if upload_id is not None:
                try:
                    await self._request(
                        "DELETE", key, query={"uploadId": upload_id}, ok=(200, 204, 404)
                    )
                except Exception:  # noqa: S110 - the store expires abandoned uploads anyway
                    pass
            raise
        return total

    async def _create_multipart(self, key: str) -> str:
        _, _, body = await self._request("POST", key, query={"uploads": ""})
        upload_id = _xml_text(body, "UploadId")
        if not upload_id:
            raise S3Error("S3 CreateMultipartUpload answered without an UploadId")
        return upload_id

    async def _upload_part(
        self, key: str, upload_id: str, number: int, data: bytes
    ) -> tuple[int, str]:
        _, headers, _ = await self._request(
            "PUT", key, query={"partNumber": str(number), "uploadId": upload_id}, body=data
        )
        return number, headers.get("ETag", "")

    async def _complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        xml = (
            "<CompleteMultipartUpload>"
            + "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts
            )
            + "</CompleteMultipartUpload>"
        )
        _, _, body = await self._request(
            "POST", key, query={"uploadId": upload_id}, body=xml.encode()
        )
        if b"<Error>" in body:  # S3 may report a failed completion inside a 200
            raise S3Error(f"S3 CompleteMultipartUpload failed: {_xml_text(body, 'Code')}")

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        headers: dict[str, str] = {}
        if start or end is not None:
            if end is not None and end <= start:
                return
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        url = self._url(key)
        signed = sign(
            "GET",
            url,
            headers,
            EMPTY_SHA256,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
        )
        async with self.session.get(url, headers=signed, **outgoing.AIOHTTP_REQUEST_ARGS) as resp:
            if resp.status not in (200, 206):
                raise S3Error(f"S3 GET answered {resp.status}")
            async for chunk in resp.content.iter_chunked(READ_CHUNK):
                yield chunk

    def local_path(self, key: str) -> Path | None:
        return None

    async def delete(self, key: str) -> None:
        await self._request("DELETE", key, ok=(200, 204, 404))

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def size(self, key: str) -> int | None:
        status, headers, _ = await self._request("HEAD", key, ok=(200, 404))
        if status == 404:
            return None
        return int(headers.get("Content-Length", "0"))
