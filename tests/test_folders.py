"""Folders: a tree per user with unique names per parent, moves without cycles, and a trash
that keeps deleted folders (with their contents) restorable for 30 days before a task purges
them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from multinotes.db import utcnow
from multinotes.notes.tasks import purge_notes_trash
from multinotes.testing import ApiClient


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    return api


async def make_folder(api: ApiClient, name: str, parent_id: str | None = None) -> str:
    response = await api.post("/api/folders", {"name": name, "parent_id": parent_id})
    body = await response.json()
    assert response.status == 201, body
    return str(body["id"])


async def make_note(api: ApiClient, title: str, folder_id: str | None = None) -> str:
    response = await api.post(
        "/api/documents", {"title": title, "content": f"# {title}", "folder_id": folder_id}
    )
    assert response.status == 201
    return str((await response.json())["id"])


async def tree(api: ApiClient) -> dict[str, dict]:
    return {f["name"]: f for f in (await api.get_json("/api/folders"))["folders"]}


async def test_folders_form_a_flat_tree_linked_by_parent_id(user: ApiClient):
    work = await make_folder(user, "Work")
    drafts = await make_folder(user, "Drafts", work)
    await make_folder(user, "Ideas", drafts)
    folders = await tree(user)
    assert set(folders) == {"Work", "Drafts", "Ideas"}
    assert folders["Work"]["parent_id"] is None
    assert folders["Drafts"]["parent_id"] == work
    assert folders["Ideas"]["parent_id"] == drafts


async def test_names_are_unique_within_a_parent_ignoring_case(user: ApiClient):
    work = await make_folder(user, "Work")
    response = await user.post("/api/folders", {"name": "work"})
    assert response.status == 422
    body = await response.json()
    assert body["error"]["code"] == "name_taken" and "name" in body["error"]["fields"]
    # The same name under another parent is fine.
    await make_folder(user, "Work", work)
    other = await make_folder(user, "Other")
    response = await user.patch(f"/api/folders/{other}", {"name": "WORK"})
    assert response.status == 422
    blank = await user.post("/api/folders", {"name": "   "})
    assert blank.status == 422


async def test_rename_and_move_to_another_parent_or_the_root(user: ApiClient):
    a = await make_folder(user, "A")
    b = await make_folder(user, "B")
    response = await user.patch(f"/api/folders/{b}", {"name": "Bee", "parent_id": a})
    assert response.status == 200
    assert (await response.json())["parent_id"] == a
    assert (await tree(user))["Bee"]["parent_id"] == a
    response = await user.patch(f"/api/folders/{b}", {"parent_id": None})
    assert (await response.json())["parent_id"] is None
    # Renaming alone leaves the folder where it is.
    await user.patch(f"/api/folders/{b}", {"parent_id": a})
    await user.patch(f"/api/folders/{b}", {"name": "B"})
    assert (await tree(user))["B"]["parent_id"] == a


async def test_a_folder_cannot_move_into_itself_or_below_itself(user: ApiClient):
    top = await make_folder(user, "Top")
    middle = await make_folder(user, "Middle", top)
    bottom = await make_folder(user, "Bottom", middle)
    for target in (top, middle, bottom):
        response = await user.patch(f"/api/folders/{top}", {"parent_id": target})
        assert response.status == 422, target
        body = await response.json()
        assert body["error"]["code"] == "folder_cycle"
        assert "parent_id" in body["error"]["fields"]
    assert (await tree(user))["Top"]["parent_id"] is None


async def test_a_missing_parent_is_404(user: ApiClient):
    response = await user.post("/api/folders", {"name": "X", "parent_id": "0" * 32})
    assert response.status == 404


async def test_delete_moves_the_folder_and_its_contents_to_the_trash(user: ApiClient):
    projects = await make_folder(user, "Projects")
    inner = await make_folder(user, "Inner", projects)
    note = await make_note(user, "Plan", inner)
    outside = await make_note(user, "Elsewhere")
    assert (await user.delete(f"/api/folders/{projects}")).status == 204

    assert await tree(user) == {}
    assert (await user.get(f"/api/documents/{note}")).status == 404
    listed = await user.get_json("/api/documents")
    assert [d["id"] for d in listed["documents"]] == [outside]
    trash = (await user.get_json("/api/trash"))["items"]
    # Only what the user deleted is listed; its contents come back with it.
    assert [(i["kind"], i["id"]) for i in trash] == [("folder", projects)]
    assert trash[0]["name"] == "Projects" and trash[0]["purge_after"] > trash[0]["deleted_at"]
    # A trashed folder cannot take new contents or be edited.
    assert (await user.post("/api/folders", {"name": "X", "parent_id": inner})).status == 404
    assert (await user.patch(f"/api/folders/{projects}", {"name": "Y"})).status == 404


async def test_trash_does_not_block_reusing_a_name_and_restore_adds_a_suffix(user: ApiClient):
    old = await make_folder(user, "Notes")
    note = await make_note(user, "Inside", old)
    await user.delete(f"/api/folders/{old}")
    new = await make_folder(user, "notes")
    assert new != old
    response = await user.post(f"/api/folders/{old}/restore")
    assert response.status == 200
    assert (await response.json())["name"] == "Notes (restored)"
    assert set(await tree(user)) == {"notes", "Notes (restored)"}
    assert (await user.get_json(f"/api/documents/{note}"))["folder_id"] == old
    assert (await user.get_json("/api/trash"))["items"] == []


async def test_restore_brings_back_contents_but_not_what_was_deleted_before(user: ApiClient):
    folder = await make_folder(user, "F")
    child = await make_folder(user, "Child", folder)
    kept = await make_note(user, "Kept", child)
    earlier = await make_note(user, "Deleted earlier", folder)
    await user.delete(f"/api/documents/{earlier}")
    await user.delete(f"/api/folders/{folder}")
    assert (await user.post(f"/api/folders/{child}/restore")).status == 404  # went with F
    await user.post(f"/api/folders/{folder}/restore")
    assert (await tree(user))["Child"]["parent_id"] == folder
    assert (await user.get(f"/api/documents/{kept}")).status == 200
    assert (await user.get(f"/api/documents/{earlier}")).status == 404
    trash = (await user.get_json("/api/trash"))["items"]
    assert [(i["kind"], i["id"]) for i in trash] == [("document", earlier)]


async def test_a_restored_folder_whose_parent_is_gone_returns_to_the_root(user: ApiClient):
    parent = await make_folder(user, "Parent")
    child = await make_folder(user, "Child", parent)
    await user.delete(f"/api/folders/{child}")
    await user.delete(f"/api/folders/{parent}")
    await user.post(f"/api/folders/{child}/restore")
    assert (await tree(user))["Child"]["parent_id"] is None


async def test_the_purge_task_deletes_what_was_trashed_before_the_cutoff(user: ApiClient):
    old = await make_folder(user, "Old")
    sub = await make_folder(user, "Sub", old)
    await make_note(user, "Old note", sub)
    await user.delete(f"/api/folders/{old}")
    recent = await make_folder(user, "Recent")
    await user.delete(f"/api/folders/{recent}")

    # Nothing is older than 30 days yet.
    assert await purge_notes_trash(user.app) == 0
    assert len((await user.get_json("/api/trash"))["items"]) == 2
    # Everything trashed before now, with a cutoff in the future (as in 30 days' time).
    removed = await purge_notes_trash(user.app, utcnow() + timedelta(seconds=1))
    assert removed == 4  # three folders and the note
    assert (await user.get_json("/api/trash"))["items"] == []
    assert (await user.post(f"/api/folders/{old}/restore")).status == 404


async def test_the_purge_is_a_scheduled_core_task(user: ApiClient):
    from multinotes.core_tasks import core_tasks

    task = next(t for t in core_tasks() if t.name == "core.purge_notes_trash")
    assert task.schedule


async def test_another_users_folders_are_404_and_unchanged(user: ApiClient, make_client):
    mine = await make_folder(user, "Mine")
    await make_folder(user, "Child", mine)
    trashed = await make_folder(user, "Trashed")
    await user.delete(f"/api/folders/{trashed}")

    other = await make_client()
    await other.register_and_login("b@example.com")
    assert (await other.get_json("/api/folders"))["folders"] == []
    assert (await other.get_json("/api/trash"))["items"] == []
    assert (await other.patch(f"/api/folders/{mine}", {"name": "Stolen"})).status == 404
    assert (await other.delete(f"/api/folders/{mine}")).status == 404
    assert (await other.post(f"/api/folders/{trashed}/restore")).status == 404
    assert (await other.post("/api/folders", {"name": "In", "parent_id": mine})).status == 404
    theirs = await make_folder(other, "Theirs")
    assert (await other.patch(f"/api/folders/{theirs}", {"parent_id": mine})).status == 404
    assert (await other.post("/api/documents", {"title": "x", "folder_id": mine})).status == 404

    folders = await tree(user)
    assert set(folders) == {"Mine", "Child"} and folders["Child"]["parent_id"] == mine
    assert [i["id"] for i in (await user.get_json("/api/trash"))["items"]] == [trashed]


async def test_racing_creates_of_one_name_make_one_folder(user: ApiClient):
    import asyncio

    responses = await asyncio.gather(
        *(user.post("/api/folders", {"name": "Race" if i % 2 else "race"}) for i in range(6))
    )
    assert sorted(r.status for r in responses) == [201] + [422] * 5
    assert [name.lower() for name in await tree(user)] == ["race"]


async def test_the_unique_index_refuses_a_live_duplicate_that_skips_the_service(user: ApiClient):
    from sqlalchemy.exc import IntegrityError

    from multinotes.keys import DB
    from multinotes.notes.models import Folder

    await make_folder(user, "Twin")
    with pytest.raises(IntegrityError):
        async with user.app[DB].transaction() as session:
            session.add(Folder(user_id=user.user["id"], name="TWIN", name_key="twin"))


async def test_a_deep_tree_is_purged_and_its_owner_can_still_be_deleted(user: ApiClient):
    """MySQL cascades at most 15 levels: neither the purge nor deleting the owner may rely on
    a cascade through the folder tree."""
    from sqlalchemy import delete, func, select

    from multinotes.keys import DB
    from multinotes.models import User
    from multinotes.notes.models import Document, Folder

    parent = None
    for level in range(20):
        parent = await make_folder(user, f"Level {level}", parent)
        await make_note(user, f"Note {level}", parent)
    top = (await tree(user))["Level 0"]["id"]
    await user.delete(f"/api/folders/{top}")
    assert await purge_notes_trash(user.app, utcnow() + timedelta(seconds=1)) == 40

    parent = None
    for level in range(20):
        parent = await make_folder(user, f"Again {level}", parent)
        await make_note(user, f"Note {level}", parent)
    db = user.app[DB]
    async with db.transaction() as session:
        await session.execute(delete(User).where(User.id == user.user["id"]))
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Folder)) == 0
        assert await session.scalar(select(func.count()).select_from(Document)) == 0
