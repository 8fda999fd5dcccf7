"""Uploading without JavaScript: the files page's upload section is a plain multipart form posted
to ``POST /files/upload``. Each file in it is stored as ``POST /api/files`` stores one (same type
checks, size limit and quota); a refused file keeps nothing and does not stop the others; the page
comes back saying what was stored and what was not, and why.

A plain form cannot send the ``X-CSRF-Token`` header, so the session's token must be the form's
first part: it is checked before any file is read, and a missing, wrong or late token, or a post
from another site, is refused with 403 and stores nothing."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from multinotes.app import create_app
from multinotes.keys import SETTINGS
from multinotes.settings import Settings
from multinotes.testing import ApiClient, app_client
from tests.support.pages import Page, get_page
from tests.support.stored_files import row_count, stored_objects

KIB = 1024


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        max_upload_bytes=64 * KIB, default_storage_quota_bytes=200 * KIB, max_upload_form_files=3
    )


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (20, 120, 200)).save(out, format="PNG")
    return out.getvalue()


# A form as a browser sends it: the fields in page order, each file with its name and type.
Field = tuple[str, Any] | tuple[str, bytes, str, str]


def upload_form(*parts: Field) -> aiohttp.FormData:
    body = aiohttp.FormData()
    for part in parts:
        if len(part) == 2:
            body.add_field(part[0], part[1])
        else:
            name, data, filename, content_type = part
            body.add_field(name, data, filename=filename, content_type=content_type)
    return body


def token(api: ApiClient, value: str | None = None) -> Field:
    return ("csrf_token", api.csrf if value is None else value)


def a_file(filename: str, data: bytes, content_type: str = "text/plain") -> Field:
    return ("file", data, filename, content_type)


async def post_form(api: ApiClient, form: aiohttp.FormData | bytes, **headers: str) -> Any:
    """Post as a browser without JavaScript does: no CSRF header, the page's own Origin."""
    origin = str(api.client.make_url("")).rstrip("/")
    return await api.client.post(
        "/files/upload",
        data=form,
        headers={"Origin": origin, "Accept": "text/html", **headers},
        allow_redirects=False,
    )


async def member(api: ApiClient, email: str = "una@example.com") -> ApiClient:
    await api.register_and_login(email)
    await api.mark_verified()
    return api


async def listed(api: ApiClient) -> dict[str, bytes]:
    """The user's files as the API lists them: name → content."""
    files = (await api.get_json("/api/files"))["files"]
    return {f["name"]: await (await api.get(f"/api/files/{f['id']}/content")).read() for f in files}


def texts(page: Page, css_class: str) -> list[str]:
    """What the elements with this class say, whitespace collapsed."""
    return [e.words for e in page.with_class(css_class)]


async def landed_on(api: ApiClient, response: Any) -> Page:
    """The page the form's redirect leads to, with its one-time message."""
    assert response.status == 303, (response.status, (await response.text())[:500])
    assert response.headers["Location"] == "/files"
    return await get_page(api, "/files")


# -- the form -------------------------------------------------------------------------------------


async def test_the_files_page_checks_its_cursor_with_the_apis_query_model(api: ApiClient) -> None:
    await member(api)
    for path in ("/files?before=../x", "/api/files?before=../x"):
        response = await api.get(path)
        assert response.status == 422, path
        assert "before" in await response.text(), path
    assert (await api.get("/files?before=0123456789abcdef0123456789abcdef")).status == 200


async def test_the_upload_section_is_a_plain_form_with_its_token_first(api: ApiClient) -> None:
    await member(api)
    page = await get_page(api, "/files")
    form = page.one("form", id="upload-form").attrs
    assert form["method"] == "post"
    assert form["action"] == "/files/upload"
    assert form["enctype"] == "multipart/form-data"
    # The token is the form's first field, so the server checks it before reading any file.
    start = page.html.index('id="upload-form"')
    first_field = page.html[page.html.index("<input", start) :].split(">", 1)[0]
    assert f'name="csrf_token" value="{api.csrf}"' in first_field
    chooser = page.one("input", type="file", name="file").attrs
    assert "multiple" in chooser and chooser["id"] == "file-input"
    page.one("button", type="submit", id="upload-submit")
    assert texts(page, "upload-submit") == ["Upload"]
    assert "Uploading needs JavaScript" not in page.html


