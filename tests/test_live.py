"""The live channel (issue #20): ``GET /api/live`` (WebSocket) and ``GET /api/live/sse``.

Who may connect (a session from this site's pages, or an API key), what arrives (the wallet's
new balance after an admin grant, a new notification after a share), to whom (only the owner),
resuming after a short disconnect, and in production two web processes sharing Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from multinotes.app import create_app
from multinotes.settings import Settings
from multinotes.testing import ApiClient, app_client
from tests.support import people

ann = people.ann
bob = people.bob
eve = people.eve


def origin(api: ApiClient) -> str:
    return str(api.client.make_url("/").origin())


async def connect(api: ApiClient, query: str = "", **headers: str) -> Any:
    # The wallet first: its creation (the trial credits) is a wallet.changed of its own.
    assert (await api.get("/api/wallet")).status == 200
    headers.setdefault("Origin", origin(api))
    return await api.client.ws_connect("/api/live" + query, headers=headers)


async def next_event(socket: Any, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next event of this type (others, e.g. a wallet.changed from a trial, are skipped)."""

    async def wait() -> dict[str, Any]:
        while True:
            event = await socket.receive_json()
            if event["type"] == type_:
                return dict(event)

    return await asyncio.wait_for(wait(), timeout)


async def grant(admin: ApiClient, user_id: str, amount: int) -> None:
    response = await admin.post(
        f"/api/admin/users/{user_id}/credits", {"amount": amount, "reason": "live test"}
    )
    assert response.status == 201, await response.text()


async def test_a_grant_reaches_the_owners_open_socket_and_nobody_elses(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
) -> None:
    bobs, eves = await connect(bob), await connect(eve)
    hello = await next_event(bobs, "live.hello")
    assert hello["id"] is None and hello["data"]["last_event_id"].isdigit()
    await next_event(eves, "live.hello")
    before = (await bob.get_json("/api/wallet"))["balance"]

    await grant(ann, bob.user["id"], 250)

    event = await next_event(bobs, "wallet.changed")
    assert int(event["id"]) > int(hello["data"]["last_event_id"])
    assert event["data"]["balance"] == before + 250
    assert event["data"]["available"] == event["data"]["balance"] - event["data"]["reserved"]
    assert set(event["data"]) == {"balance", "reserved", "available", "low_balance"}
    with pytest.raises(asyncio.TimeoutError):
        await next_event(eves, "wallet.changed", timeout=0.5)
    await bobs.close()
    await eves.close()


async def test_a_share_sends_the_recipient_a_notification_with_the_unread_count(
    ann: ApiClient, bob: ApiClient
) -> None:
    bobs, anns = await connect(bob), await connect(ann)
    created = await ann.post("/api/documents", {"title": "Plan <b>", "content": "x"})
    doc = (await created.json())["id"]
    shared = await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "bob@example.com"}
    )
    assert shared.status == 201, await shared.text()

    event = await next_event(bobs, "notification.created")
    assert event["data"]["title"] == "Plan <b>" and event["data"]["url"] == f"/notes/{doc}"
    assert event["data"]["kind"] == "share" and event["data"]["unread"] == 1
    with pytest.raises(asyncio.TimeoutError):
        await next_event(anns, "notification.created", timeout=0.5)
    await bobs.close()
    await anns.close()


async def test_without_a_session_or_key_the_socket_is_refused(api: ApiClient) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect("/api/live", headers={"Origin": origin(api)})
    assert refused.value.status == 401
    assert (await api.get("/api/live/sse")).status == 401


async def test_a_session_from_another_site_is_refused(bob: ApiClient) -> None:
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await bob.client.ws_connect("/api/live", headers=headers)
        assert refused.value.status == 403
    # A browser always sends Origin on a WebSocket: a cookie without one is not a page of ours.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await bob.client.ws_connect("/api/live", headers={"Origin": ""}, origin=None)
    assert refused.value.status == 403
    sse = await bob.get("/api/live/sse", headers={"Origin": "https://evil.example"})
    assert sse.status == 403
    assert (await sse.json())["error"]["code"] == "csrf_failed"


