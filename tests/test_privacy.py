"""Privacy: downloading all your data, deleting your account (grace period, cancel link, hard
delete with anonymised ledger and audit log), and the legal pages admins edit."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import JSON, String, Text, cast, func, or_, select, update

from multinotes import audit
from multinotes.db import Base, utcnow
from multinotes.keys import DB, SETTINGS
from multinotes.models import User
from multinotes.models_registry import import_all_models
from multinotes.privacy import deletion, exports
from multinotes.privacy.models import AccountDeletion, DataExport
from multinotes.storage import FILE_STORAGE
from multinotes.testing import DEFAULT_PASSWORD, ApiClient
from multinotes.wallet.models import LedgerEntry, Wallet
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, token_in
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

EXPORT_SUBJECT = "data is ready"
DELETION_SUBJECT = "will be deleted"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
async def admin_ready(admin: ApiClient) -> ApiClient:
    # The demo provider (its image model makes media) starts disabled in production mode.
    assert (await admin.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    return admin


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def generate(client: ApiClient, models: list[str], content: str = "teal") -> str:
    conversation = (await (await client.post("/api/conversations", {})).json())["id"]
    response = await client.post(
        f"/api/conversations/{conversation}/messages", {"content": content, "models": models}
    )
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    assert any(name == "done" for name, _ in events), events
    return str(conversation)


async def upload_avatar(client: ApiClient) -> Any:
    form = aiohttp.FormData()
    form.add_field("avatar", PNG, filename="me.png", content_type="image/png")
    return await client.client.post(
        "/api/me/avatar", data=form, headers={"X-CSRF-Token": client.csrf or ""}
    )


async def upload_file(client: ApiClient, data: bytes, name: str = "notes.txt") -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="text/plain")
    response = await client.post("/api/files", data=form)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def folder_chain(client: ApiClient, depth: int) -> list[str]:
    """Nested folders, ``depth`` deep; returns their ids from the top."""
    ids: list[str] = []
    for level in range(depth):
        body = {"name": f"level {level}", "parent_id": ids[-1] if ids else None}
        response = await client.post("/api/folders", body)
        assert response.status == 201, await response.text()
        ids.append((await response.json())["id"])
    return ids


async def finished_export(client: ApiClient, export_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal body
        body = await client.get_json(f"/api/me/exports/{export_id}")
        assert body["status"] != "failed", body
        return bool(body["status"] == "done")

    await eventually(done, timeout=20)
    return body


async def download(client: ApiClient, url: str) -> zipfile.ZipFile:
    response = await client.get(url)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return zipfile.ZipFile(io.BytesIO(await response.read()))


def read_json(archive: zipfile.ZipFile, name: str) -> Any:
    return json.loads(archive.read(name))


# -- data export --------------------------------------------------------------------------------


async def test_the_export_holds_everything_the_user_owns_and_no_secret(
    admin_ready: ApiClient, make_client: Any, mailbox: Mailbox
):
    ann = await person(make_client, "ann@example.com")
    conversation = await generate(ann, ["demo/swatch", "demo/echo"])
    created = await (await ann.post("/api/keys", {"name": "laptop"})).json()
    upload = await upload_avatar(ann)
    assert upload.status == 200, await upload.text()
    tree = await ann.get_json(f"/api/conversations/{conversation}")
    answer = next(m for m in tree["messages"] if m["model"] == "demo/echo")
    assert (await ann.post(f"/api/messages/{answer['id']}/rating", {"stars": 4})).status == 200
    folders = await folder_chain(ann, 2)
    saved = await ann.post(f"/api/messages/{answer['id']}/save", {"folder_id": folders[-1]})
    assert saved.status in (200, 201), await saved.text()
    note = (await saved.json())["document_id"]
    stored = await upload_file(ann, b"Ann's own words\n", "words.txt")

    started = await ann.post("/api/me/export")
    assert started.status == 202
    export = await started.json()
    assert export["status"] in ("pending", "running", "done") and export["download_url"] is None
    done = await finished_export(ann, export["id"])
    assert done["progress"] == 100 and done["size"] > 0 and done["expires_at"]
    archive = await download(ann, done["download_url"])
    names = set(archive.namelist())

    assert {"README.txt", "profile.json", "sessions.json", "api_keys.json", "ledger.json"} <= names
    profile = read_json(archive, "profile.json")
    assert profile["email"] == "ann@example.com" and "password_hash" not in profile
    assert profile["avatar"] == "avatar.png" and archive.read("avatar.png").startswith(b"\x89PNG")
    keys = read_json(archive, "api_keys.json")
    assert [k["name"] for k in keys] == ["laptop"] and "key_hash" not in keys[0]
    sessions = read_json(archive, "sessions.json")
    assert sessions and not {"token_hash", "csrf_token"} & set(sessions[0])
    ledger = read_json(archive, "ledger.json")
    assert {e["kind"] for e in ledger} >= {"trial", "usage"}
    assert [r["stars"] for r in read_json(archive, "ratings.json")] == [4]
    assert any(e["action"] == "auth.login" for e in read_json(archive, "security_events.json"))

    document = read_json(archive, f"conversations/{conversation}.json")
    assert document["id"] == conversation
    by_model = {m["model_id"]: m for m in document["messages"] if m["role"] == "assistant"}
    assert by_model["demo/echo"]["generation"]["status"] == "complete"
    assert by_model["demo/echo"]["rating"]["stars"] == 4
    media = by_model["demo/swatch"]["media"]
    assert len(media) == 1 and "path" not in media[0]
    assert archive.read(media[0]["file"]).startswith(b"\x89PNG")

    assert [f["name"] for f in read_json(archive, "folders.json")] == ["level 0", "level 1"]
    notes = read_json(archive, "notes.json")
    assert [n["id"] for n in notes] == [note] and notes[0]["folder_id"] == folders[-1]
    assert [v["document_id"] for v in read_json(archive, "note_versions.json")] == [note]
    files = {f["id"]: f for f in read_json(archive, "files.json")}
    # Her upload, and the image she generated (generated media also land in her files).
    assert stored["id"] in files and len(files) == 2
    assert all("storage_key" not in f for f in files.values())
    assert archive.read(f"files/{stored['id']}/words.txt") == b"Ann's own words\n"

    everything = b"".join(archive.read(n) for n in names)
    assert created["key"].encode() not in everything
    assert ann.csrf is not None and ann.csrf.encode() not in everything
    assert b"$argon2" not in everything  # no password hash anywhere

    mail = await mailbox.wait_for("ann@example.com", subject=EXPORT_SUBJECT)
    assert "/account/privacy" in mail_fixtures.text_of(mail)


async def test_a_second_request_while_one_runs_returns_the_running_export(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    await api.register_and_login("bo@example.com")
    release = asyncio.Event()
    original = exports.write_export

    async def slow_export(*args: Any, **kwargs: Any) -> None:
        await release.wait()
        await original(*args, **kwargs)

    monkeypatch.setattr(exports, "write_export", slow_export)
    first = await (await api.post("/api/me/export")).json()
    again = await (await api.post("/api/me/export")).json()
    assert again["id"] == first["id"]
    await eventually(lambda: _status(api, first["id"], "running"), timeout=10)  # the worker has it
    listed = await api.get_json("/api/me/exports")
    assert [e["id"] for e in listed] == [first["id"]]
    release.set()
    await finished_export(api, first["id"])
    third = await (await api.post("/api/me/export")).json()
    assert third["id"] != first["id"]
    await finished_export(api, third["id"])


async def _status(api: ApiClient, export_id: str, status: str) -> bool:
    return bool((await api.get_json(f"/api/me/exports/{export_id}"))["status"] == status)


async def test_only_the_owner_sees_or_downloads_an_export(api: ApiClient, make_client: Any):
    await api.register_and_login("cy@example.com")
    export = await (await api.post("/api/me/export")).json()
    done = await finished_export(api, export["id"])
    other = await person(make_client, "dee@example.com")
    assert (await other.get(f"/api/me/exports/{export['id']}")).status == 404
    assert (await other.get(done["download_url"])).status == 404
    assert await other.get_json("/api/me/exports") == []
    anonymous: ApiClient = await make_client()
    assert (await anonymous.get(done["download_url"])).status == 401


async def test_expired_exports_are_purged_with_their_files(api: ApiClient):
    await api.register_and_login("eve@example.com")
    export = await (await api.post("/api/me/export")).json()
    done = await finished_export(api, export["id"])
    db = api.app[DB]
    async with db.read() as session:
        row = await session.get(DataExport, export["id"])
    assert row is not None and row.path and not row.path.startswith("/")  # a storage key
    storage = api.app[FILE_STORAGE]
    assert await storage.exists(row.path)
    async with db.transaction() as session:
        await session.execute(
            update(DataExport)
            .where(DataExport.id == export["id"])
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    assert (await api.get(done["download_url"])).status == 404  # expired: no longer served
    assert await exports.purge_data_exports(api.app) == 1
    assert not await storage.exists(row.path)
    assert (await api.get(f"/api/me/exports/{export['id']}")).status == 404


async def test_a_failed_export_says_so_and_can_be_asked_for_again(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    await api.register_and_login("fay@example.com")

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(exports, "write_export", broken)
    export = await (await api.post("/api/me/export")).json()
    await eventually(lambda: _status(api, export["id"], "failed"), timeout=10)
    assert list((api.app[SETTINGS].data_dir / "exports").glob("*.part")) == []
    monkeypatch.undo()
    again = await (await api.post("/api/me/export")).json()
    assert again["id"] != export["id"]
    await finished_export(api, again["id"])


def test_every_table_a_user_owns_is_exported_or_excused():
    """A new table with rows of a user must be added to the export (TABLE_EXPORTS) or to
    NOT_EXPORTED with the reason."""
    import_all_models()
    owned = {
        table.name
        for table in Base.metadata.sorted_tables
        if "user_id" in table.c or any(fk.column.table.name == "users" for fk in table.foreign_keys)
    }
    covered = exports.exported_tables() | set(exports.NOT_EXPORTED)
    assert owned - covered == set(), "add these tables to multinotes.privacy.exports"


def test_every_table_a_plugin_keeps_of_a_user_is_in_the_plugins_export():
    """Installed plugins' tables (on their own metadata, ``register_migrations``) with rows of a
    user are exported by the plugin itself (``register_user_data``)."""
    from multinotes.plugin_host import PluginHost

    host = PluginHost()
    host.load_entrypoints()
    checked = set()
    for migrations in host.migrations():
        assert migrations.metadata is not None, migrations.plugin
        owned = {
            table.name
            for table in migrations.metadata.sorted_tables
            if "user_id" in table.c
            or any(fk.column.table.name == "users" for fk in table.foreign_keys)
        }
        covered = {t for e in host.get(migrations.plugin).user_data for t in e.tables}
        assert owned - covered == set(), f"{migrations.plugin}: add them to a UserDataExport"
        checked |= owned
    assert "webhook_endpoints" in checked


# -- account deletion ---------------------------------------------------------------------------


async def test_deleting_the_account_cuts_access_at_once_and_mails_a_cancel_link(
    admin: ApiClient, make_client: Any, mailbox: Mailbox
):
    gil = await person(make_client, "gil@example.com")
    key = (await (await gil.post("/api/keys", {"name": "script"})).json())["key"]
    keyed: ApiClient = await make_client()
    keyed.use_key(key)
    assert (await keyed.get("/api/me")).status == 200

    wrong = await gil.delete("/api/me", json={"password": "not my password at all"})
    assert wrong.status == 422
    assert (await wrong.json())["error"]["fields"]["password"]
    assert (await gil.get("/api/me")).status == 200  # nothing happened

    response = await gil.delete("/api/me", json={"password": DEFAULT_PASSWORD})
    assert response.status == 202, await response.text()
    body = await response.json()
    assert body["status"] == "pending"
    purge_after = datetime.fromisoformat(body["purge_after"].replace("Z", "+00:00"))
    assert abs(purge_after - (utcnow() + timedelta(days=14))) < timedelta(minutes=1)

    assert (await gil.get("/api/me")).status == 401  # the session ended
    assert (await keyed.get("/api/me")).status == 401  # API keys stop too
    again: ApiClient = await make_client()
    login = await again.post(
        "/api/auth/login", {"email": "gil@example.com", "password": DEFAULT_PASSWORD}
    )
    assert login.status == 401

    mail = await mailbox.wait_for("gil@example.com", subject=DELETION_SUBJECT)
    assert "/account/deletion/cancel?token=" in mail_fixtures.text_of(mail)
    entries = await audit.list_entries(
        admin.app[DB], limit=10, action="privacy.account_deletion_requested"
    )
    assert [e.target_id for e in entries] == [gil.user["id"]]  # type: ignore[index]


async def test_the_mailed_link_cancels_the_deletion_once(
    admin: ApiClient, make_client: Any, mailbox: Mailbox
):
    hal = await person(make_client, "hal@example.com")
    key = (await (await hal.post("/api/keys", {"name": "script"})).json())["key"]
    assert (await hal.delete("/api/me", json={"password": DEFAULT_PASSWORD})).status == 202
    token = token_in(
        await mailbox.wait_for("hal@example.com", subject=DELETION_SUBJECT),
        "/account/deletion/cancel",
    )
    visitor: ApiClient = await make_client()
    page = await visitor.get(f"/account/deletion/cancel?token={token}")
    assert page.status == 200 and "Keep your account?" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"

    cancelled = await visitor.post("/api/me/deletion/cancel", {"token": token})
    assert cancelled.status == 200, await cancelled.text()
    assert (await visitor.post("/api/me/deletion/cancel", {"token": token})).status == 422
    await visitor.login("hal@example.com")
    assert (await visitor.get("/api/me")).status == 200
    keyed: ApiClient = await make_client()
    keyed.use_key(key)
    assert (await keyed.get("/api/me")).status == 200  # the keys work again
    async with admin.app[DB].read() as session:
        assert await session.scalar(select(func.count()).select_from(AccountDeletion)) == 0
    await deletion.purge_deleted_accounts(admin.app)
    assert (await visitor.get("/api/me")).status == 200


async def test_the_cancel_page_works_without_javascript(
    admin: ApiClient, make_client: Any, mailbox: Mailbox
):
    ida = await person(make_client, "ida@example.com")
    assert (await ida.delete("/api/me", json={"password": DEFAULT_PASSWORD})).status == 202
    token = token_in(
        await mailbox.wait_for("ida@example.com", subject=DELETION_SUBJECT),
        "/account/deletion/cancel",
    )
    visitor: ApiClient = await make_client()
    submitted = await visitor.client.post(
        "/account/deletion/cancel", data={"token": token}, allow_redirects=False
    )
    assert submitted.status == 303 and submitted.headers["Location"] == "/login"
    await visitor.login("ida@example.com")
    bad = await visitor.client.get("/account/deletion/cancel?token=nope")
    assert bad.status == 400 and "This link does not work" in await bad.text()


async def test_an_account_without_a_password_confirms_with_its_email(
    admin: ApiClient, make_client: Any
):
    jo = await person(make_client, "jo@example.com")
    key = (await (await jo.post("/api/keys", {"name": "script"})).json())["key"]
    async with jo.app[DB].transaction() as session:  # as if it signed up with Google
        await session.execute(
            update(User).where(User.id == jo.user["id"]).values(password_hash=None)  # type: ignore[index]
        )
    keyed: ApiClient = await make_client()
    keyed.use_key(key)
    wrong = await keyed.delete("/api/me", json={"confirm_email": "someone@example.com"})
    assert wrong.status == 422
    assert "confirm_email" in (await wrong.json())["error"]["fields"]
    done = await keyed.delete("/api/me", json={"confirm_email": "JO@example.com "})
    assert done.status == 202


async def test_the_only_admin_cannot_delete_their_account(admin: ApiClient):
    response = await admin.delete("/api/me", json={"password": DEFAULT_PASSWORD})
    assert response.status == 409
    assert (await admin.get("/api/me")).status == 200


async def _rows_mentioning(app: Any, value: str) -> dict[str, int]:
    """Rows of any table with ``value`` in any text column."""
    import_all_models()
    found: dict[str, int] = {}
    async with app[DB].read() as session:
        for table in Base.metadata.sorted_tables:
            columns = [
                cast(c, String) if isinstance(c.type, JSON) else c
                for c in table.c
                if isinstance(c.type, String | Text | JSON)
            ]
            if not columns:
                continue
            count = await session.scalar(
                select(func.count())
                .select_from(table)
                .where(or_(*(func.lower(c).contains(value.lower()) for c in columns)))
            )
            if count:
                found[table.name] = int(count)
    return found


async def test_after_the_grace_period_the_account_is_deleted_and_the_ledger_anonymised(
    admin_ready: ApiClient, make_client: Any, settings
):
    kim = await person(make_client, "kim@example.com")
    kim_id = kim.user["id"]  # type: ignore[index]
    await generate(kim, ["demo/swatch", "demo/echo"])
    await kim.post("/api/keys", {"name": "script"})
    upload = await upload_avatar(kim)
    assert upload.status == 200
    folders = await folder_chain(kim, 17)  # deeper than MySQL's cascade limit (15)
    conversations = await kim.get_json("/api/conversations")
    tree = await kim.get_json(f"/api/conversations/{conversations['conversations'][0]['id']}")
    answer = next(m for m in tree["messages"] if m["model"] == "demo/echo")
    saved = await kim.post(f"/api/messages/{answer['id']}/save", {"folder_id": folders[-1]})
    assert saved.status in (200, 201), await saved.text()
    await upload_file(kim, b"Kim's private words\n")
    export = await (await kim.post("/api/me/export")).json()
    await finished_export(kim, export["id"])
    granted = await admin_ready.post(
        f"/api/admin/users/{kim_id}/credits", {"amount": 500, "reason": "thanks"}
    )
    assert granted.status in (200, 201), await granted.text()
    other = await person(make_client, "lou@example.com")
    await generate(other, ["demo/echo"])
    app = kim.app
    db = app[DB]
    data_dir: Path = settings.data_dir
    store = data_dir / "files"  # the storage backend's folder: every user file is in it
    media_folder = store / "media" / kim_id
    assert any(media_folder.iterdir())
    assert any((store / "avatars").iterdir())
    assert any((store / "exports" / kim_id).glob("*.zip"))
    stored_blobs = [p for p in store.rglob("*") if p.is_file()]
    assert stored_blobs
    async with db.read() as session:
        ledger_rows = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.user_id == kim_id)
        )
        ledger_total = await session.scalar(select(func.sum(LedgerEntry.amount)))
        balance = (await session.get(Wallet, kim_id)).balance  # type: ignore[union-attr]
    assert (await kim.delete("/api/me", json={"password": DEFAULT_PASSWORD})).status == 202
    assert await deletion.purge_deleted_accounts(app) == 0  # the grace period is not over
    async with db.transaction() as session:
        await session.execute(
            update(AccountDeletion)
            .where(AccountDeletion.user_id == kim_id)
            .values(purge_after=utcnow() - timedelta(seconds=1))
        )
    assert await deletion.purge_deleted_accounts(app) == 1

    assert await _rows_mentioning(app, kim_id) == {}
    assert await _rows_mentioning(app, "kim@example.com") == {}
    assert not [p for p in media_folder.rglob("*") if p.is_file()]
    assert list((store / "avatars").iterdir()) == []
    assert list((store / "exports").rglob("*.zip")) == []
    assert not any(p.exists() for p in stored_blobs)
    async with db.read() as session:
        record = await session.scalar(select(AccountDeletion))
        assert record is not None and record.status == "deleted" and record.deleted_at
        tombstone = await session.get(User, record.user_id)
        moved = list(
            await session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == record.user_id))
        )
        wallet = await session.get(Wallet, record.user_id)
        total_after = await session.scalar(select(func.sum(LedgerEntry.amount)))
    assert tombstone is not None and not tombstone.is_active and tombstone.password_hash is None
    assert tombstone.name == deletion.TOMBSTONE_NAME and tombstone.email.endswith(".invalid")
    assert len(moved) == ledger_rows and total_after == ledger_total
    assert wallet is not None and wallet.balance == balance == sum(e.amount for e in moved)
    entries = await audit.list_entries(db, limit=200, subject=record.user_id)
    actions = {e.action for e in entries}
    assert {"auth.login", "privacy.account_deletion_requested", "privacy.account_deleted"} <= (
        actions
    )
    assert all(e.ip is None for e in entries if e.actor_id == record.user_id)

    # Everyone else is untouched.
    assert (await other.get("/api/me")).status == 200
    assert len((await other.get_json("/api/conversations"))["conversations"]) == 1
    assert (await admin_ready.get("/api/me")).status == 200
    # The address is free again.
    again: ApiClient = await make_client()
    await again.register_and_login("kim@example.com")
    assert again.user["id"] != kim_id  # type: ignore[index]


async def test_an_account_an_admin_reactivated_is_not_deleted(admin: ApiClient, make_client: Any):
    max_ = await person(make_client, "max@example.com")
    max_id = max_.user["id"]  # type: ignore[index]
    assert (await max_.delete("/api/me", json={"password": DEFAULT_PASSWORD})).status == 202
    unblocked = await admin.patch(f"/api/admin/users/{max_id}", {"is_active": True})
    assert unblocked.status == 200
    async with admin.app[DB].transaction() as session:
        await session.execute(
            update(AccountDeletion).values(purge_after=utcnow() - timedelta(seconds=1))
        )
    assert await deletion.purge_deleted_accounts(admin.app) == 0
    await max_.login("max@example.com")
    assert (await max_.get("/api/me")).status == 200


# -- pages --------------------------------------------------------------------------------------


async def test_the_privacy_page_exports_with_progress_and_deletes(
    admin: ApiClient, make_client: Any
):
    nia = await person(make_client, "nia@example.com")
    page = await nia.get("/account/privacy")
    text = await page.text()
    assert page.status == 200 and "Download your data" in text and "Delete my account" in text
    started = await nia.client.post(
        "/account/privacy/export",
        data={"csrf_token": nia.csrf},
        headers={"HX-Request": "true"},
    )
    fragment = await started.text()
    assert started.status == 200 and 'id="exports"' in fragment
    exports_list = await nia.get_json("/api/me/exports")
    if exports_list[0]["status"] in ("pending", "running"):
        assert 'hx-trigger="every 2s"' in fragment
    await finished_export(nia, exports_list[0]["id"])
    finished = await (await nia.get("/account/privacy/exports")).text()
    assert "hx-trigger" not in finished and "Download" in finished

    refused = await nia.client.post(
        "/account/privacy/delete",
        data={"csrf_token": nia.csrf, "password": "wrong password here", "confirm": "yes"},
    )
    assert refused.status == 422 and "The password is wrong." in await refused.text()
    unticked = await nia.client.post(
        "/account/privacy/delete", data={"csrf_token": nia.csrf, "password": DEFAULT_PASSWORD}
    )
    assert unticked.status == 422
    deleted = await nia.client.post(
        "/account/privacy/delete",
        data={"csrf_token": nia.csrf, "password": DEFAULT_PASSWORD, "confirm": "yes"},
        allow_redirects=False,
    )
    assert deleted.status == 303 and deleted.headers["Location"] == "/login"
    assert (await nia.get("/api/me")).status == 401


# -- legal pages --------------------------------------------------------------------------------


async def test_legal_pages_are_public_with_defaults_describing_the_product(api: ApiClient):
    home = await (await api.get("/")).text()
    for doc in ("privacy", "terms", "cookies"):
        assert f'href="/legal/{doc}"' in home  # in the footer of every page
        page = await api.get(f"/legal/{doc}")
        assert page.status == 200
    cookies = await api.get_json("/api/legal/cookies")
    assert (
        cookies["is_default"] and "mn_session" in cookies["html"] and "mn_flash" in cookies["html"]
    )
    assert "no advertising, analytics or" in cookies["markdown"]
    privacy = await api.get_json("/api/legal/privacy")
    assert "14 days" in privacy["markdown"] and "<h1>Privacy policy</h1>" in privacy["html"]
    assert (await api.get("/legal/other")).status == 404
    assert (await api.get("/api/legal/other")).status == 404


async def test_admins_edit_legal_pages_as_sanitised_markdown(admin: ApiClient, make_client: Any):
    text = "# Our terms\n\nBe **nice**. <script>alert(1)</script> [x](javascript:alert(1))"
    response = await admin.request("PUT", "/api/admin/legal/terms", json={"markdown": text})
    assert response.status == 200, await response.text()
    saved = await response.json()
    assert saved["is_default"] is False and "<strong>nice</strong>" in saved["html"]
    page = await (await admin.get("/legal/terms")).text()
    assert "<strong>nice</strong>" in page and "<script>alert" not in page
    assert 'href="javascript:' not in page

    preview = await admin.client.post(
        "/admin/legal/preview", data={"csrf_token": admin.csrf, "markdown": "*hi* <b>x</b>"}
    )
    assert "<em>hi</em>" in await preview.text() and "<b>" not in await preview.text()
    editor = await admin.get("/admin/legal?doc=terms")
    assert editor.status == 200 and "Our terms" in await editor.text()
    saved_form = await admin.client.post(
        "/admin/legal",
        data={"csrf_token": admin.csrf, "doc": "cookies", "markdown": "Only one cookie."},
        allow_redirects=False,
    )
    assert saved_form.status == 303
    assert (await admin.get_json("/api/legal/cookies"))["markdown"] == "Only one cookie."

    user = await person(make_client, "ola@example.com")
    assert (
        await user.request("PUT", "/api/admin/legal/terms", json={"markdown": "mine"})
    ).status == 403
    assert (await user.get("/admin/legal")).status == 403
    reset = await admin.request("PUT", "/api/admin/legal/terms", json={"markdown": ""})
    assert (await reset.json())["is_default"] is True
    entries = await audit.list_entries(admin.app[DB], limit=10, action="legal.updated")
    assert len(entries) == 3
