"""Editing a note together (issue #20 item 4): the WebSocket ``/api/documents/{id}/collab``
speaking the Yjs sync and awareness protocol, in both runtime modes.

Each test client is a pycrdt document of its own, synced through the server exactly as the
browser's Yjs document is (the y-websocket frames). Ann owns the note and shares it with Bob;
Eve has nothing shared."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from pycrdt import Doc, Text

from multinotes.app import create_app
from multinotes.collab import ROOMS, protocol
from multinotes.collab import room as room_module
from multinotes.settings import Settings
from multinotes.testing import ApiClient, app_client
from tests.support import people
from tests.test_live import origin

ann = people.ann
bob = people.bob
eve = people.eve


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pause in editing is 0.3 s here, so saves are seen quickly."""
    monkeypatch.setattr(room_module, "IDLE", 0.3)
    monkeypatch.setattr(room_module, "TICK", 0.05)


async def note(api: ApiClient, content: str = "Hello", title: str = "Plan") -> str:
    response = await api.post("/api/documents", {"title": title, "content": content})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def share(owner: ApiClient, note_id: str, role: str) -> str:
    response = await owner.post(
        "/api/shares",
        {"object_type": "document", "object_id": note_id, "email": "bob@example.com", "role": role},
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


class Client:
    """One person's editor: a Yjs document kept in sync over the socket."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.hello: dict[str, Any] = {}
        self.controls: list[dict[str, Any]] = []
        self.awareness: dict[int, dict[str, Any] | None] = {}
        self.closed: tuple[int, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    async def start(self) -> Client:
        first = await self.socket.receive_json(timeout=5)
        assert first["type"] == "collab.hello", first
        self.hello = first["data"]
        await self.socket.send_bytes(protocol.sync_step1(self.doc.get_state()))
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.synced.wait(), 5)  # the server's answer to our step 1
        return self

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.controls.append(json.loads(message.data))
                continue
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            frame = protocol.parse(message.data)
            if frame.kind == protocol.SYNC:
                if frame.step == protocol.STEP1:
                    update = self.doc.get_update(frame.payload)
                    await self.socket.send_bytes(protocol.sync_step2(update))
                else:
                    self.doc.apply_update(frame.payload)
                    if frame.step == protocol.STEP2:
                        self.synced.set()
            else:
                for entry in protocol.read_awareness(frame.payload):
                    self.awareness[entry.client_id] = entry.state
        self.closed = (self.socket.close_code, "")

    async def edit(self, index: int, insert: str = "", delete: int = 0) -> None:
        before = self.doc.get_state()
        with self.doc.transaction():
            if delete:
                del self.text[index : index + delete]
            if insert:
                self.text.insert(index, insert)
        await self.socket.send_bytes(protocol.update_frame(self.doc.get_update(before)))

    async def cursor(self, anchor: int, head: int) -> None:
        state = {"cursor": {"anchor": anchor, "head": head}, "user": {"name": "Spoofed"}}
        await self.socket.send_bytes(
            protocol.awareness_frame([protocol.ClientState(self.doc.client_id, 1, state)])
        )

    def control(self, type_: str) -> dict[str, Any] | None:
        found = [c for c in self.controls if c["type"] == type_]
        return found[-1] if found else None

    async def close(self) -> None:
        await self.socket.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def join(api: ApiClient, note_id: str) -> Client:
    socket = await api.client.ws_connect(
        f"/api/documents/{note_id}/collab", headers={"Origin": origin(api)}
    )
    return await Client(socket).start()


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def versions(api: ApiClient, note_id: str) -> list[dict[str, Any]]:
    return list((await api.get_json(f"/api/documents/{note_id}/versions"))["versions"])


def test_the_frame_numbers_are_the_y_websocket_ones():
    """The protocol module writes y-protocols' numbers as constants (so it imports pycrdt only
    with the first room); they are pycrdt's."""
    from pycrdt import YMessageType, YSyncMessageType

    assert (protocol.SYNC, protocol.AWARENESS) == (YMessageType.SYNC, YMessageType.AWARENESS)
    assert (protocol.STEP1, protocol.STEP2, protocol.UPDATE) == (
        YSyncMessageType.SYNC_STEP1,
        YSyncMessageType.SYNC_STEP2,
        YSyncMessageType.SYNC_UPDATE,
    )