async def test_the_chosen_files_are_stored_and_listed(api: ApiClient, settings: Settings) -> None:
    await member(api)
    picture = png()
    response = await post_form(
        api,
        upload_form(
            token(api),
            a_file("notes.txt", b"first line\n"),
            a_file("dot.png", picture, "image/png"),
        ),
    )
    assert response.status == 303, await response.text()
    page = await landed_on(api, response)
    assert page.flash == "Uploaded “notes.txt” and “dot.png”."
    assert texts(page, "file-name") == ["dot.png", "notes.txt"]
    assert await listed(api) == {"notes.txt": b"first line\n", "dot.png": picture}
    kinds = {f["name"]: f["kind"] for f in (await api.get_json("/api/files"))["files"]}
    assert kinds == {"notes.txt": "text", "dot.png": "png"}
    assert len(stored_objects(settings)) == 2


async def test_a_refused_file_keeps_nothing_and_the_others_are_stored(
    api: ApiClient, settings: Settings
) -> None:
    await member(api)
    response = await post_form(
        api,
        upload_form(
            token(api),
            a_file("fake.png", b"not a picture at all", "image/png"),
            a_file("big.txt", b"x" * (65 * KIB)),
            a_file("kept.txt", b"kept"),
        ),
    )
    page = await landed_on(api, response)
    assert page.flash.startswith("Uploaded “kept.txt”. Not uploaded: “fake.png”: The content is")
    assert "which is not an allowed file type" in page.flash
    assert "Not uploaded: “big.txt”: The file is larger than the 65536 byte limit per file." in (
        page.flash
    )
    assert texts(page, "flash-error"), "a partial upload is shown as a problem"
    assert await listed(api) == {"kept.txt": b"kept"}
    # Nothing half-written is left of the refused ones (not even in files/.tmp).
    assert len(stored_objects(settings)) == 1
    assert await row_count(api) == 1


async def test_files_past_the_quota_are_refused_and_the_others_kept(
    api: ApiClient, settings: Settings
) -> None:
    await member(api)
    for name in ("one.txt", "two.txt"):
        body = aiohttp.FormData()
        body.add_field("file", b"a" * (60 * KIB), filename=name, content_type="text/plain")
        assert (await api.post("/api/files", data=body)).status == 201
    # 80 KiB of 200 left: the first file fits, the second no longer does.
    response = await post_form(
        api,
        upload_form(
            token(api), a_file("fits.txt", b"b" * (50 * KIB)), a_file("over.txt", b"c" * (40 * KIB))
        ),
    )
    page = await landed_on(api, response)
    assert page.flash == (
        "Uploaded “fits.txt”. Not uploaded: “over.txt”: This upload does not fit in your storage "
        "quota (30720 of 204800 bytes left). Delete files or upgrade your storage plan."
    )
    assert set(await listed(api)) == {"one.txt", "two.txt", "fits.txt"}
    assert (await api.get_json("/api/files/usage"))["used"] == 170 * KIB
    assert len(stored_objects(settings)) == 3


async def test_one_form_takes_a_limited_number_of_files(api: ApiClient) -> None:
    await member(api)
    assert api.app[SETTINGS].max_upload_form_files == 3
    files = [a_file(f"n{index}.txt", b"note %d" % index) for index in range(5)]
    page = await landed_on(api, await post_form(api, upload_form(token(api), *files)))
    assert page.flash == (
        "Uploaded “n0.txt”, “n1.txt” and “n2.txt”. "
        "Only 3 files are taken from one upload: choose the others again."
    )
    assert set(await listed(api)) == {"n0.txt", "n1.txt", "n2.txt"}


