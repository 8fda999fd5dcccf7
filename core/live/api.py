"""``GET /api/live`` (WebSocket) and ``GET /api/live/sse`` (server-sent events): the live channel.

Who may connect: a signed-in browser (its session cookie; the WebSocket's ``Origin`` must be
this site, since browsers let any page open a WebSocket with the cookies of another) or a
client with an API key (``Authorization: Bearer``, any scope: it only reads). Each event is
``{"id", "type", "data"}``; a client that reconnects with the last id it saw
(``?last_event_id=``, or SSE's ``Last-Event-ID``) gets what it missed first.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal

import structlog
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.db import utcnow
from multinotes.errors import (
    AppError,
    BadRequest,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    ServiceUnavailable,
)
from multinotes.http.endpoint import endpoint
from multinotes.http.middleware import _same_origin, session_cookie_name
from multinotes.identity import service as identity
from multinotes.identity.actor import Actor, require_user
from multinotes.keys import DB, SETTINGS
from multinotes.live import HUB, PRESENCE, wire
from multinotes.live import hub as hub_module
from multinotes.live.hub import Connection, Event, Hub, fresh
from multinotes.live.presence import OBJECT_ID, Presence, error_event
from multinotes.sharing import access as sharing_access

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

#: Seconds of silence from a WebSocket's client before it is pinged; one that does not answer
#: within half of it is closed (dead NAT, sleeping laptop), so a connection never outlives its
#: client by much more than this. The pings come from the hub's one timer (``Hub.tick``).
HEARTBEAT = 30.0
#: Seconds between SSE comments: they keep proxies from closing a quiet stream and find a
#: client that went away.
SSE_KEEPALIVE = 20.0
#: Seconds between looks at whether an SSE client that is shown on something went away.
GONE_CHECK = 1.0
#: A client sends only small control messages ({"type": "ping"}, presence).
MAX_MESSAGE = 4096
#: Seconds between re-checks of the credentials a connection was opened with: a session signed
#: out (or gone idle, or its user blocked) or a revoked key stops receiving within this.
RECHECK = 60.0
#: The WebSocket close code for "your credentials no longer hold": the client stops retrying.
SIGNED_OUT = hub_module.SIGNED_OUT
#: Events waiting for one slow SSE stream before it is dropped (it resumes on reconnect).
SSE_QUEUE = 64

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass events through at once
}


EVENT_ID = re.compile(r"[0-9]{1,18}")


class LiveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    last_event_id: str | None = Field(
        default=None,
        pattern=f"^{EVENT_ID.pattern}$",
        description="The id of the last event this client saw: what came after it is sent first.",
    )


def _check_origin(request: web.Request, actor: Actor, *, required: bool) -> None:
    """A cookie-authenticated connection must come from a page of this site."""
    if actor.via != "session":
        return
    origin = request.headers.get("Origin")
    if origin is None and not required:
        return  # a same-origin EventSource sends none; another site's page cannot read it
    if origin is None or not _same_origin(request, origin, request.app[SETTINGS]):
        raise Forbidden("Cross-site connection refused.", code="csrf_failed")


StillAllowed = Callable[[], Awaitable[bool]]


def _still_allowed(request: web.Request, actor: Actor) -> StillAllowed:
    """A check that the credentials this connection was opened with still hold; it does not
    count as use (an open tab must not keep an idle session alive)."""
    db, settings = request.app[DB], request.app[SETTINGS]
    if actor.via == "api_key":
        key = request.headers.get("Authorization", "")[7:].strip()

        async def key_holds() -> bool:
            resolved = await identity.resolve_api_key(db, identity.token_hash(key))
            if resolved is None:
                return False
            try:
                identity.check_key_expiry(resolved, utcnow())
            except AppError:
                return False
            return True

        return key_holds
    token = request.cookies.get(session_cookie_name(settings), "")
    idle = timedelta(minutes=settings.session_idle_minutes)

    async def session_holds() -> bool:
        return await identity.session_still_signs_in(db, token, idle_timeout=idle)

    return session_holds


def _open(hub: Hub, actor: Actor) -> Connection:
    connection = hub.open(actor.user_id)
    if connection is None:
        raise RateLimited(
            "Too many live connections are open for this account. Close a tab and try again.",
            code="too_many_connections",
            retry_after=10,
        )
    return connection


async def _first_events(hub: Hub, connection: Connection, last: str | None) -> list[dict[str, Any]]:
    """``live.hello`` with the latest id, then what was missed since ``last`` (if given)."""
    current = await hub.ring.current(connection.user_id)
    hello = {
        "id": None,
        "type": "live.hello",
        # ``connection`` names this stream for POST /api/live/presence (SSE cannot send).
        "data": {"last_event_id": str(current), "connection": connection.token},
    }
    if last is None:
        connection.last_id = current
        return [hello]
    return [hello, *await hub.backlog(connection, int(last))]


@routes.get("/api/live", name="api_live")
@endpoint(access="user", query=LiveQuery, tags=["live"], errors=[400, 403, 429])
async def live_socket(request: web.Request, query: LiveQuery) -> web.StreamResponse:
    """The live channel as a WebSocket: JSON events `{id, type, data}` for you
    (`wallet.changed`, `notification.created`; `live.hello` first, `live.reset` when events
    since `last_event_id` are lost). Send `{"type": "ping"}` for a `pong`, and
    `presence.join` / `presence.here` / `presence.typing` / `presence.leave` with
    `object_type` and `object_id` to be shown on a note, folder or conversation and get
    `presence.changed` (docs/live.md)."""
    actor = require_user(request)
    _check_origin(request, actor, required=True)
    # No per-message compression: events are small, and each compressing socket would hold a
    # zlib state of its own (hundreds of KB) for as long as it stays open. Pings come from the
    # hub's one timer (``Hub.tick``), so the socket answers the client's pings itself.
    socket = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=MAX_MESSAGE)
    if not socket.can_prepare(request).ok:
        raise BadRequest(
            "This is a WebSocket: connect with 'Upgrade: websocket', or use /api/live/sse.",
            code="websocket_required",
        )
    hub, presence = request.app[HUB], request.app[PRESENCE]
    messages = Messages(hub, presence)
    connection = _open(hub, actor)
    connection.still_allowed = _still_allowed(request, actor)
    connection.recheck = RECHECK
    transport = request.transport
    if wire.can_take_over(transport):
        # The lean way (``multinotes.live.wire``): this handler returns at once and the tab's
        # connection is held by a small protocol, not by aiohttp's request machinery.
        try:
            first = await _first_events(hub, connection, query.last_event_id)
            assert transport is not None
            await wire.take_over(
                transport,
                request.headers["Sec-WebSocket-Key"].strip(),
                connection,
                first,
                messages,
                max_message=MAX_MESSAGE,
                heartbeat=HEARTBEAT,
            )
        except BaseException:
            await messages.lost(connection)
            raise
        return TakenOver()
    try:  # a TLS connection served by aiohttp itself: aiohttp's WebSocket
        await socket.prepare(request)
        for event in await _first_events(hub, connection, query.last_event_id):
            if fresh(connection, event):
                await socket.send_json(event)
        if transport is None:
            return socket
        connection.heartbeat = HEARTBEAT
        connection.heard = time.monotonic()
        connection.ping = lambda: _write_frame(socket, transport, PING_FRAME)
        connection.attach(_socket_sink(socket, connection, transport), _closer(socket))
        await _receive(socket, connection, messages, transport)
    finally:
        await messages.lost(connection)
        await socket.close()
    return socket


class TakenOver(web.StreamResponse):
    """What the handler of a WebSocket taken over by ``LiveWire`` returns: aiohttp's transport
    is closed already, so there is nothing to send (the handshake went on the new one)."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None

    @property
    def keep_alive(self) -> bool:
        return False


