"""A local fake of the S3 REST API (path-style), enough for the file storage backend.

Operations: PutObject, GetObject (with a single ``Range``), HeadObject, DeleteObject,
CreateMultipartUpload (``POST ?uploads``), UploadPart (``PUT ?partNumber&uploadId``),
CompleteMultipartUpload (``POST ?uploadId``), AbortMultipartUpload (``DELETE ?uploadId``).

Every request must carry a Signature Version 4 ``Authorization`` header, ``x-amz-date`` and an
``x-amz-content-sha256`` that matches the body; the signature is recomputed with botocore (an
independent implementation) and a wrong one is answered ``403 SignatureDoesNotMatch``, as S3
does. ``fake.objects`` holds the stored objects, ``fake.uploads`` the unfinished multipart
uploads, ``fake.requests`` (method, path, query) every request in order.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/s3/"
    r"aws4_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)


def _error(status: int, code: str) -> web.Response:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{code}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


@dataclass
class FakeS3:
    access_key: str = "AKIAFAKE0000000000"
    secret_key: str = "fake-secret-key-0000000000000000000000"
    region: str = "eu-test-1"
    bucket: str = "files"
    objects: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, dict[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    #: Set to a status to fail the next UploadPart (e.g. 500).
    fail_next_part: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{bucket}/{key:.+}", self.handle)
        return app

    def _verify(self, request: web.Request, body: bytes) -> web.Response | None:
        match = AUTH.match(request.headers.get("Authorization", ""))
        amz_date = request.headers.get("x-amz-date", "")
        content_hash = request.headers.get("x-amz-content-sha256", "")
        if not match or not amz_date or not content_hash:
            return _error(403, "AccessDenied")
        if match["key"] != self.access_key:
            return _error(403, "InvalidAccessKeyId")
        if content_hash != hashlib.sha256(body).hexdigest():
            return _error(400, "XAmzContentSHA256Mismatch")
        names = match["headers"].split(";")
        if not {"host", "x-amz-date", "x-amz-content-sha256"} <= set(names):
            return _error(403, "AccessDenied")
        if self._signature(request, body, names, amz_date) != match["sig"]:
            return _error(403, "SignatureDoesNotMatch")
        return None

    def _signature(self, request: web.Request, body: bytes, names: list[str], amz_date: str) -> str:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        url = f"http://{request.host}{request.raw_path}"
        headers = {name: request.headers.get(name, "") for name in names if name != "host"}
        aws = AWSRequest(method=request.method, url=url, headers=headers, data=body)
        aws.context["timestamp"] = amz_date
        auth = S3SigV4Auth(Credentials(self.access_key, self.secret_key), "s3", self.region)
        canonical = auth.canonical_request(aws)
        return str(auth.signature(auth.string_to_sign(aws, canonical), aws))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path, request.query_string))
        refused = self._verify(request, body)
        if refused is not None:
            return refused
        if request.match_info["bucket"] != self.bucket:
            return _error(404, "NoSuchBucket")
        key = unquote(request.match_info["key"])
        query = request.query
        if request.method == "POST" and "uploads" in query:
            upload_id = secrets.token_hex(8)
            self.uploads[upload_id] = {}
            return web.Response(
                content_type="application/xml",
                text="<?xml version='1.0'?><InitiateMultipartUploadResult xmlns="
                "'http://s3.amazonaws.com/doc/2006-03-01/'><Bucket>files</Bucket>"
                f"<Key>{key}</Key><UploadId>{upload_id}</UploadId>"
                "</InitiateMultipartUploadResult>",
            )
        if "uploadId" in query:
            return self._multipart(request.method, key, query, body)
        if request.method == "PUT":
            self.objects[key] = body
            return web.Response(headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if key not in self.objects:
            return _error(404, "NoSuchKey")
        data = self.objects[key]
        if request.method == "DELETE":
            del self.objects[key]
            return web.Response(status=204)
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": str(len(data))})
        if request.method == "GET":
            wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
            if wanted:
                start = int(wanted[1])
                end = int(wanted[2]) + 1 if wanted[2] else len(data)
                return web.Response(
                    status=206,
                    body=data[start:end],
                    headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
                )
            return web.Response(body=data)
        return _error(405, "MethodNotAllowed")

    def _multipart(self, method: str, key: str, query: Any, body: bytes) -> web.Response:
        upload_id = query["uploadId"]
        if upload_id not in self.uploads:
            return _error(404, "NoSuchUpload")
        parts = self.uploads[upload_id]
        if method == "PUT":
            if self.fail_next_part:
                status, self.fail_next_part = self.fail_next_part, None
                return _error(status, "InternalError")
            parts[int(query["partNumber"])] = body
            return web.Response(headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if method == "DELETE":
            del self.uploads[upload_id]
            return web.Response(status=204)
        if method == "POST":
            numbers = [int(n) for n in re.findall(rb"<PartNumber>(\d+)</PartNumber>", body)]
            if not numbers or numbers != sorted(parts):
                return _error(400, "InvalidPart")
            if any(len(parts[n]) < 5 * 1024 * 1024 for n in numbers[:-1]):
                return _error(400, "EntityTooSmall")
            self.objects[key] = b"".join(parts[n] for n in numbers)
            del self.uploads[upload_id]
            return web.Response(
                content_type="application/xml",
                text="<?xml version='1.0'?><CompleteMultipartUploadResult><Key>"
                f"{key}</Key></CompleteMultipartUploadResult>",
            )
        return _error(405, "MethodNotAllowed")
