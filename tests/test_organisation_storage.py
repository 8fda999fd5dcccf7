"""An organisation's storage quota (issue #19, teams item 3, storage): files a member uploads in
the organisation's space (``POST /api/files?org_id=``, or the Files page while working in the
organisation) count against the organisation's quota, not the member's own; a full quota is a
413 ``quota_exceeded`` that keeps nothing; an administrator sets the quota and members see
used/total. A non-member, or a removed member, cannot upload into it."""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import func, select

from multinotes.files.models import File
from multinotes.keys import DB, SETTINGS
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, token_in

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

ACCEPT = "/organisations/invitations/accept"


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def team(api: ApiClient, make_client: Any, mailbox: Mailbox) -> tuple[str, ApiClient]:
    """An organisation owned by the instance's admin, with one member (Mia)."""
    await api.register_admin("olive@example.com")
    await api.mark_verified()
    created = await api.post("/api/orgs", {"name": "Acme"})
    org_id = str((await created.json())["id"])
    mia = await person(make_client, "mia@example.com")
    invited = await api.post(f"/api/orgs/{org_id}/invitations", {"email": "mia@example.com"})
    assert invited.status == 201
    token = token_in(await mailbox.wait_for("mia@example.com", subject="invited you"), ACCEPT)
    assert (await mia.post("/api/orgs/invitations/accept", {"token": token})).status == 200
    return org_id, mia


async def upload(client: ApiClient, data: bytes, org_id: str | None = None) -> Any:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="words.txt", content_type="text/plain")
    path = f"/api/files?org_id={org_id}" if org_id else "/api/files"
    return await client.post(path, data=form)


async def stored_files(api: ApiClient) -> int:
    async with api.app[DB].read() as session:
        return int(await session.scalar(select(func.count()).select_from(File)) or 0)


async def test_files_in_the_organisation_space_count_against_its_quota(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    before = await mia.get_json("/api/files/usage")
    stored = await upload(mia, b"shared words", org_id)
    assert stored.status == 201, await stored.text()
    assert (await stored.json())["organisation_id"] == org_id
    assert (await upload(mia, b"my own words")).status == 201
    # Twelve bytes in the organisation's space; Mia's own space has only her own file.
    storage = await api.get_json(f"/api/orgs/{org_id}/storage")
    assert storage["used"] == len(b"shared words")
    assert storage["quota"] == api.app[SETTINGS].default_organisation_storage_quota_bytes
    after = await mia.get_json("/api/files/usage")
    assert after["used"] - before["used"] == len(b"my own words")
    # Members see it too; the page shows it.
    assert (await mia.get_json(f"/api/orgs/{org_id}/storage"))["used"] == 12
    page = await (await api.get(f"/organisations/{org_id}")).text()
    assert "12 Bytes of 50.0 GiB used" in page


async def test_a_full_organisation_quota_is_a_413_that_keeps_nothing(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    set_quota = await api.request(
        "PUT", f"/api/admin/orgs/{org_id}/storage", json={"quota_bytes": 20}
    )
    assert set_quota.status == 200, await set_quota.text()
    assert (await set_quota.json()) == {"used": 0, "quota": 20, "available": 20}
    assert (await upload(mia, b"0123456789", org_id)).status == 201
    count = await stored_files(api)
    full = await upload(mia, b"0123456789abc", org_id)
    assert full.status == 413
    error = (await full.json())["error"]
    assert error["code"] == "quota_exceeded" and "file" in error["fields"]
    assert "organisation's storage quota" in error["message"]
    assert await stored_files(api) == count
    # Her own space is not the organisation's: the same file fits there.
    assert (await upload(mia, b"0123456789abc")).status == 201
    # Back to the default: it fits again. The change is audited.
    reset = await api.request(
        "PUT", f"/api/admin/orgs/{org_id}/storage", json={"quota_bytes": None}
    )
    assert (await reset.json())["quota"] > 20
    assert (await upload(mia, b"0123456789abc", org_id)).status == 201
    entries = await api.get_json("/api/admin/audit?action=organisation.storage_quota_set")
    assert [e["details"]["quota_bytes"] for e in entries["entries"]] == [None, 20]


async def test_only_members_upload_into_it_and_only_administrators_set_its_quota(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    stranger = await person(make_client, "sam@example.com")
    assert (await upload(stranger, b"words", org_id)).status == 404
    assert (await stranger.get(f"/api/orgs/{org_id}/storage")).status == 404
    bad = await upload(mia, b"words", "not/an id")
    assert bad.status == 422 and "org_id" in (await bad.json())["error"]["fields"]
    refused = await mia.request("PUT", f"/api/admin/orgs/{org_id}/storage", json={"quota_bytes": 1})
    assert refused.status == 403
    negative = await api.request(
        "PUT", f"/api/admin/orgs/{org_id}/storage", json={"quota_bytes": -1}
    )
    assert negative.status == 422 and "quota_bytes" in (await negative.json())["error"]["fields"]
    missing = await api.request("PUT", "/api/admin/orgs/nope/storage", json={"quota_bytes": 1})
    assert missing.status == 404
    # Removed, Mia cannot fill the organisation's storage at her next request.
    assert mia.user is not None
    assert (await api.delete(f"/api/orgs/{org_id}/members/{mia.user['id']}")).status == 204
    assert (await upload(mia, b"words", org_id)).status == 404


async def test_the_files_page_uploads_into_the_space_chosen_with_the_switch(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    switched = await mia.client.post(
        f"/organisations/{org_id}/workspace",
        data={"csrf_token": mia.csrf or ""},
        allow_redirects=False,
    )
    assert switched.status == 303
    page = await (await mia.get("/files")).text()
    assert f'data-org-id="{org_id}"' in page and "count against its storage" in page
    form = aiohttp.FormData()
    form.add_field("csrf_token", mia.csrf or "")
    form.add_field("file", b"page words", filename="page.txt", content_type="text/plain")
    origin = str(mia.client.make_url("")).rstrip("/")
    posted = await mia.client.post(
        "/files/upload", data=form, headers={"Origin": origin}, allow_redirects=False
    )
    assert posted.status == 303
    assert (await api.get_json(f"/api/orgs/{org_id}/storage"))["used"] == len(b"page words")
