"""Profile: name and timezone through PATCH /api/me (nothing else, and no language setting);
avatars judged by their magic bytes, size-limited, re-encoded and served under an unguessable
id; email change only through the link mailed to the new address, with the old address told."""

from __future__ import annotations

import io
from typing import Any

from aiohttp import FormData
from PIL import Image, PngImagePlugin
from sqlalchemy import select

from multinotes.keys import DB, SETTINGS
from multinotes.models import User
from multinotes.testing import DEFAULT_PASSWORD, ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, text_of, token_in

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


def image_bytes(fmt: str, size: tuple[int, int] = (640, 480), **save: Any) -> bytes:
    image = Image.new("RGB", size, (200, 30, 90))
    for x in range(0, size[0], 7):
        image.putpixel((x, x % size[1]), (x % 255, 255 - x % 255, 7))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


async def upload(api: ApiClient, data: bytes, filename: str, content_type: str) -> Any:
    form = FormData()
    form.add_field("avatar", data, filename=filename, content_type=content_type)
    return await api.post("/api/me/avatar", data=form)


async def logged_in(api: ApiClient, email: str = "pat@example.com") -> ApiClient:
    await api.register_and_login(email, name="Pat")
    return api


# -- name, timezone ----------------------------------------------------------------------------


async def test_me_shows_the_profile_with_defaults(api: ApiClient):
    await logged_in(api)
    me = await api.get_json("/api/me")
    assert me["name"] == "Pat" and me["email"] == "pat@example.com"
    assert me["timezone"] == "UTC" and me["avatar_url"] is None
    assert "language" not in me  # the interface is English only: no setting that does nothing
    assert me["role"] == "admin" and me["email_verified"] is False and me["created_at"]


async def test_patch_changes_name_and_timezone(api: ApiClient):
    await logged_in(api)
    response = await api.patch("/api/me", {"name": "  Pat Doe ", "timezone": "Europe/Berlin"})
    body = await response.json()
    assert response.status == 200, body
    assert (body["name"], body["timezone"]) == ("Pat Doe", "Europe/Berlin")
    assert await api.get_json("/api/me") == body
    only = await (await api.patch("/api/me", {"timezone": "Asia/Tokyo"})).json()
    assert (only["name"], only["timezone"]) == ("Pat Doe", "Asia/Tokyo")
    reset = await (await api.patch("/api/me", {"timezone": None})).json()
    assert reset["timezone"] == "UTC"


async def test_there_is_no_language_setting_that_would_change_nothing(api: ApiClient):
    """The interface is English only: a language is refused with 422 naming the field, not
    stored and ignored."""
    await logged_in(api)
    response = await api.patch("/api/me", {"language": "de"})
    answer = await response.json()
    assert response.status == 422, answer
    assert "language" in answer["error"]["fields"], answer
    assert "language" not in await api.get_json("/api/me")
    async with api.app[DB].read() as session:
        row = await session.scalar(select(User).where(User.email == "pat@example.com"))
    assert row is not None and row.language is None


async def test_patch_validates_timezone_and_name(api: ApiClient):
    await logged_in(api)
    for body, field in [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 201}, "name"),
    ]:
        response = await api.patch("/api/me", body)
        answer = await response.json()
        assert response.status == 422, (body, answer)
        assert field in answer["error"]["fields"], (body, answer)
    assert (await api.get_json("/api/me"))["timezone"] == "UTC"


async def test_role_balance_owner_and_email_fields_are_rejected(api: ApiClient, make_client):
    await api.register_admin()
    user = await make_client()
    await user.register_and_login("mallory@example.com", name="Mallory")
    for body in (
        {"role": "admin"},
        {"balance": 10**9},
        {"credits": 5},
        {"owner_id": api.user["id"]},
        {"email": "admin2@example.com"},
        {"email_verified": True},
        {"is_active": True},
        {"rate_limit_tier": "exempt"},
        {"name": "Still Mallory", "role": "admin"},
    ):
        response = await user.patch("/api/me", body)
        assert response.status == 422, body
        fields = (await response.json())["error"]["fields"]
        assert set(fields) & set(body) - {"name"}, fields
    me = await user.get_json("/api/me")
    assert me["role"] == "user" and me["name"] == "Mallory"
    assert me["email"] == "mallory@example.com"
    async with api.app[DB].read() as session:
        row = await session.scalar(select(User).where(User.email == "mallory@example.com"))
    assert row is not None and row.rate_limit_tier == "default" and row.is_active