class Messages:
    """What a tab sends: ``ping`` and the presence messages (one at a time per tab)."""

    __slots__ = ("hub", "presence")

    def __init__(self, hub: Hub, presence: Presence) -> None:
        self.hub = hub
        self.presence = presence

    async def answer(
        self, connection: Connection, text: str, send: Callable[[dict[str, Any]], None]
    ) -> None:
        try:
            body = json.loads(text)
            kind = body.get("type")
        except (ValueError, AttributeError):
            body, kind = {}, None
        if kind == "ping":
            await self.presence.here(connection)
            send({"id": None, "type": "pong", "data": {}})
        elif isinstance(kind, str) and kind.startswith("presence."):
            try:
                await self.presence.handle(connection, body)
            except AppError as error:
                send(error_event(kind, error))
            except Exception:  # Redis or the database away: the connection stays
                log.exception("presence_message_failed", message_type=kind)
                send(error_event(kind, ServiceUnavailable()))
        elif kind is not None:
            send(
                error_event(
                    str(kind)[:40],
                    BadRequest(
                        "Unknown message type.",
                        code="unknown_type",
                        fields={
                            "type": "One of: ping, presence.join, presence.here, "
                            "presence.typing, presence.leave."
                        },
                    ),
                )
            )

    async def lost(self, connection: Connection) -> None:
        """The tab is gone: off the hub, and off every object it was shown on (shielded, so
        the others see it leave at once even when this is being cancelled)."""
        self.hub.close(connection)
        await _leave_everything(self.presence, connection)


