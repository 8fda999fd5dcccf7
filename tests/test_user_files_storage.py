"""Every file the app writes for a user (generated media, avatars, data exports) goes through
the storage backend under a relative key: with S3 storage nothing lands on this machine's disk,
and after the data folder moves (a restore elsewhere) everything still serves. A database and
data folder from before keys (absolute paths, files in <data dir>/media, avatars, exports) are
migrated and keep serving."""

from __future__ import annotations

import base64
import io
import shutil
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text, update

from multinotes.app import create_app
from multinotes.chat.models import MessageMedia
from multinotes.db import create_engine
from multinotes.keys import DB
from multinotes.migrations import upgrade
from multinotes.privacy.models import DataExport
from multinotes.settings import Settings
from multinotes.storage.backend import LocalStorage
from multinotes.storage.objects import adopt_legacy_files, read_bytes
from multinotes.storage.s3 import S3Storage
from multinotes.testing import ApiClient, app_client
from tests.conftest import worker_for
from tests.fakes.s3_server import FakeS3
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def fake_s3() -> AsyncIterator[tuple[FakeS3, str]]:
    fake = FakeS3()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("/")).rstrip("/")
    await server.close()


async def demo_admin(api: ApiClient) -> dict[str, Any]:
    user = await api.register_admin()
    await api.mark_verified()
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    return user


async def make_everything(api: ApiClient) -> dict[str, Any]:
    """A generated image, an avatar and a finished data export; what to fetch them by."""
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    streamed = await api.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "teal", "models": ["demo/swatch"]},
    )
    assert streamed.status == 200, await streamed.text()
    media = next(d for name, d in parse_sse(await streamed.text()) if name == "media")

    form = aiohttp.FormData()
    form.add_field("avatar", PNG, filename="me.png", content_type="image/png")
    uploaded = await api.client.post(
        "/api/me/avatar", data=form, headers={"X-CSRF-Token": api.csrf or ""}
    )
    assert uploaded.status == 200, await uploaded.text()
    avatar_url = (await uploaded.json())["avatar_url"]

    started = await api.post("/api/me/export")
    assert started.status in (201, 202), await started.text()
    export_id = (await started.json())["id"]

    async def done() -> bool:
        body = await api.get_json(f"/api/me/exports/{export_id}")
        assert body["status"] != "failed", body
        return bool(body["status"] == "done")

    await eventually(done, timeout=30)
    return {
        "conversation": conversation,
        "media": media,
        "avatar_url": avatar_url,
        "export_id": export_id,
    }


async def fetch_everything(api: ApiClient, made: dict[str, Any]) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    for name, url in [
        ("media", made["media"]["url"]),
        ("avatar", made["avatar_url"]),
        ("export", f"/api/me/exports/{made['export_id']}/download"),
    ]:
        response = await api.get(url)
        assert response.status == 200, (name, response.status, await response.text())
        got[name] = await response.read()
    assert got["media"].startswith(b"\x89PNG") and got["avatar"].startswith(b"\x89PNG")
    archive = zipfile.ZipFile(io.BytesIO(got["export"]))
    names = archive.namelist()
    assert "avatar.png" in names
    assert any(n.startswith("media/") and n.endswith(".png") for n in names)
    return got


def in_folder(settings: Settings, data_dir: Path) -> Settings:
    """The same settings with another data folder (in embedded mode the database, migrated
    already, moves in with it)."""
    data_dir.mkdir()
    if settings.is_sqlite:
        shutil.copy(settings.data_dir / "multinotes.db", data_dir / "multinotes.db")
    return settings.model_copy(update={"data_dir": data_dir})


def files_under(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and ".tmp" not in p.parts
    )


async def test_with_s3_storage_media_avatars_and_exports_live_in_the_bucket(
    make_settings, fake_s3: tuple[FakeS3, str], tmp_path: Path
):
    fake, url = fake_s3
    settings = make_settings(
        storage_backend="s3",
        s3_endpoint_url=url,
        s3_bucket=fake.bucket,
        s3_region=fake.region,
        s3_access_key=fake.access_key,
        s3_secret_key=fake.secret_key,
    )
    app = create_app(settings)
    async with app_client(app) as api, worker_for(app):
        user = await demo_admin(api)
        made = await make_everything(api)
        got = await fetch_everything(api, made)
        # A public link to the conversation serves its media from the bucket too.
        shared = await api.post(
            "/api/shares",
            {"object_type": "conversation", "object_id": made["conversation"], "public": True},
        )
        assert shared.status == 201, await shared.text()
        token = (await shared.json())["url"].rstrip("/").rsplit("/", 1)[-1]
        async with TestClient(api.client.server) as visitor:
            public = await visitor.get(f"/s/{token}/media/{made['media']['id']}")
            assert public.status == 200
            assert await public.read() == got["media"]

    uid, media = user["id"], made["media"]
    avatar_id = made["avatar_url"].removeprefix("/avatars/").removesuffix(".png")
    assert fake.objects[f"media/{uid}/{media['id']}.png"] == got["media"]
    assert fake.objects[f"avatars/{avatar_id}.png"] == got["avatar"]
    assert fake.objects[f"exports/{uid}/{made['export_id']}.zip"] == got["export"]
    # Nothing of the user's on this machine's disk: no media, avatars or archives.
    on_disk = files_under(tmp_path)
    assert not [f for f in on_disk if f.endswith((".png", ".zip"))], on_disk