async def test_profile_form_on_the_account_page(api: ApiClient):
    await logged_in(api)
    page = await (await api.get("/account")).text()
    assert 'id="profile-form"' in page and 'value="Europe/Berlin"' in page
    saved = await api.client.post(
        "/account/profile",
        data={
            "name": "Pat Form",
            "timezone": "Asia/Tokyo",
            "language": "ja",  # no longer on the form (English only): ignored
            "csrf_token": api.csrf,
        },
        allow_redirects=False,
    )
    assert saved.status == 303 and saved.headers["Location"] == "/account#profile"
    me = await api.get_json("/api/me")
    assert (me["name"], me["timezone"]) == ("Pat Form", "Asia/Tokyo") and "language" not in me
    assert 'name="language"' not in await (await api.get("/account")).text()
    refused = await api.client.post(
        "/account/profile",
        data={"name": "Pat", "timezone": "Nowhere/Land", "language": "ja", "csrf_token": api.csrf},
    )
    html = await refused.text()
    assert refused.status == 422 and 'id="profile-timezone-error"' in html
    assert (await api.get_json("/api/me"))["timezone"] == "Asia/Tokyo"


# -- avatar -------------------------------------------------------------------------------------


async def test_a_png_avatar_is_re_encoded_and_served_under_a_random_id(api: ApiClient, make_client):
    await logged_in(api)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret-metadata-from-the-camera")
    original = image_bytes("PNG", pnginfo=info) + b"<?php system($_GET['c']); ?>"
    response = await upload(api, original, "me.png", "image/png")
    body = await response.json()
    assert response.status == 200, body
    url = body["avatar_url"]
    assert url.startswith("/avatars/") and url.endswith(".png")
    assert api.user["id"] not in url and len(url.split("/")[-1]) == 36
    assert (await api.get_json("/api/me"))["avatar_url"] == url

    other = await make_client()
    await other.register_and_login("viewer@example.com")
    served = await other.get(url)  # owner-independent: any logged-in user may see it
    data = await served.read()
    assert served.status == 200
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert data != original
    assert b"secret-metadata" not in data and b"<?php" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size == (256, 256)
        assert not {k for k in image.info if k not in ("dpi",)} - {"transparency"}
    anonymous = await make_client()
    assert (await anonymous.get(url)).status == 401
    path = api.app[SETTINGS].data_dir / "files" / "avatars" / url.split("/")[-1]
    assert path.read_bytes() == data


async def test_jpeg_webp_and_gif_avatars_are_accepted(api: ApiClient):
    await logged_in(api)
    for fmt, mime in (("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")):
        response = await upload(api, image_bytes(fmt, (300, 900)), f"a.{fmt.lower()}", mime)
        body = await response.json()
        assert response.status == 200, (fmt, body)
        served = await api.get(body["avatar_url"])
        with Image.open(io.BytesIO(await served.read())) as image:
            assert image.size == (256, 256)


async def test_files_that_are_not_allowed_images_are_refused_by_content(api: ApiClient):
    await logged_in(api)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    cases = {
        "php": b"<?php echo shell_exec($_GET['cmd']); ?>",
        "html": b"<!doctype html><html><script>alert(document.cookie)</script></html>",
        "svg": svg,
        "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "empty": b"",
    }
    for name, data in cases.items():
        response = await upload(api, data, "avatar.png", "image/png")  # lies about its type
        body = await response.json()
        assert response.status == 422, (name, body)
        assert body["error"]["code"] == "unsupported_image", (name, body)
        assert "avatar" in body["error"]["fields"]
    # Right magic bytes, but not an image behind them: Pillow cannot decode it.
    polyglot = b"GIF89a" + b"<html><script>alert(1)</script></html>" * 10
    response = await upload(api, polyglot, "avatar.gif", "image/gif")
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "unreadable_image"
    assert (await api.get_json("/api/me"))["avatar_url"] is None


async def test_too_large_avatars_are_refused(api: ApiClient):
    await logged_in(api)
    limit = api.app[SETTINGS].avatar_max_bytes
    big = image_bytes("PNG", (16, 16))
    big += b"\0" * (limit + 1 - len(big))
    response = await upload(api, big, "big.png", "image/png")
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "avatar_too_large"
    not_multipart = await api.post("/api/me/avatar", {"avatar": "x"})
    assert not_multipart.status == 400
    assert (await api.get_json("/api/me"))["avatar_url"] is None


async def test_replacing_and_removing_the_avatar_deletes_the_old_file(api: ApiClient):
    await logged_in(api)
    first = (await (await upload(api, image_bytes("PNG"), "a.png", "image/png")).json())[
        "avatar_url"
    ]
    second = (await (await upload(api, image_bytes("JPEG"), "b.jpg", "image/jpeg")).json())[
        "avatar_url"
    ]
    assert first != second
    assert (await api.get(first)).status == 404
    assert (await api.get(second)).status == 200
    assert (await api.delete("/api/me/avatar")).status == 204
    assert (await api.get(second)).status == 404
    assert (await api.get_json("/api/me"))["avatar_url"] is None
    assert (await api.delete("/api/me/avatar")).status == 204  # nothing left: still fine


