"""A live WebSocket after its handshake (issue #20, scale): the process holds an idle tab with a
small protocol of its own (``multinotes.live.wire``), not aiohttp's request machinery, and that
protocol speaks RFC 6455 to any client: masked frames, fragments, ping/pong, close, and the
limits (a message above 4 KiB is 1009, a protocol error 1002, text that is not UTF-8 1007)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest

from multinotes.live import HUB, wire
from multinotes.live.wire import accept_key
from multinotes.testing import ApiClient
from tests.support import people
from tests.test_live import connect, grant, next_event

ann = people.ann
bob = people.bob


def masked(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """A client's frame (masked, as RFC 6455 requires of clients, unless told otherwise)."""
    head = bytes(((0x80 if fin else 0) | opcode,))
    size = len(payload)
    flag = 0x80 if mask else 0
    if size < 126:
        head += bytes((flag | size,))
    elif size < 1 << 16:
        head += bytes((flag | 126,)) + size.to_bytes(2, "big")
    else:
        head += bytes((flag | 127,)) + size.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawTab:
    """A WebSocket client written by hand over TCP, to send what aiohttp's client will not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, api: ApiClient, key: str) -> RawTab:
        url = api.client.make_url("/api/live")
        reader, writer = await asyncio.open_connection(url.host, url.port)
        nonce = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /api/live HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {nonce}\r\nAuthorization: Bearer {key}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert f"Sec-WebSocket-Accept: {accept_key(nonce)}".encode() in head
        tab = cls(reader, writer)
        assert json.loads((await tab.frame())[1])["type"] == "live.hello"
        return tab

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload)."""

        async def read() -> tuple[int, bytes]:
            first, second = await self.reader.readexactly(2)
            assert not second & 0x80, "a server's frames are not masked"
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            return first & 0x0F, await self.reader.readexactly(size)

        return await asyncio.wait_for(read(), 5)

    async def control(self) -> tuple[int, bytes]:
        """The next control frame (events before it skipped)."""
        while True:
            opcode, payload = await self.frame()
            if opcode != 0x1:
                return opcode, payload

    async def event(self, type_: str) -> dict[str, Any]:
        while True:
            opcode, payload = await self.frame()
            assert opcode == 0x1, (opcode, payload)
            event = json.loads(payload)
            if event["type"] == type_:
                return dict(event)

    async def closed_with(self) -> int:
        """The code of the server's close frame (skipping events before it), then EOF."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x8:
                assert await asyncio.wait_for(self.reader.read(), 5) == b""
                return int.from_bytes(payload[:2], "big")

    def send(self, data: bytes) -> None:
        self.writer.write(data)


async def a_key(api: ApiClient) -> str:
    created = await api.post("/api/keys", {"name": "raw", "scopes": ["read"]})
    return str((await created.json())["key"])


async def test_idle_tabs_hold_no_running_request_handler(bob: ApiClient) -> None:
    sockets = [await connect(bob) for _ in range(5)]
    for socket in sockets:
        await next_event(socket, "live.hello")
    await asyncio.sleep(0.2)
    assert bob.app[HUB].count(bob.user["id"]) == 5
    # aiohttp would hold one handler task (and its request, and every middleware's frame) per
    # open WebSocket for as long as it stays open: here no request is being handled at all.
    handling = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "RequestHandler._handle_request"
    ]
    assert handling == []
    for socket in sockets:
        await socket.close()


async def test_events_pings_and_a_message_in_fragments_go_through(
    ann: ApiClient, bob: ApiClient
) -> None:
    tab = await RawTab.open(bob, await a_key(bob))
    await grant(ann, bob.user["id"], 7)
    assert (await tab.event("wallet.changed"))["data"]["balance"] > 0

    tab.send(masked(0x9, b"are you there"))
    assert await tab.control() == (0xA, b"are you there")

    message = json.dumps({"type": "ping"}).encode()
    tab.send(masked(0x1, message[:5], fin=False))
    tab.send(masked(0x9, b"between"))  # a control frame may come between fragments
    tab.send(masked(0x0, message[5:9], fin=False) + masked(0x0, message[9:]))
    assert await tab.control() == (0xA, b"between")
    assert (await tab.event("pong"))["id"] is None

    tab.send(masked(0x8, (1000).to_bytes(2, "big")))
    assert await tab.closed_with() == 1000
    for _ in range(50):
        if bob.app[HUB].count(bob.user["id"]) == 0:
            break
        await asyncio.sleep(0.02)
    assert bob.app[HUB].count(bob.user["id"]) == 0


async def test_a_message_above_the_limit_ends_the_tab_with_1009(bob: ApiClient) -> None:
    tab = await RawTab.open(bob, await a_key(bob))
    tab.send(masked(0x1, b"x" * 5000))
    assert await tab.closed_with() == 1009

    tab = await RawTab.open(bob, await a_key(bob))
    tab.send(masked(0x1, b"x" * 3000, fin=False) + masked(0x0, b"x" * 3000))
    assert await tab.closed_with() == 1009


async def test_protocol_errors_end_the_tab(bob: ApiClient) -> None:
    key = await a_key(bob)
    for frame, code in (
        (masked(0x1, b'{"type": "ping"}', mask=False), 1002),  # clients must mask
        (masked(0x3, b""), 1002),  # no such opcode
        (masked(0x9, b"", fin=False), 1002),  # a control frame in fragments
        (masked(0x0, b"x"), 1002),  # a continuation of nothing
        (masked(0x1, b"\xff\xfe"), 1007),  # not UTF-8
    ):
        tab = await RawTab.open(bob, key)
        tab.send(frame)
        assert await tab.closed_with() == code, frame


async def test_a_tab_that_drops_its_connection_leaves_the_hub(bob: ApiClient) -> None:
    tab = await RawTab.open(bob, await a_key(bob))
    assert bob.app[HUB].count(bob.user["id"]) == 1
    tab.writer.close()
    for _ in range(50):
        if bob.app[HUB].count(bob.user["id"]) == 0:
            break
        await asyncio.sleep(0.02)
    assert bob.app[HUB].count(bob.user["id"]) == 0


async def test_where_the_connection_cannot_be_taken_over_aiohttps_websocket_serves_it(
    ann: ApiClient, bob: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process that serves TLS itself (not behind nginx): the same channel, the old way.
    monkeypatch.setattr(wire, "can_take_over", lambda transport: False)
    socket = await connect(bob)
    await next_event(socket, "live.hello")
    await grant(ann, bob.user["id"], 3)
    assert (await next_event(socket, "wallet.changed"))["data"]["balance"] > 0
    await socket.send_json({"type": "ping"})
    assert (await next_event(socket, "pong"))["id"] is None
    await socket.send_json({"type": "nonsense"})
    assert (await next_event(socket, "error"))["data"]["code"] == "unknown_type"
    await socket.close()
    for _ in range(50):
        if bob.app[HUB].count(bob.user["id"]) == 0:
            break
        await asyncio.sleep(0.02)
    assert bob.app[HUB].count(bob.user["id"]) == 0


class HeldHandler:
    """Answers a tab's messages only when let go, so they pile up as a flood would."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.answered: list[str] = []

    async def answer(self, connection: Any, text: str, send: Any) -> None:
        await self.go.wait()
        self.answered.append(text)

    async def lost(self, connection: Any) -> None:
        pass


class PausableTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        pass


async def test_a_flood_of_small_messages_in_one_read_waits_as_bytes_and_all_are_handled() -> None:
    """One read may hold thousands of tiny frames: the tab handles at most INBOX at a time,
    keeps the rest as the bytes they came in, stops reading meanwhile, and loses none."""
    from multinotes.live.hub import Connection

    handler = HeldHandler()
    tab = wire.LiveWire(Connection("someone"), handler, max_message=4096)
    transport = PausableTransport()
    tab.connection_made(transport)
    messages = [json.dumps({"type": "ping", "n": n}) for n in range(200)]

    tab.data_received(b"".join(masked(0x1, text.encode()) for text in messages))

    assert transport.paused
    assert len(tab._inbox or []) <= wire.INBOX
    handler.go.set()
    for _ in range(100):
        await asyncio.sleep(0)
        if len(handler.answered) == len(messages):
            break
    assert handler.answered == messages
    assert not transport.paused