#: An unmasked WebSocket ping frame with no payload (RFC 6455 section 5.5.2).
PING_FRAME = wire.PING_FRAME
#: Close tasks under way (a reference keeps each alive until it is done).
_CLOSING: set[asyncio.Task[Any]] = set()


async def _leave_everything(presence: Presence, connection: Connection) -> None:
    """The tab's presence ends with its connection, even when the handler is being cancelled
    (the client's TCP connection dropped mid-way, or the process is stopping): shielded, so
    the others see it leave at once rather than when its entries expire."""
    task = asyncio.ensure_future(presence.closed(connection))
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)
    await asyncio.shield(task)


def _write_frame(socket: web.WebSocketResponse, transport: Any, frame: bytes) -> bool:
    """Write a whole frame to the socket now, without waiting; False when the client has so
    much unread that it counts as too slow."""
    if socket.closed or transport.is_closing():
        return True  # ending anyway: its handler cleans up
    if transport.get_write_buffer_size() > hub_module.SLOW_BYTES:
        return False
    transport.write(frame)
    return True


def _socket_sink(
    socket: web.WebSocketResponse, connection: Connection, transport: Any
) -> Callable[[dict[str, Any]], bool]:
    def sink(event: dict[str, Any]) -> bool:
        if not fresh(connection, event):
            return True
        if not isinstance(event, Event):
            event = Event(event)  # presence, errors: one tab each
        return _write_frame(socket, transport, event.frame)

    return sink


def _closer(socket: web.WebSocketResponse) -> Callable[[int], None]:
    def close(code: int) -> None:
        message = b"signed out" if code == SIGNED_OUT else b""
        task = asyncio.ensure_future(socket.close(code=code, message=message))
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    return close


async def _receive(
    socket: web.WebSocketResponse, connection: Connection, messages: Messages, transport: Any
) -> None:
    """Answer the client's messages until either side ends (the hub ends the connection when
    its credentials stop holding, it stops answering pings, or it cannot keep up)."""

    def send(event: dict[str, Any]) -> None:
        if not socket.closed and not transport.is_closing():
            transport.write(Event(event).frame)

    async for message in socket:
        connection.heard = time.monotonic()
        if message.type == WSMsgType.PING:
            await socket.pong(message.data)
        elif message.type == WSMsgType.TEXT:
            await messages.answer(connection, message.data, send)