async def test_avatar_upload_from_the_account_page(api: ApiClient):
    await logged_in(api)
    form = FormData()
    form.add_field("csrf_token", api.csrf)
    form.add_field("avatar", image_bytes("PNG"), filename="me.png", content_type="image/png")
    response = await api.client.post("/account/avatar", data=form, allow_redirects=False)
    assert response.status == 303
    url = (await api.get_json("/api/me"))["avatar_url"]
    assert url and url in await (await api.get("/account")).text()
    bad = FormData()
    bad.add_field("csrf_token", api.csrf)
    bad.add_field("avatar", b"<svg xmlns='http://www.w3.org/2000/svg'/>", filename="x.png")
    refused = await api.client.post("/account/avatar", data=bad)
    assert refused.status == 422 and 'id="avatar-error"' in await refused.text()
    no_token = FormData()
    no_token.add_field("avatar", image_bytes("PNG"), filename="me.png", content_type="image/png")
    assert (await api.client.post("/account/avatar", data=no_token)).status == 403


# -- email change -------------------------------------------------------------------------------


async def test_the_email_changes_only_through_the_link_mailed_to_the_new_address(
    api: ApiClient, mailbox: Mailbox, make_client
):
    await logged_in(api, "old@example.com")
    await api.register("taken@example.com")
    wrong = await api.post("/api/me/email", {"new_email": "new@example.com", "password": "nope"})
    assert wrong.status == 422 and "password" in (await wrong.json())["error"]["fields"]
    taken = await api.post(
        "/api/me/email", {"new_email": "Taken@Example.com", "password": DEFAULT_PASSWORD}
    )
    assert taken.status == 422 and (await taken.json())["error"]["code"] == "email_taken"
    same = await api.post(
        "/api/me/email", {"new_email": "old@example.com", "password": DEFAULT_PASSWORD}
    )
    assert same.status == 422
    extra = await api.post(
        "/api/me/email",
        {"new_email": "new@example.com", "password": DEFAULT_PASSWORD, "role": "admin"},
    )
    assert extra.status == 422

    asked = await api.post(
        "/api/me/email", {"new_email": "New@Example.com", "password": DEFAULT_PASSWORD}
    )
    assert asked.status == 202
    assert "new@example.com" in (await asked.json())["message"]
    link_mail = await mailbox.wait_for("new@example.com", subject="Confirm your new email")
    notice = await mailbox.wait_for("old@example.com", subject="change of your")
    assert "new@example.com" in text_of(notice)
    assert (await api.get_json("/api/me"))["email"] == "old@example.com"  # not yet

    token = token_in(link_mail, "/account/email/confirm")
    page = await (await make_client()).get(f"/account/email/confirm?token={token}")
    assert page.status == 200 and "Confirm my new address" in await page.text()
    assert (await api.get_json("/api/me"))["email"] == "old@example.com"  # a GET changes nothing

    confirmed = await api.post("/api/me/email/confirm", {"token": token})
    body = await confirmed.json()
    assert confirmed.status == 200, body
    assert body["email"] == "new@example.com" and body["email_verified"] is True
    done = await mailbox.wait_for("old@example.com", subject="was changed")
    assert "new@example.com" in text_of(done)
    again = await api.post("/api/me/email/confirm", {"token": token})
    assert again.status == 422

    fresh = await make_client()
    await fresh.login("new@example.com")
    old = await fresh.post(
        "/api/auth/login", {"email": "old@example.com", "password": DEFAULT_PASSWORD}
    )
    assert old.status == 401
    events = [e["action"] for e in (await fresh.get_json("/api/me/security-events"))["events"]]
    assert {"profile.email_change_requested", "profile.email_changed"} <= set(events)


async def test_the_email_change_page_flow(api: ApiClient, mailbox: Mailbox, make_client):
    await logged_in(api, "page@example.com")
    sent = await api.client.post(
        "/account/email",
        data={
            "new_email": "paged@example.com",
            "password": DEFAULT_PASSWORD,
            "csrf_token": api.csrf,
        },
        allow_redirects=False,
    )
    assert sent.status == 303
    refused = await api.client.post(
        "/account/email",
        data={"new_email": "other@example.com", "password": "wrong", "csrf_token": api.csrf},
    )
    assert refused.status == 422 and 'id="email-password-error"' in await refused.text()
    token = token_in(await mailbox.wait_for("paged@example.com"), "/account/email/confirm")
    stranger = await make_client()  # the link works in a browser that is not logged in
    done = await stranger.client.post("/account/email/confirm", data={"token": token})
    assert done.status == 200 and "paged@example.com" in await done.text()
    assert (await api.get_json("/api/me"))["email"] == "paged@example.com"
    reused = await stranger.client.post("/account/email/confirm", data={"token": token})
    assert reused.status == 400


async def test_a_link_for_an_address_taken_meanwhile_does_not_apply(
    api: ApiClient, mailbox: Mailbox, make_client
):
    await logged_in(api, "first@example.com")
    asked = await api.post(
        "/api/me/email", {"new_email": "race@example.com", "password": DEFAULT_PASSWORD}
    )
    assert asked.status == 202
    token = token_in(await mailbox.wait_for("race@example.com"), "/account/email/confirm")
    other = await make_client()
    await other.register("race@example.com")
    response = await api.post("/api/me/email/confirm", {"token": token})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "email_taken"
    assert (await api.get_json("/api/me"))["email"] == "first@example.com"