async def test_an_api_key_connects_without_an_origin(
    ann: ApiClient, bob: ApiClient, make_client: Any
) -> None:
    key = (await (await bob.post("/api/keys", {"name": "live", "scopes": ["read"]})).json())["key"]
    script: ApiClient = await make_client()
    socket = await script.client.ws_connect("/api/live", headers={"Authorization": f"Bearer {key}"})
    await next_event(socket, "live.hello")
    await grant(ann, bob.user["id"], 5)
    assert (await next_event(socket, "wallet.changed"))["data"]["balance"] > 0
    await socket.send_json({"type": "ping"})
    assert (await next_event(socket, "pong"))["id"] is None
    await socket.close()


async def test_both_channels_need_the_read_scope_of_a_key(bob: ApiClient, make_client: Any) -> None:
    notes = await bob.post("/api/keys", {"name": "writer", "scopes": ["notes"]})
    script: ApiClient = await make_client()
    headers = {"Authorization": f"Bearer {(await notes.json())['key']}"}
    for path in ("/api/live", "/api/live/sse"):
        refused = await script.client.get(path, headers=headers)
        assert refused.status == 403
        assert (await refused.json())["error"]["code"] == "insufficient_scope"
    reader = await bob.post("/api/keys", {"name": "reader", "scopes": ["read"]})
    headers = {"Authorization": f"Bearer {(await reader.json())['key']}"}
    stream = await script.client.get("/api/live/sse", headers=headers)
    assert stream.status == 200
    await read_sse(stream, "live.hello")
    stream.close()


async def test_a_plain_get_is_told_to_upgrade(bob: ApiClient) -> None:
    response = await bob.get("/api/live", headers={"Origin": origin(bob)})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "websocket_required"
    bad = await bob.get("/api/live?last_event_id=abc", headers={"Origin": origin(bob)})
    assert bad.status == 422 or bad.status == 400
    assert "last_event_id" in json.dumps(await bad.json())


async def test_a_tab_that_reconnects_gets_what_it_missed_in_order(
    ann: ApiClient, bob: ApiClient
) -> None:
    socket = await connect(bob)
    await grant(ann, bob.user["id"], 1)
    seen = (await next_event(socket, "wallet.changed"))["id"]
    await socket.close()

    await grant(ann, bob.user["id"], 2)
    await grant(ann, bob.user["id"], 3)
    balance = (await bob.get_json("/api/wallet"))["balance"]

    again = await connect(bob, f"?last_event_id={seen}")
    await next_event(again, "live.hello")
    first, second = (
        await next_event(again, "wallet.changed"),
        await next_event(again, "wallet.changed"),
    )
    assert [int(first["id"]), int(second["id"])] == [int(seen) + 1, int(seen) + 2]
    assert second["data"]["balance"] == balance == first["data"]["balance"] + 3
    await again.close()

    # An id the ring cannot continue from (it expired, or Redis lost the counter): the client is
    # told to reload what it shows rather than left with a gap.
    lost = await connect(bob, "?last_event_id=999999")
    await next_event(lost, "live.hello")
    assert (await next_event(lost, "live.reset")) == {"id": None, "type": "live.reset", "data": {}}
    await lost.close()


async def read_sse(response: aiohttp.ClientResponse, type_: str) -> dict[str, Any]:
    """The next server-sent event of this type, as {id, type, data}."""
    block: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            block[name] = value
            continue
        if block.get("event") == type_:
            return {"id": block.get("id"), "type": type_, "data": json.loads(block["data"])["data"]}
        block = {}


async def test_sse_carries_the_same_events_and_resumes_from_last_event_id(
    ann: ApiClient, bob: ApiClient
) -> None:
    await bob.get("/api/wallet")
    stream = await bob.client.get("/api/live/sse")
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    await read_sse(stream, "live.hello")
    await grant(ann, bob.user["id"], 7)
    event = await read_sse(stream, "wallet.changed")
    stream.close()

    await grant(ann, bob.user["id"], 8)
    resumed = await bob.client.get("/api/live/sse", headers={"Last-Event-ID": event["id"]})
    missed = await read_sse(resumed, "wallet.changed")
    assert int(missed["id"]) == int(event["id"]) + 1
    assert missed["data"]["balance"] == event["data"]["balance"] + 8
    resumed.close()


