"""Reading files from multipart/form-data bodies, for the JSON API and the page forms alike:
one small field, a file streamed in chunks, or one whole (small) upload such as an avatar."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import FileField

from multinotes.errors import BadRequest, Invalid, PayloadTooLarge
from multinotes.http.endpoint import check_upload
from multinotes.keys import SETTINGS

CHUNK = 256 * 1024
#: Small form fields that may come before the file part.
MAX_FIELD = 1024
MAX_FIELDS = 10


async def read_upload(request: web.Request, field: str = "avatar") -> bytes:
    """The bytes of one file field of a multipart/form-data body (the API's and the page's)."""
    limit = request.app[SETTINGS].avatar_max_bytes
    too_large = PayloadTooLarge(
        f"The avatar is larger than {limit // 1024} KiB.", code="avatar_too_large"
    )
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise too_large  # before reading a byte of it
    check_upload(request, field)
    try:
        form = await request.post()  # cached: the CSRF check of a page form may have read it
    except (ValueError, HttpProcessingError):  # broken framing or part headers, a cut-off body
        raise BadRequest(
            "The form data is malformed.",
            code="bad_multipart",
            fields={field: "The multipart body could not be read."},
        ) from None
    item = form.get(field)
    if not isinstance(item, FileField):
        raise Invalid("Choose an image file.", fields={field: "Choose an image file."})
    data: bytes = await asyncio.to_thread(item.file.read, limit + 1)
    if len(data) > limit:
        raise too_large
    return data


async def read_field(part: BodyPartReader, name: str) -> str:
    """A small text field of an upload form (at most MAX_FIELD bytes of UTF-8)."""
    data = await part.read_chunk(MAX_FIELD + 1)
    if len(data) > MAX_FIELD or await part.read_chunk(1):
        raise Invalid(fields={name: f"At most {MAX_FIELD} bytes."})
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Invalid(fields={name: "Not UTF-8 text."}) from None


def cut_off() -> BadRequest:
    return BadRequest(
        "The upload ended before the file did (the form's closing boundary never came); "
        "nothing was kept.",
        code="incomplete_upload",
    )


async def part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """A file part's bytes as they arrive, for ``service.ingest``. A body that ends without
    the boundary after the file raises (and ``ingest`` keeps nothing): aiohttp hands over what
    came, then an empty chunk, as if the file had ended there."""
    while True:
        try:
            chunk = await part.read_chunk(CHUNK)
        except ValueError:  # aiohttp: read past the body's end, or framing it cannot follow
            raise cut_off() from None
        if not chunk:
            if not part.at_eof():
                raise cut_off()
            return
        yield chunk


async def next_part(reader: MultipartReader) -> BodyPartReader | MultipartReader | None:
    """The form's next part; broken framing or part headers are the client's 400, not ours."""
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError):
        raise BadRequest("The form data is malformed.", code="bad_multipart") from None
