"""A file is filed only in a live folder of its owner's: naming another user's folder (even one
shared with the uploader) or one that does not exist is refused like every other reference, with
a field error, and nothing is kept."""

from __future__ import annotations

from typing import Any

import aiohttp

from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.support import people
from tests.support.stored_files import row_count, stored_objects

ann = people.ann
bob = people.bob

NO_SUCH_FOLDER = "0" * 32


def form(folder_id: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("folder_id", folder_id)
    body.add_field("file", b"hello\n", filename="a.txt", content_type="text/plain")
    return body


async def new_folder(client: ApiClient, name: str) -> str:
    response = await client.post("/api/folders", {"name": name})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def refused(response: Any) -> None:
    body = await response.json()
    assert response.status == 404, body
    assert body["error"]["fields"] == {"folder_id": "No such folder."}


async def test_upload_into_someone_elses_folder_is_refused(
    ann: ApiClient, bob: ApiClient, settings: Settings
) -> None:
    anns = await new_folder(ann, "Ann's")
    # Even shared with Bob as an editor, Ann's folder is not a place for Bob's files.
    shared = await ann.post(
        "/api/shares",
        {"object_type": "folder", "object_id": anns, "email": "bob@example.com", "role": "editor"},
    )
    assert shared.status == 201, await shared.text()
    for folder in (anns, NO_SUCH_FOLDER):
        await refused(await bob.post("/api/files", data=form(folder)))
    assert await row_count(ann) == 0
    assert stored_objects(settings) == []
    # The owner's own folder is fine.
    mine = await ann.post("/api/files", data=form(anns))
    assert mine.status == 201, await mine.text()
    assert (await mine.json())["folder_id"] == anns


async def test_moving_a_file_into_someone_elses_folder_is_refused(
    ann: ApiClient, bob: ApiClient
) -> None:
    anns = await new_folder(ann, "Ann's")
    bobs = await new_folder(bob, "Bob's")
    upload = await bob.post("/api/files", data=form(bobs))
    file_id = (await upload.json())["id"]
    for folder in (anns, NO_SUCH_FOLDER):
        await refused(await bob.patch(f"/api/files/{file_id}", {"folder_id": folder}))
    assert (await bob.get_json(f"/api/files/{file_id}"))["folder_id"] == bobs
    # A trashed folder of one's own is gone too.
    assert (await bob.delete(f"/api/folders/{bobs}")).status == 204
    other = await new_folder(bob, "Other")
    moved = await bob.patch(f"/api/files/{file_id}", {"folder_id": other})
    assert moved.status == 200 and (await moved.json())["folder_id"] == other
    await refused(await bob.patch(f"/api/files/{file_id}", {"folder_id": bobs}))