async def test_two_web_processes_sharing_redis_deliver_to_each_others_sockets(
    mode: str, settings: Settings, ann: ApiClient, bob: ApiClient
) -> None:
    if mode != "production":
        pytest.skip("one process in embedded mode")
    other = create_app(settings)
    async with app_client(other) as second:
        await second.login("bob@example.com")
        socket = await connect(second)
        await next_event(socket, "live.hello")
        await grant(ann, bob.user["id"], 11)  # through the first process
        event = await next_event(socket, "wallet.changed")
        assert event["data"]["balance"] == (await bob.get_json("/api/wallet"))["balance"]
        await socket.close()

        # The ring is in Redis: a tab resumes on the other process what this one sent.
        await grant(ann, bob.user["id"], 12)
        resumed = await connect(second, f"?last_event_id={event['id']}")
        missed = await next_event(resumed, "wallet.changed")
        assert int(missed["id"]) == int(event["id"]) + 1
        await resumed.close()


async def test_signing_out_ends_the_open_channels(
    bob: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multinotes.live import api as live_api

    monkeypatch.setattr(live_api, "RECHECK", 0.2)
    socket = await connect(bob)
    await next_event(socket, "live.hello")
    stream = await bob.client.get("/api/live/sse")
    await read_sse(stream, "live.hello")

    assert (await bob.post("/api/auth/logout")).status in (200, 204)

    closed = await asyncio.wait_for(socket.receive(), 5)
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == live_api.SIGNED_OUT
    assert await asyncio.wait_for(stream.content.read(), 5) is not None  # the stream ends
    assert stream.content.at_eof()


async def test_a_stopping_process_ends_its_open_sockets_at_once(
    settings: Settings, bob: ApiClient
) -> None:
    other = create_app(settings)
    async with app_client(other) as second:
        await second.login("bob@example.com")
        socket = await connect(second)
        await next_event(socket, "live.hello")
        started = asyncio.get_running_loop().time()
        await other.shutdown()  # what the runner does first on SIGTERM
        closed = await asyncio.wait_for(socket.receive(), 5)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert asyncio.get_running_loop().time() - started < 5


# -- long tasks that finish (issue #20 item 2) ---------------------------------------------------


async def test_a_finished_folder_export_reaches_its_owner_with_the_download(
    ann: ApiClient, bob: ApiClient
) -> None:
    anns, bobs = await connect(ann), await connect(bob)
    folder = (await (await ann.post("/api/folders", {"name": "Trip"})).json())["id"]
    made = await ann.post("/api/documents", {"title": "Day 1", "content": "x", "folder_id": folder})
    assert made.status == 201
    created = await ann.post("/api/exports", {"format": "markdown", "folder_id": folder})
    assert created.status == 202, await created.text()
    job = (await created.json())["id"]

    event = await next_event(anns, "task.finished", timeout=30)
    assert event["id"] is not None  # kept for a tab that reconnects
    assert event["data"] == {
        "kind": "note_export",
        "id": job,
        "status": "done",
        "title": "Your folder export is ready",
        "excerpt": "Trip.zip",
        "url": f"/exports/{job}",
        "download_url": f"/api/exports/{job}/download",
    }
    download = await ann.get(event["data"]["download_url"])
    assert download.status == 200 and download.headers["Content-Type"] == "application/zip"
    with pytest.raises(asyncio.TimeoutError):
        await next_event(bobs, "task.finished", timeout=0.5)
    await anns.close()
    await bobs.close()


async def test_a_failed_export_says_why(ann: ApiClient) -> None:
    from multinotes.keys import SETTINGS

    ann.client.server.app[SETTINGS].note_export_max_bytes = 1024
    socket = await connect(ann)
    folder = (await (await ann.post("/api/folders", {"name": "Big"})).json())["id"]
    noise = "".join(f"{n:08x} " for n in range(2000))
    await ann.post("/api/documents", {"title": "Part", "content": noise, "folder_id": folder})
    created = await ann.post("/api/exports", {"format": "markdown", "folder_id": folder})
    event = await next_event(socket, "task.finished", timeout=30)
    assert event["data"]["id"] == (await created.json())["id"]
    assert event["data"]["status"] == "failed" and event["data"]["download_url"] is None
    assert event["data"]["title"] == "Your folder export failed"
    assert "larger than the export limit" in event["data"]["excerpt"]
    await socket.close()


async def test_a_finished_data_export_reaches_its_owner(ann: ApiClient) -> None:
    socket = await connect(ann)
    started = await ann.post("/api/me/export")
    assert started.status == 202
    export = (await started.json())["id"]
    event = await next_event(socket, "task.finished", timeout=60)
    assert event["data"]["kind"] == "data_export" and event["data"]["id"] == export
    assert event["data"]["status"] == "done"
    assert event["data"]["url"] == "/account/privacy"
    assert event["data"]["download_url"] == f"/api/me/exports/{export}/download"
    assert (await ann.get(event["data"]["download_url"])).status == 200
    await socket.close()


async def progress_until_finished(socket: Any, task_id: str) -> list[dict[str, Any]]:
    """The ``task.progress`` events of one task up to its ``task.finished`` (which ends the
    list), each as its data."""

    async def read() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while True:
            event = await socket.receive_json()
            if event["type"] in ("task.progress", "task.finished"):
                assert event["id"] is not None  # kept for a tab that reconnects
            if event["type"] == "task.progress" and event["data"]["id"] == task_id:
                seen.append(event["data"])
            elif event["type"] == "task.finished" and event["data"]["id"] == task_id:
                seen.append({"finished": event["data"]["status"]})
                return seen

    return await asyncio.wait_for(read(), 60)


async def test_a_folder_exports_progress_reaches_its_owner_and_nobody_else(
    ann: ApiClient, bob: ApiClient
) -> None:
    anns, bobs = await connect(ann), await connect(bob)
    folder = (await (await ann.post("/api/folders", {"name": "Trip"})).json())["id"]
    for day in range(1, 6):
        made = await ann.post(
            "/api/documents", {"title": f"Day {day}", "content": "x", "folder_id": folder}
        )
        assert made.status == 201
    loop = asyncio.get_running_loop()
    started = loop.time()
    created = await ann.post("/api/exports", {"format": "markdown", "folder_id": folder})
    assert created.status == 202, await created.text()
    job = (await created.json())["id"]

    seen = await progress_until_finished(anns, job)
    took = loop.time() - started
    *progress, finished = seen
    assert finished == {"finished": "done"}
    # From nothing to every note, in order, counting the notes it writes.
    assert progress[0] == {
        "kind": "note_export",
        "id": job,
        "progress": {"done": 0, "total": 5},
        "status": "running",
    }
    assert progress[-1]["progress"] == {"done": 5, "total": 5}
    counts = [p["progress"]["done"] for p in progress]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    # At most twice a second, besides the start and the end.
    assert len(progress) <= 2 + 2 * took + 1
    # The same shape, and the same figures, as the export's own address.
    assert (await ann.get_json(f"/api/exports/{job}"))["progress"] == {"done": 5, "total": 5}
    with pytest.raises(asyncio.TimeoutError):
        await next_event(bobs, "task.progress", timeout=0.5)
    await anns.close()
    await bobs.close()


async def test_a_data_exports_progress_reaches_its_owner_and_nobody_else(
    ann: ApiClient, bob: ApiClient
) -> None:
    anns, bobs = await connect(ann), await connect(bob)
    started = await ann.post("/api/me/export")
    assert started.status == 202
    export = (await started.json())["id"]

    *progress, finished = await progress_until_finished(anns, export)
    assert finished == {"finished": "done"}
    assert progress[0]["kind"] == "data_export" and progress[0]["status"] == "running"
    assert progress[0]["progress"]["done"] == 0
    total = progress[0]["progress"]["total"]
    assert total > 10  # the tables, the files, the conversations
    counts = [p["progress"]["done"] for p in progress]
    assert counts == sorted(counts) and all(
        p["progress"]["total"] == total and p["id"] == export for p in progress
    )
    assert counts[-1] == total  # everything written, before the end is told
    with pytest.raises(asyncio.TimeoutError):
        await next_event(bobs, "task.progress", timeout=0.5)
    await anns.close()
    await bobs.close()


# -- lists that change when something is shared with you (issue #20 item 2) ----------------------


async def test_the_recipient_hears_a_share_made_changed_and_revoked_and_nobody_else(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
) -> None:
    bobs, eves, anns = await connect(bob), await connect(eve), await connect(ann)
    doc = (await (await ann.post("/api/documents", {"title": "Plan", "content": "x"})).json())["id"]
    created = await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "bob@example.com"}
    )
    share = (await created.json())["id"]
    added = await next_event(bobs, "shared.changed")
    assert added["id"] is not None  # resumable like any event of theirs
    assert added["data"] == {"object_type": "document", "object_id": doc, "change": "added"}

    assert (await ann.patch(f"/api/shares/{share}", {"role": "editor"})).status == 200
    assert (await next_event(bobs, "shared.changed"))["data"]["change"] == "changed"
    assert (await ann.delete(f"/api/shares/{share}")).status == 204
    assert (await next_event(bobs, "shared.changed"))["data"]["change"] == "removed"

    # A public link and a share to an address without an account reach nobody's list.
    await ann.post("/api/shares", {"object_type": "document", "object_id": doc, "public": True})
    await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "new@example.com"}
    )
    for socket in (bobs, eves, anns):
        with pytest.raises(asyncio.TimeoutError):
            await next_event(socket, "shared.changed", timeout=0.5)
        await socket.close()