def raw_form(*parts: str) -> bytes:
    """A multipart body written by hand (boundary ``XX``), to break it on purpose."""
    return "".join(f"--XX\r\n{part}" for part in parts).encode()


RAW_FORM = "multipart/form-data; boundary=XX"


async def test_a_broken_form_keeps_the_files_before_the_break(
    api: ApiClient, settings: Settings
) -> None:
    await member(api)
    body = raw_form(
        f'Content-Disposition: form-data; name="csrf_token"\r\n\r\n{api.csrf}\r\n',
        'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nhello\r\n",
        "this is no part header\r\n\r\nhello\r\n--XX--\r\n",
    )
    response = await post_form(api, body, **{"Content-Type": RAW_FORM})
    page = await landed_on(api, response)
    assert page.flash == "Uploaded “a.txt”. The rest of the upload could not be read: try again."
    assert await listed(api) == {"a.txt": b"hello"}
    assert len(stored_objects(settings)) == 1


async def test_pressing_upload_with_nothing_chosen_says_so(api: ApiClient) -> None:
    await member(api)
    # A browser sends the empty file input as a part with an empty file name.
    response = await post_form(
        api, upload_form(token(api), ("file", b"", "", "application/octet-stream"))
    )
    page = await landed_on(api, response)
    assert page.flash == "No file was uploaded: choose one or more files first."
    assert texts(page, "flash-error")
    assert await row_count(api) == 0