async def test_two_editors_typing_at_once_converge_and_one_pause_makes_one_version(
    ann: ApiClient, bob: ApiClient
) -> None:
    doc = await note(ann, "Hello")
    await share(ann, doc, "editor")
    anns, bobs = await join(ann, doc), await join(bob, doc)
    assert anns.hello["role"] == "owner" and bobs.hello["role"] == "editor"
    await until(lambda: str(anns.text) == "Hello" and str(bobs.text) == "Hello")

    # Both type at the same moment, at both ends of the text, many keystrokes each.
    for letter in "abcde":
        await asyncio.gather(anns.edit(0, letter.upper()), bobs.edit(len(bobs.text), letter))
    await until(lambda: str(anns.text) == str(bobs.text) and len(str(anns.text)) == 15)
    merged = str(anns.text)
    # Every keystroke is there once; Ann's went before the text, Bob's after it.
    assert sorted(merged) == sorted("HelloABCDEabcde")
    head, _, tail = merged.partition("Hello")
    assert sorted(head) == list("ABCDE") and sorted(tail) == list("abcde")

    # Deleting (an update that only grows the delete set) reaches the other side too.
    await anns.edit(5, delete=5)  # the "Hello" between the two typists
    await until(lambda: str(bobs.text) == str(anns.text) and len(str(bobs.text)) == 10)
    merged = str(anns.text)
    assert "Hello" not in merged and sorted(merged) == sorted("ABCDEabcde")

    # A pause: exactly one new version, holding the merged text, by the last editor.
    await until(lambda: anns.control("collab.saved") is not None)
    listed = await versions(ann, doc)
    assert [v["version"] for v in listed] == [2, 1]
    current = await ann.get_json(f"/api/documents/{doc}")
    assert current["content"] == merged and current["version"] == 2
    await until(lambda: (bobs.control("collab.saved") or {}).get("data") == {"version": 2})
    await anns.close()
    await bobs.close()


async def test_cursors_are_relayed_under_the_senders_real_name(
    ann: ApiClient, bob: ApiClient
) -> None:
    doc = await note(ann)
    await share(ann, doc, "editor")
    anns, bobs = await join(ann, doc), await join(bob, doc)
    await bobs.cursor(1, 3)
    await until(lambda: bobs.doc.client_id in anns.awareness)
    seen = anns.awareness[bobs.doc.client_id]
    assert seen is not None and seen["cursor"] == {"anchor": 1, "head": 3}
    assert seen["user"]["name"] == "Bob Colleague" and seen["user"]["color"].startswith("#")
    # Leaving takes the cursor away for the others.
    await bobs.close()
    await until(lambda: anns.awareness.get(bobs.doc.client_id, 1) is None)
    await anns.close()


async def test_a_viewer_sees_edits_live_and_its_own_are_refused(
    ann: ApiClient, bob: ApiClient
) -> None:
    doc = await note(ann, "Hello")
    await share(ann, doc, "viewer")
    anns, bobs = await join(ann, doc), await join(bob, doc)
    assert bobs.hello["role"] == "viewer"
    await anns.edit(5, " world")
    await until(lambda: str(bobs.text) == "Hello world")

    await bobs.edit(0, "HACKED ")
    await until(lambda: bobs.control("error") is not None)
    assert bobs.control("error")["data"]["code"] == "read_only"  # type: ignore[index]
    await asyncio.sleep(0.5)
    assert str(anns.text) == "Hello world"
    await until(lambda: anns.control("collab.saved") is not None)
    assert (await ann.get_json(f"/api/documents/{doc}"))["content"] == "Hello world"
    await anns.close()
    await bobs.close()


