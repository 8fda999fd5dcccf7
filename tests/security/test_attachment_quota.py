"""Chat attachments are stored bytes like any upload: they count against the owner's storage
quota, and a prompt whose attachments do not fit is refused (413 quota_exceeded, the upload
error) before anything is kept: no message, no media on disk, no credits held. What an image or
speech model makes is kept too, so a full quota refuses such a request the same way."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from multinotes.chat.models import Message, MessageMedia
from multinotes.keys import DB
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.support import demo_user
from tests.support.sse import parse_sse

user = demo_user.user
KIB = 1024


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(default_storage_quota_bytes=300 * KIB, rate_limits_enabled=False)


def attachment(size: int, name: str = "photo.png") -> dict[str, Any]:
    data = b"\x89PNG\r\n\x1a\n" + bytes(size - 8)
    return {"media_type": "image/png", "data": base64.b64encode(data).decode(), "name": name}


def media_on_disk(settings: Settings) -> list[Path]:
    root = settings.data_dir / "files" / "media"  # the local storage backend's media keys
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def count(api: ApiClient, model: Any) -> int:
    async with api.app[DB].read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def send(api: ApiClient, conversation: str, attachments: list[dict[str, Any]]) -> Any:
    return await api.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "What is in these?", "models": ["demo/echo"], "attachments": attachments},
    )


async def test_attachments_over_the_quota_are_refused_and_nothing_is_kept(
    user: ApiClient, settings: Settings
) -> None:
    response = await user.post("/api/conversations", {})
    conversation = (await response.json())["id"]
    balance = (await user.get_json("/api/wallet"))["balance"]

    response = await send(user, conversation, [attachment(200 * KIB, f"{i}.png") for i in (1, 2)])
    body = await response.json()
    assert response.status == 413, body
    assert body["error"]["code"] == "quota_exceeded"
    assert body["error"]["fields"] == {"attachments": "exceeds the storage quota"}
    assert await count(user, Message) == 0
    assert await count(user, MessageMedia) == 0
    assert media_on_disk(settings) == []
    assert (await user.get_json("/api/wallet"))["balance"] == balance


async def test_attachments_use_up_the_room_that_uploads_share(
    user: ApiClient, settings: Settings
) -> None:
    response = await user.post("/api/conversations", {})
    conversation = (await response.json())["id"]
    response = await send(user, conversation, [attachment(200 * KIB)])
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    assert [name for name, _ in events][-2:] == ["done", "end"], events
    usage = await user.get_json("/api/files/usage")
    assert usage["used"] == 200 * KIB
    # 100 KiB left: the next 200 KiB of attachments do not fit, and neither does an upload.
    refused = await send(user, conversation, [attachment(200 * KIB)])
    assert refused.status == 413
    assert len(media_on_disk(settings)) == 1
    form = aiohttp.FormData()
    form.add_field("file", b"x" * (150 * KIB), filename="notes.txt", content_type="text/plain")
    upload = await user.post("/api/files", data=form)
    assert upload.status == 413, await upload.text()
    assert (await upload.json())["error"]["code"] == "quota_exceeded"


async def test_a_full_quota_refuses_an_image_model_before_anything_is_held_or_kept(
    user: ApiClient, settings: Settings
) -> None:
    form = aiohttp.FormData()
    form.add_field("file", b"x" * (300 * KIB), filename="full.txt", content_type="text/plain")
    upload = await user.post("/api/files", data=form)
    assert upload.status == 201, await upload.text()
    response = await user.post("/api/conversations", {})
    conversation = (await response.json())["id"]
    wallet = await user.get_json("/api/wallet")

    response = await user.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "a teal swatch", "models": ["demo/swatch"]},
    )
    body = await response.json()
    assert response.status == 413, body
    assert body["error"]["code"] == "quota_exceeded"
    assert body["error"]["fields"] == {"models": "the storage quota is full"}
    assert await count(user, Message) == 0
    assert await count(user, MessageMedia) == 0
    assert media_on_disk(settings) == []
    assert await user.get_json("/api/wallet") == wallet

    # A text answer keeps no bytes: a full quota does not stop it.
    answered = await send(user, conversation, [])
    assert answered.status == 200, await answered.text()
    assert [name for name, _ in parse_sse(await answered.text())][-2:] == ["done", "end"]


async def test_the_generation_endpoints_document_the_quota_refusal(user: ApiClient) -> None:
    paths = (await user.get_json("/api/openapi.json"))["paths"]
    for path in (
        "/api/conversations/{id}/messages",
        "/api/messages",
        "/api/messages/{id}/regenerate",
        "/api/documents/{id}/rerun",
    ):
        assert "413" in paths[path]["post"]["responses"], path