async def test_refusals_are_grouped_by_reason_and_a_long_list_is_cut_short(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(max_upload_form_files=40)
    async with app_client(create_app(settings)) as api:
        await member(api)
        fakes = [a_file(f"fake-{i}.png", b"not a picture at all", "image/png") for i in range(6)]
        # Each of these is refused for a reason of its own (its own extension).
        misnamed = [a_file(f"picture.e{i}", png(), "image/png") for i in range(30)]
        response = await post_form(api, upload_form(token(api), *fakes, *misnamed))
        message = (await landed_on(api, response)).flash
        assert message.startswith(
            "Not uploaded: “fake-0.png”, “fake-1.png”, “fake-2.png”, “fake-3.png”, “fake-4.png” "
            "and 1 more: The content is"
        )
        first = (
            "Not uploaded: “picture.e0”: The name ends in .e0 but the content is PNG; name it .png."
        )
        assert first in message
        # The message must fit in a cookie: the reasons that do not fit are counted instead.
        named = len(re.findall(r"“picture\.e\d+”", message))
        left = re.search(r" (\d+) more files not uploaded\.$", message)
        assert left is not None, message
        assert 0 < named < 30 and named + int(left.group(1)) == 30
        assert await row_count(api) == 0


# -- who may post it ------------------------------------------------------------------------------


async def test_the_token_must_come_first_be_right_and_be_from_this_site(
    api: ApiClient, settings: Settings
) -> None:
    await member(api)
    refused = {
        "no token": upload_form(a_file("a.txt", b"hello")),
        "a wrong token": upload_form(token(api, "not-the-token"), a_file("a.txt", b"hello")),
        "an empty token": upload_form(token(api, ""), a_file("a.txt", b"hello")),
        "the token after the file": upload_form(a_file("a.txt", b"hello"), token(api)),
        "the token after another field": upload_form(
            ("next", "/files"), token(api), a_file("a.txt", b"hello")
        ),
        "the token sent as a file": upload_form(
            ("csrf_token", (api.csrf or "").encode(), "token.txt", "text/plain"),
            a_file("a.txt", b"hello"),
        ),
        "a token-sized prefix of a long field": upload_form(
            token(api, (api.csrf or "") + "x" * 4096), a_file("a.txt", b"hello")
        ),
    }
    for case, form in refused.items():
        response = await post_form(api, form)
        assert response.status == 403, case
        assert "Missing or wrong CSRF token" in await response.text(), case
    broken_first_part = raw_form(
        f"this is no part header\r\n\r\n{api.csrf}\r\n",
        'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello\r\n--XX--',
    )
    response = await post_form(api, broken_first_part, **{"Content-Type": RAW_FORM})
    assert response.status == 403
    cut_in_the_token = (
        f'--XX\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{api.csrf}'
    )
    response = await post_form(api, cut_in_the_token.encode(), **{"Content-Type": RAW_FORM})
    assert response.status == 403
    for origin in ("https://evil.example", "null"):
        response = await post_form(
            api, upload_form(token(api), a_file("a.txt", b"hello")), Origin=origin
        )
        assert response.status == 403, origin
        assert "Cross-site request refused." in await response.text(), origin
    assert await row_count(api) == 0
    assert stored_objects(settings) == []
    # The same form, as the page sends it, goes through.
    response = await post_form(api, upload_form(token(api), a_file("a.txt", b"hello")))
    assert (await landed_on(api, response)).flash == "Uploaded “a.txt”."


async def test_a_script_may_send_the_token_as_the_header_instead(api: ApiClient) -> None:
    await member(api)
    response = await post_form(
        api, upload_form(a_file("a.txt", b"hello")), **{"X-CSRF-Token": api.csrf or ""}
    )
    assert (await landed_on(api, response)).flash == "Uploaded “a.txt”."
    wrong = await post_form(
        api, upload_form(token(api), a_file("b.txt", b"hello")), **{"X-CSRF-Token": "wrong"}
    )
    assert wrong.status == 403  # a wrong header is not rescued by a right field
    assert set(await listed(api)) == {"a.txt"}


async def test_visitors_are_sent_to_log_in_and_nothing_is_stored(
    api: ApiClient, settings: Settings
) -> None:
    response = await post_form(api, upload_form(("csrf_token", "x"), a_file("a.txt", b"hello")))
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")
    assert stored_objects(settings) == []
    assert await row_count(api) == 0


async def test_unverified_accounts_upload_only_where_the_api_lets_them(api: ApiClient) -> None:
    await api.register_and_login("new@example.com")
    response = await post_form(api, upload_form(token(api), a_file("a.txt", b"hello")))
    page = await landed_on(api, response)
    if api.app[SETTINGS].requires_email_verification:
        assert page.flash.startswith("Verify your email address first")
        assert await row_count(api) == 0
    else:
        assert page.flash == "Uploaded “a.txt”."


async def test_the_form_shares_the_api_rate_limit(make_settings: Callable[..., Settings]) -> None:
    async with app_client(create_app(make_settings(rate_limit_api="3/minute"))) as api:
        await member(api)
        body = aiohttp.FormData()
        body.add_field("file", b"by script", filename="api.txt", content_type="text/plain")
        assert (await api.post("/api/files", data=body)).status == 201
        for name in ("one.txt", "two.txt"):
            response = await post_form(api, upload_form(token(api), a_file(name, b"by form")))
            assert response.status == 303, await response.text()
        response = await post_form(api, upload_form(token(api), a_file("three.txt", b"by form")))
        assert response.status == 429
        assert await row_count(api) == 3


async def test_each_file_of_a_form_counts_against_the_limit_as_an_api_upload_would(
    make_settings: Callable[..., Settings],
) -> None:
    async with app_client(create_app(make_settings(rate_limit_api="3/minute"))) as api:
        await member(api)
        form = upload_form(
            token(api), *(a_file(f"{n}.txt", f"file {n}".encode()) for n in range(1, 6))
        )
        page = await landed_on(api, await post_form(api, form))
        assert page.flash.startswith("Uploaded “1.txt”, “2.txt” and “3.txt”. You reached the")
        assert "choose the other files again in" in page.flash
        assert await row_count(api) == 3