async def test_only_people_who_may_read_the_note_connect_and_only_from_this_site(
    ann: ApiClient, eve: ApiClient
) -> None:
    doc = await note(ann)
    for headers in ({"Origin": origin(eve)}, {"Origin": "https://evil.example"}):
        client = eve if headers["Origin"] != "https://evil.example" else ann
        response = await client.client.get(
            f"/api/documents/{doc}/collab",
            headers={
                **headers,
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        expected = 404 if client is eve else 403
        assert response.status == expected, await response.text()
        assert (await response.json())["error"]["code"] in ("not_found", "csrf_failed")
    plain = await ann.client.get(f"/api/documents/{doc}/collab", headers={"Origin": origin(ann)})
    assert plain.status == 400
    assert (await plain.json())["error"]["code"] == "websocket_required"


async def test_revoking_the_share_cuts_the_editor_off_at_once(
    ann: ApiClient, bob: ApiClient
) -> None:
    doc = await note(ann)
    share_id = await share(ann, doc, "editor")
    anns, bobs = await join(ann, doc), await join(bob, doc)
    assert (await ann.delete(f"/api/shares/{share_id}")).status in (200, 204)
    await until(lambda: bobs.closed is not None, timeout=3)
    assert bobs.closed is not None and bobs.closed[0] == room_module.ACCESS_LOST
    # Ann keeps editing; nothing reaches Bob any more, and he cannot come back.
    await anns.edit(0, "Secret ")
    refused = await bob.client.get(
        f"/api/documents/{doc}/collab",
        headers={
            "Origin": origin(bob),
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert refused.status == 404
    await anns.close()


async def test_rest_edits_of_the_text_wait_while_the_note_is_edited_live(
    ann: ApiClient,
) -> None:
    doc = await note(ann, "Hello")
    anns = await join(ann, doc)
    patch = await ann.patch(f"/api/documents/{doc}", {"version": 1, "content": "Overwritten"})
    assert patch.status == 409
    error = (await patch.json())["error"]
    assert error["code"] == "editing_live" and "content" in error["fields"]
    restore = await ann.post(f"/api/documents/{doc}/versions/1/restore", {})
    assert restore.status == 409
    # The title still changes; the room's next save goes on top of it.
    renamed = await ann.patch(f"/api/documents/{doc}", {"version": 1, "title": "Renamed"})
    assert renamed.status == 200, await renamed.text()
    await anns.edit(5, "!")
    await until(lambda: anns.control("collab.saved") is not None)
    current = await ann.get_json(f"/api/documents/{doc}")
    assert (current["title"], current["content"], current["version"]) == ("Renamed", "Hello!", 3)
    await anns.close()

    # Once nobody edits it, the REST PATCH with its optimistic version works as before.
    await until(lambda: doc not in ann.client.app[ROOMS].rooms)
    done = await ann.patch(f"/api/documents/{doc}", {"version": 3, "content": "Via API"})
    assert done.status == 200, await done.text()
    stale = await ann.patch(f"/api/documents/{doc}", {"version": 3, "content": "Late"})
    assert stale.status == 409 and (await stale.json())["error"]["code"] == "stale_version"
    # And the next live session starts from that text.
    again = await join(ann, doc)
    await until(lambda: str(again.text) == "Via API")
    assert again.hello["version"] == 4
    await again.close()


async def test_the_last_one_leaving_saves_at_once(
    ann: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(room_module, "IDLE", 60.0)
    doc = await note(ann, "Hello")
    anns = await join(ann, doc)
    await anns.edit(0, "Well, ")
    await asyncio.sleep(0.2)
    await anns.close()
    await until(lambda: doc not in ann.client.app[ROOMS].rooms)
    assert (await ann.get_json(f"/api/documents/{doc}"))["content"] == "Well, Hello"


async def test_garbage_and_floods_are_refused_without_harm(
    ann: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = await note(ann, "Hello")
    anns = await join(ann, doc)
    await anns.socket.send_bytes(b"\x07\x01\x02")
    await until(lambda: anns.control("error") is not None)
    assert anns.control("error")["data"]["code"] == "bad_frame"  # type: ignore[index]
    await anns.socket.send_bytes(protocol.update_frame(b"\x05\x05\x05garbage"))
    await until(lambda: len([c for c in anns.controls if c["type"] == "error"]) == 2)
    monkeypatch.setattr(room_module, "BURST", 5)
    monkeypatch.setattr(room_module, "RATE", 0.1)
    for _ in range(10):
        await anns.cursor(0, 0)
    await until(
        lambda: any(
            c["data"]["code"] == "rate_limited" for c in anns.controls if c["type"] == "error"
        )
    )
    await anns.close()


async def test_two_web_processes_edit_one_note_through_redis(
    mode: str, settings: Settings, ann: ApiClient, bob: ApiClient
) -> None:
    if mode != "production":
        pytest.skip("one process in embedded mode")
    doc = await note(ann, "Hello")
    await share(ann, doc, "editor")
    other = create_app(settings)
    async with app_client(other) as second:
        await second.login("bob@example.com")
        anns = await join(ann, doc)
        await anns.edit(5, " there")
        # Bob's process opens its room from the shared state, not from the saved text: the
        # text does not appear twice.
        bobs = await join(second, doc)
        await until(lambda: str(bobs.text) == "Hello there")
        for letter in "xyz":
            await asyncio.gather(anns.edit(0, letter), bobs.edit(len(bobs.text), letter.upper()))
        await until(lambda: str(anns.text) == str(bobs.text) and len(str(anns.text)) == 17)
        # A PATCH through either process is refused while the other has the room open.
        await anns.close()
        refused = await ann.patch(f"/api/documents/{doc}", {"version": 1, "content": "x"})
        assert refused.status == 409
        await until(lambda: bobs.control("collab.saved") is not None)
        merged = str(bobs.text)
        await bobs.close()
        await until(lambda: doc not in other[ROOMS].rooms)
        assert (await ann.get_json(f"/api/documents/{doc}"))["content"] == merged


async def test_a_key_that_may_only_read_follows_the_note_and_never_edits_it(
    ann: ApiClient, make_client: Any
) -> None:
    doc = await note(ann, "Hello")
    created = await ann.post("/api/keys", {"name": "reader", "scopes": ["read"]})
    assert created.status == 201, await created.text()
    key = (await created.json())["key"]
    script = await make_client()
    socket = await script.client.ws_connect(
        f"/api/documents/{doc}/collab", headers={"Authorization": f"Bearer {key}"}
    )
    reader = await Client(socket).start()
    assert reader.hello["role"] == "viewer"  # the owner's note, through a read-only key
    # A re-check of everyone's access (as after any share change) does not widen it.
    await ann.client.app[ROOMS].recheck_all()
    await reader.edit(0, "Scripted ")
    await until(lambda: reader.control("error") is not None)
    assert reader.control("error")["data"]["code"] == "read_only"  # type: ignore[index]
    anns = await join(ann, doc)
    assert str(anns.text) == "Hello"
    await anns.edit(5, "!")
    # (The refused words stay only in the script's own copy.)
    await until(lambda: str(reader.text) == "Scripted Hello!")
    await asyncio.sleep(0.5)
    await until(lambda: anns.control("collab.saved") is not None)
    assert (await ann.get_json(f"/api/documents/{doc}"))["content"] == "Hello!"
    await reader.close()
    await anns.close()


async def test_an_edit_that_would_make_the_note_too_long_is_refused_and_not_kept(
    ann: ApiClient, bob: ApiClient
) -> None:
    from multinotes.api.documents import MAX_CONTENT

    # The limit of a REST save holds for edits made together too.
    assert room_module.MAX_CONTENT == MAX_CONTENT == 1_000_000
    doc = await note(ann, "a" * (MAX_CONTENT - 10))
    too_long = await ann.patch(f"/api/documents/{doc}", {"content": "a" * (MAX_CONTENT + 1)})
    assert too_long.status == 422
    await share(ann, doc, "editor")
    anns, bobs = await join(ann, doc), await join(bob, doc)
    await anns.edit(0, "Fits:")  # five characters: 5 short of the limit
    await until(lambda: len(str(bobs.text)) == MAX_CONTENT - 5)

    await bobs.edit(0, "Too long:")  # nine more than the note may hold
    await until(lambda: bobs.control("error") is not None)
    error = bobs.control("error")["data"]  # type: ignore[index]
    assert error["code"] == "too_large"
    assert "1,000,000 characters" in error["message"] and "content" in error["fields"]
    await asyncio.sleep(0.5)
    assert str(anns.text).startswith("Fits:a")  # never reached the others
    await anns.close()
    await bobs.close()
    await until(lambda: doc not in ann.client.app[ROOMS].rooms)
    saved = (await ann.get_json(f"/api/documents/{doc}"))["content"]
    assert saved == "Fits:" + "a" * (MAX_CONTENT - 10)
    # Nor kept in the room's stored log: the next person to open it gets the saved text.
    again = await join(ann, doc)
    assert str(again.text) == saved
    await again.close()