# -- at scale: slow tabs, one message for many people (issue #20 scale) -------------------------


async def test_a_tab_that_stops_reading_is_dropped_without_holding_up_the_others(
    bob: ApiClient,
) -> None:
    from multinotes.live import HUB
    from multinotes.live.hub import SLOW

    reading, stuck = await connect(bob), await connect(bob)
    hello = await next_event(reading, "live.hello")
    await next_event(stuck, "live.hello")
    hub = bob.app[HUB]
    # ~19 MB for each tab: far more than the sockets' buffers hold for a tab that reads nothing.
    big = "x" * 64_000
    got: list[dict[str, Any]] = []

    async def read_all() -> None:
        while len(got) < 300:
            event = await reading.receive_json()
            if event["type"] == "bench.big":
                got.append(event)

    reader = asyncio.create_task(read_all())
    for number in range(300):
        await hub.publish(bob.user["id"], "bench.big", {"n": number, "pad": big})
        await asyncio.sleep(0)
    await asyncio.wait_for(reader, 30)
    assert [e["data"]["n"] for e in got] == list(range(300))  # in order, none lost

    # The stuck tab was closed as too slow ("try again later") and resumes where it stopped.
    last = hello["data"]["last_event_id"]
    while True:
        message = await asyncio.wait_for(stuck.receive(), 10)
        if message.type == aiohttp.WSMsgType.TEXT:
            last = json.loads(message.data)["id"] or last
            continue
        break
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == SLOW
    assert int(last) < int(got[-1]["id"])  # it had fallen behind
    resumed = await connect(bob, f"?last_event_id={last}")
    await next_event(resumed, "live.hello")
    # What it missed is still in the ring (the last 100 events), or it is told to reload.
    after = await asyncio.wait_for(resumed.receive_json(), 5)
    assert after["type"] == "live.reset" or int(after["id"]) == int(last) + 1, after
    await resumed.close()
    await reading.close()