async def test_after_the_data_folder_moves_everything_still_serves(make_settings, tmp_path: Path):
    first = in_folder(make_settings(), tmp_path / "before")
    app = create_app(first)
    async with app_client(app) as api, worker_for(app):
        await demo_admin(api)
        made = await make_everything(api)
        before = await fetch_everything(api, made)
    assert files_under(tmp_path / "before" / "files")  # stored under the data folder

    # Restore: the data folder, copied somewhere else; the old one is gone.
    shutil.copytree(tmp_path / "before", tmp_path / "restored")
    shutil.rmtree(tmp_path / "before")
    app = create_app(first.model_copy(update={"data_dir": tmp_path / "restored"}))
    async with app_client(app) as api, worker_for(app):
        await api.login("admin@example.com")
        after = await fetch_everything(api, made)
    assert after == before


async def test_a_data_folder_from_before_storage_keys_is_migrated_and_serves(
    make_settings, tmp_path: Path
):
    data = tmp_path / "data"
    settings = in_folder(make_settings(), data)
    app = create_app(settings)
    async with app_client(app) as api, worker_for(app):
        user = await demo_admin(api)
        made = await make_everything(api)
        before = await fetch_everything(api, made)
        await as_before_storage_keys(api, settings, user["id"])
    await rerun_storage_keys_migration(settings)

    app = create_app(settings)
    async with app_client(app) as api, worker_for(app):
        await api.login("admin@example.com")
        assert await fetch_everything(api, made) == before
        async with api.app[DB].read() as session:
            paths = list(await session.scalars(select(MessageMedia.path)))
            paths += list(await session.scalars(select(DataExport.path)))
    assert paths and all(not p.startswith("/") and str(data) not in p for p in paths), paths
    for legacy in ("media", "avatars"):
        assert not (data / legacy).exists()
    assert not files_under(data / "exports")


async def as_before_storage_keys(api: ApiClient, settings: Settings, user_id: str) -> None:
    """Put the files where the old version kept them and the absolute paths it stored."""
    data = settings.data_dir.resolve()
    store = data / "files"
    shutil.move(store / "media", data / "media")
    shutil.move(store / "avatars", data / "avatars")
    (data / "exports").mkdir(exist_ok=True)
    for archive in (store / "exports" / user_id).iterdir():
        shutil.move(archive, data / "exports" / archive.name)
    async with api.app[DB].transaction() as session:
        for row in await session.scalars(select(MessageMedia)):
            row.path = str(data / row.path)
        for export in await session.scalars(select(DataExport)):
            name = Path(export.path).name
            await session.execute(
                update(DataExport)
                .where(DataExport.id == export.id)
                .values(path=str(data / "exports" / name))
            )


async def rerun_storage_keys_migration(settings: Settings) -> None:
    engine = create_engine(settings.effective_database_url)
    try:
        async with engine.begin() as connection:
            # As before 0016: its other parent, 0009, was a head (0003 is under 0013).
            await connection.execute(
                text(
                    "UPDATE alembic_version SET version_num = '0009_privacy' "
                    "WHERE version_num = '0016_storage_keys'"
                )
            )
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_files_left_in_the_old_folders_move_into_the_storage_backend(
    backend: str, fake_s3: tuple[FakeS3, str], tmp_path: Path
):
    fake, url = fake_s3
    data = tmp_path / "data"
    old = {
        "media/u1/m1.png": PNG,
        "avatars/a1.png": PNG + b"avatar",
        "exports/e1.zip": b"PK zip",
    }
    for key, content in old.items():
        (data / key).parent.mkdir(parents=True, exist_ok=True)
        (data / key).write_bytes(content)
    (data / "exports" / ".e2.zip.part").write_bytes(b"an export being built")
    storage: Any = (
        LocalStorage(data / "files")
        if backend == "local"
        else S3Storage(
            endpoint_url=url,
            bucket=fake.bucket,
            region=fake.region,
            access_key=fake.access_key,
            secret_key=fake.secret_key,
        )
    )
    try:
        assert await adopt_legacy_files(storage, data) == 3
        for key, content in old.items():
            assert await read_bytes(storage, key) == content
            assert not (data / key).exists()
        assert (data / "exports" / ".e2.zip.part").exists()  # scratch, not a user file
        assert not (data / "media").exists() and not (data / "avatars").exists()
        assert await adopt_legacy_files(storage, data) == 0  # once moved, nothing to do
    finally:
        if backend == "s3":
            await storage.close()
