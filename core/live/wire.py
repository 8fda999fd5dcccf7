"""A live WebSocket after its handshake: a small protocol of its own instead of aiohttp's.

An idle tab is most of what a web process holds (issue #20: 10,000 of them within 300 MB), and
aiohttp keeps a lot alive for each WebSocket for as long as it is open: the request with its
parsed headers, the HTTP parser, the response, reader and writer, two tasks, and the handler's
coroutine under every middleware. So ``GET /api/live`` authenticates and checks the request the
usual way (middlewares, ``@endpoint``), then takes the TCP connection over: the socket is
duplicated into a transport driven by ``LiveWire`` (this module), aiohttp's own transport is
closed (the connection lives on in the duplicate) and its handler returns at once. What stays
per tab is the transport, this protocol and the hub's ``Connection``: no task while idle.

The protocol speaks RFC 6455 as a server without extensions (no compression): masked client
frames, fragments, ping/pong and close; messages above ``MAX_MESSAGE`` bytes end the connection
with 1009, protocol errors with 1002, text that is not UTF-8 with 1007.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from multinotes.live import hub as hub_module
from multinotes.live.hub import Connection, Event, fresh, text_frame

log = structlog.get_logger(__name__)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: An unmasked WebSocket ping frame with no payload (RFC 6455 section 5.5.2).
PING_FRAME = b"\x89\x00"
#: Messages read but not handled yet before the connection stops reading (backpressure).
INBOX = 16


class Handler(Protocol):
    """What a tab's messages go to (``api.Messages``): one text message at a time, and the
    end of the connection."""

    async def answer(
        self, connection: Connection, text: str, send: Callable[[dict[str, Any]], None]
    ) -> None: ...

    async def lost(self, connection: Connection) -> None: ...


#: Close tasks and message tasks under way (a reference keeps each alive until it is done).
RUNNING: set[asyncio.Task[Any]] = set()


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()  # noqa: S324


def handshake(key: str) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )


def close_frame(code: int, reason: bytes = b"") -> bytes:
    payload = code.to_bytes(2, "big") + reason[:123]
    return bytes((0x88, len(payload))) + payload


def _unmask(mask: bytes, payload: bytes) -> bytes:
    size = len(payload)
    if not size:
        return payload
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def _spawn(coroutine: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(coroutine)
    RUNNING.add(task)
    task.add_done_callback(RUNNING.discard)


class LiveWire(asyncio.Protocol):
    """One tab's WebSocket once the handshake is done. No task of its own while idle: a
    task runs only while messages from the client are being handled, one at a time."""

    __slots__ = (
        "_buffer",
        "_busy",
        "_fragments",
        "_handler",
        "_inbox",
        "closed",
        "connection",
        "max_message",
        "transport",
    )

    def __init__(
        self,
        connection: Connection,
        handler: Handler,
        max_message: int,
    ) -> None:
        self.connection = connection
        self.max_message = max_message
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._handler = handler
        self._buffer = b""
        self._fragments: list[bytes] | None = None
        self._inbox: list[str] | None = None
        self._busy = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.transport = None
        self._buffer = b""
        self._inbox = None
        _spawn(self._handler.lost(self.connection))

    def data_received(self, data: bytes) -> None:
        self.connection.heard = time.monotonic()
        self._parse(self._buffer + data if self._buffer else data)

    def _parse(self, buffer: bytes) -> None:
        """Handle the whole frames in ``buffer`` and keep the rest. A full inbox stops it
        too: one read may hold thousands of small frames, and they wait here as bytes (at
        most one read's worth, since reading is paused) until the handler catches up."""
        while buffer and not self.closed and not self._full():
            used = self._frame(buffer)
            if used == 0:
                break
            buffer = buffer[used:]
        self._buffer = buffer if not self.closed else b""

    def _full(self) -> bool:
        return self._inbox is not None and len(self._inbox) >= INBOX

    # -- writing ----------------------------------------------------------------------------

    def write(self, frame: bytes) -> bool:
        """Write a whole frame now, without waiting; False when the client has so much unread
        that it counts as too slow."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return True  # ending anyway
        if transport.get_write_buffer_size() > hub_module.SLOW_BYTES:
            return False
        transport.write(frame)
        return True

    def sink(self, event: dict[str, Any]) -> bool:
        if not fresh(self.connection, event):
            return True
        if not isinstance(event, Event):
            event = Event(event)  # presence, errors: one tab each
        return self.write(event.frame)

    def send(self, event: dict[str, Any]) -> None:
        """An answer to the client's own message (not counted against the slow limit)."""
        if self.transport is not None and not self.closed:
            self.transport.write(Event(event).frame)

    def ping(self) -> None:
        self.write(PING_FRAME)

    def close(self, code: int = 1000) -> None:
        """Send a close frame and hang up (the client reconnects unless the code says not to)."""
        if self.closed:
            return
        self.closed = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            reason = b"signed out" if code == hub_module.SIGNED_OUT else b""
            transport.write(close_frame(code, reason))
            transport.close()

    # -- reading ----------------------------------------------------------------------------

    def _frame(self, buffer: bytes) -> int:
        """Handle the frame at the start of ``buffer``: the bytes it took (0: incomplete)."""
        if len(buffer) < 2:
            return 0
        first, second = buffer[0], buffer[1]
        fin, opcode, size = first & 0x80, first & 0x0F, second & 0x7F
        if first & 0x70 or not second & 0x80:  # extension bits, or an unmasked client frame
            self.close(1002)
            return 0
        head = 2
        if size == 126:
            head = 4
            if len(buffer) < head:
                return 0
            size = int.from_bytes(buffer[2:4], "big")
        elif size == 127:
            head = 10
            if len(buffer) < head:
                return 0
            size = int.from_bytes(buffer[2:10], "big")
        if opcode >= 0x8 and (not fin or size > 125):
            self.close(1002)
            return 0
        if size > self.max_message:
            self.close(1009)
            return 0
        end = head + 4 + size
        if len(buffer) < end:
            return 0
        payload = _unmask(buffer[head : head + 4], buffer[head + 4 : end])
        if opcode == 0x9:  # ping: pong with the same payload
            if self.transport is not None:
                self.transport.write(bytes((0x8A, len(payload))) + payload)
        elif opcode == 0xA:  # pong: heard (data_received noted it)
            pass
        elif opcode == 0x8:  # close: answer it and hang up
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
            self.close(code if 1000 <= code < 5000 and code not in (1005, 1006, 1015) else 1000)
        elif opcode in (0x1, 0x2):
            if self._fragments is not None:
                self.close(1002)
                return 0
            if fin:
                self._message(opcode, payload)
            else:
                self._fragments = [bytes((opcode,)), payload]
        elif opcode == 0x0:
            fragments = self._fragments
            if fragments is None:
                self.close(1002)
                return 0
            fragments.append(payload)
            if sum(len(part) for part in fragments[1:]) > self.max_message:
                self.close(1009)
                return 0
            if fin:
                self._fragments = None
                self._message(fragments[0][0], b"".join(fragments[1:]))
        else:
            self.close(1002)
            return 0
        return end

    def _message(self, opcode: int, payload: bytes) -> None:
        if opcode != 0x1:
            return  # binary messages mean nothing here
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            self.close(1007)
            return
        if self._inbox is None:
            self._inbox = []
        self._inbox.append(text)
        if len(self._inbox) >= INBOX and self.transport is not None:
            self.transport.pause_reading()  # resumed once handled
        if not self._busy:
            self._busy = True
            _spawn(self._drain())

    async def _drain(self) -> None:
        try:
            while self._inbox and not self.closed:
                text = self._inbox.pop(0)
                try:
                    await self._handler.answer(self.connection, text, self.send)
                except Exception:
                    log.exception("live_message_failed")
                if not self._inbox:
                    self._inbox = None
                    if self._buffer and not self.closed:
                        self._parse(self._buffer)  # frames that came while the inbox was full
                    if not self._inbox and self.transport is not None and not self.closed:
                        self.transport.resume_reading()
        finally:
            self._busy = False


def can_take_over(transport: Any) -> bool:
    """Whether the connection is a plain socket this process can take over (not TLS)."""
    return (
        transport is not None
        and transport.get_extra_info("sslcontext") is None
        and transport.get_extra_info("socket") is not None
    )


async def take_over(
    transport: asyncio.Transport,
    key: str,
    connection: Connection,
    first: list[dict[str, Any]],
    handler: Handler,
    *,
    max_message: int,
    heartbeat: float,
) -> LiveWire:
    """Move an upgrade request's connection to a ``LiveWire``: answer the handshake, send
    ``first`` (hello and backlog) and deliver ``connection``'s events from then on. aiohttp's
    transport is closed; its handler should return at once."""
    transport.pause_reading()
    raw = transport.get_extra_info("socket")
    duplicate = socket.socket(fileno=os.dup(raw.fileno()))
    duplicate.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        # In an empty context: the transport's callbacks keep the context they were made in,
        # and the request's (its context variables hold the request) would live as long.
        _, wire = await asyncio.create_task(
            loop.connect_accepted_socket(
                lambda: LiveWire(connection, handler, max_message), sock=duplicate
            ),
            context=contextvars.Context(),
        )
    except BaseException:
        duplicate.close()
        raise
    transport.close()  # aiohttp's descriptor only: the connection lives on in the duplicate
    frames = [handshake(key)]
    for event in first:
        if fresh(connection, event):
            frames.append(text_frame(json.dumps(event, separators=(",", ":")).encode()))
    assert wire.transport is not None
    wire.transport.write(b"".join(frames))
    connection.heartbeat = heartbeat
    connection.heard = time.monotonic()
    connection.ping = wire.ping
    connection.attach(wire.sink, wire.close)
    return wire