async def test_one_event_for_an_organisations_members_is_one_message_on_the_bus(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
) -> None:
    from multinotes.keys import BUS
    from multinotes.live import HUB, publish_organisation
    from multinotes.live.hub import CHANNEL

    made = await ann.post("/api/orgs", {"name": "Acme"})
    assert made.status == 201, await made.text()
    organisation = (await made.json())["id"]
    anns, anns_other_tab, bobs = await connect(ann), await connect(ann), await connect(bob)
    for socket in (anns, anns_other_tab, bobs):
        await next_event(socket, "live.hello")
    bus = ann.app[BUS]
    sent: list[dict[str, Any]] = []
    publish = bus.publish

    async def counting(channel: str, message: dict[str, Any]) -> None:
        if channel == CHANNEL:
            sent.append(message)
        await publish(channel, message)

    bus.publish = counting  # type: ignore[method-assign]
    try:
        assert await publish_organisation(ann.app, organisation, "org.note", {"text": "hi"}) == 1
        # Two people (ann, and bob added beside her here), one message however many tabs.
        await ann.app[HUB].publish_many(
            [ann.user["id"], bob.user["id"]], "org.note", {"text": "both"}
        )
    finally:
        bus.publish = publish  # type: ignore[method-assign]
    assert len(sent) == 2
    for socket in (anns, anns_other_tab):
        first, second = await next_event(socket, "org.note"), await next_event(socket, "org.note")
        assert (first["data"], second["data"]) == ({"text": "hi"}, {"text": "both"})
        assert int(second["id"]) == int(first["id"]) + 1  # ann's own ids: she resumes as ever
    assert (await next_event(bobs, "org.note"))["data"] == {"text": "both"}
    # A tab of ann's that reconnects gets it again from her ring.
    resumed = await connect(ann, f"?last_event_id={int(first['id']) - 1}")
    assert (await next_event(resumed, "org.note"))["data"] == {"text": "hi"}
    for socket in (anns, anns_other_tab, bobs, resumed):
        await socket.close()