@routes.get("/api/live/sse", name="api_live_sse")
@endpoint(
    access="user",
    query=LiveQuery,
    tags=["live"],
    errors=[403, 429],
    content_type="text/event-stream",
)
async def live_events(request: web.Request, query: LiveQuery) -> web.StreamResponse:
    """The live channel as server-sent events, for where WebSockets are blocked: the same
    events (`event:` is the type, `data:` its JSON, `id:` its id). Resumes from
    `Last-Event-ID` (or `?last_event_id=`)."""
    actor = require_user(request)
    _check_origin(request, actor, required=False)
    # EventSource sends back the last id it got; one that is not ours is ignored, not an error.
    header = (request.headers.get("Last-Event-ID") or "").strip()
    last = header if EVENT_ID.fullmatch(header) else query.last_event_id
    hub, presence = request.app[HUB], request.app[PRESENCE]
    still_allowed = _still_allowed(request, actor)
    connection = _open(hub, actor)
    presence.register(connection)
    # A stream writes through aiohttp's (chunked) writer, so its events wait in a small queue
    # for this handler; None in it is the end.
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SSE_QUEUE)
    response = web.StreamResponse(headers=SSE_HEADERS)
    checked = time.monotonic()
    try:
        await response.prepare(request)
        for event in await _first_events(hub, connection, last):
            if fresh(connection, event):
                await response.write(_sse(event))
        connection.attach(_queue_sink(queue), _queue_closer(queue))
        written = time.monotonic()
        while True:
            if time.monotonic() - checked >= RECHECK:
                if not await still_allowed():
                    break
                checked = time.monotonic()
            if request.transport is None or request.transport.is_closing():
                break  # the client went away (noticed between writes: see below)
            if time.monotonic() - written >= SSE_KEEPALIVE:
                await response.write(b": keep-alive\n\n")
                written = time.monotonic()
            now = time.monotonic()
            wait = max(0.0, min(SSE_KEEPALIVE - (now - written), RECHECK - (now - checked)))
            if presence.following(connection):
                # A stream shown on something leaves it within a second of the tab going,
                # not at the next keep-alive.
                wait = min(wait, GONE_CHECK)
            try:
                queued = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                continue
            if queued is None:
                break
            if fresh(connection, queued):
                await response.write(_sse(queued))
                written = time.monotonic()
    except (ConnectionResetError, RuntimeError):
        pass  # the client went away
    finally:
        hub.close(connection)
        await _leave_everything(presence, connection)
    return response


def _queue_sink(queue: asyncio.Queue[dict[str, Any] | None]) -> Callable[[dict[str, Any]], bool]:
    def sink(event: dict[str, Any]) -> bool:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    return sink


def _queue_closer(queue: asyncio.Queue[dict[str, Any] | None]) -> Callable[[int], None]:
    def close(_code: int) -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    return close


class PresenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str = Field(
        pattern="^[0-9a-f]{24}$",
        description="Your SSE stream: the `connection` of its `live.hello`.",
    )
    type: Literal["presence.join", "presence.here", "presence.typing", "presence.leave"]
    object_type: Literal["document", "folder", "conversation"] | None = Field(
        default=None, description="With join, typing (document only) and leave."
    )
    object_id: str | None = Field(
        default=None, pattern=f"^{OBJECT_ID.pattern}$", description="With object_type."
    )


@routes.post("/api/live/presence", name="api_live_presence")
@endpoint(access="user", body=PresenceIn, status=202, tags=["live"], errors=[404, 422, 429])
async def live_presence(request: web.Request, body: PresenceIn) -> dict[str, Any]:
    """Presence for a client on `GET /api/live/sse`, which cannot send: the same messages as on
    the WebSocket (`presence.join`, `presence.here` every 5 s, `presence.typing`,
    `presence.leave`), naming the stream. What you may not read is a 404 here; the stream gets
    `presence.changed` as a WebSocket would (docs/live.md)."""
    actor = require_user(request)
    message = body.model_dump(exclude_none=True)
    if body.type != "presence.here":
        missing = {
            name: "Needed with " + body.type
            for name in ("object_type", "object_id")
            if getattr(body, name) is None
        }
        if missing:
            raise Invalid(fields=missing)
    if body.type in ("presence.join", "presence.typing"):
        object_type, object_id = str(body.object_type), str(body.object_id)
        role = await sharing_access.role_of(request.app[DB], actor.user_id, object_type, object_id)
        if role is None:
            raise NotFound(sharing_access.NOT_FOUND[object_type])
    del message["connection"]
    await request.app[PRESENCE].relay(actor.user_id, body.connection, message)
    return {"accepted": True}


def _sse(event: dict[str, Any]) -> bytes:
    head = f"id: {event['id']}\n" if event.get("id") is not None else ""
    data = json.dumps({"id": event.get("id"), "data": event.get("data")}, separators=(",", ":"))
    return f"{head}event: {event['type']}\ndata: {data}\n\n".encode()
