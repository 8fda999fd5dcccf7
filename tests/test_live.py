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
