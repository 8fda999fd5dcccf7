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
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.db import utcnow
from multinotes.errors import AppError, BadRequest, Forbidden, RateLimited
from multinotes.http.endpoint import endpoint
from multinotes.http.middleware import _same_origin, session_cookie_name
from multinotes.identity import service as identity
from multinotes.identity.actor import Actor, require_user
from multinotes.keys import DB, SETTINGS
from multinotes.live import HUB
from multinotes.live.hub import Connection, Hub, fresh

routes = web.RouteTableDef()

#: Seconds between WebSocket pings; a peer that misses a pong is closed (dead NAT, sleeping
#: laptop), so a connection never outlives its client by much more than this.
HEARTBEAT = 30.0
#: Seconds between SSE comments: they keep proxies from closing a quiet stream and find a
#: client that went away.
SSE_KEEPALIVE = 20.0
#: A client sends only small control messages ({"type": "ping"}).
MAX_MESSAGE = 4096
#: Seconds between re-checks of the credentials a connection was opened with: a session signed
#: out (or gone idle, or its user blocked) or a revoked key stops receiving within this.
RECHECK = 60.0
#: The WebSocket close code for "your credentials no longer hold": the client stops retrying.
SIGNED_OUT = 4401

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
    hello = {"id": None, "type": "live.hello", "data": {"last_event_id": str(current)}}
    if last is None:
        connection.last_id = current
        return [hello]
    return [hello, *await hub.backlog(connection, int(last))]


@routes.get("/api/live", name="api_live")
@endpoint(access="user", query=LiveQuery, tags=["live"], errors=[400, 403, 429])
async def live_socket(request: web.Request, query: LiveQuery) -> web.StreamResponse:
    """The live channel as a WebSocket: JSON events `{id, type, data}` for you
    (`wallet.changed`, `notification.created`; `live.hello` first, `live.reset` when events
    since `last_event_id` are lost). Send `{"type": "ping"}` for a `pong`."""
    actor = require_user(request)
    _check_origin(request, actor, required=True)
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE)
    if not socket.can_prepare(request).ok:
        raise BadRequest(
            "This is a WebSocket: connect with 'Upgrade: websocket', or use /api/live/sse.",
            code="websocket_required",
        )
    hub = request.app[HUB]
    still_allowed = _still_allowed(request, actor)
    connection = _open(hub, actor)
    try:
        await socket.prepare(request)
        for event in await _first_events(hub, connection, query.last_event_id):
            if fresh(connection, event):
                await socket.send_json(event)
        await _pump(socket, connection, still_allowed)
    finally:
        hub.close(connection)
        await socket.close()
    return socket


async def _pump(
    socket: web.WebSocketResponse, connection: Connection, still_allowed: StillAllowed
) -> None:
    """Send queued events and answer the client's pings until either side ends or the
    credentials stop holding."""

    async def send() -> None:
        while (event := await connection.queue.get()) is not None:
            if fresh(connection, event):
                await socket.send_json(event)

    async def receive() -> None:
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                kind = json.loads(message.data).get("type")
            except (ValueError, AttributeError):
                kind = None
            if kind == "ping":
                await socket.send_json({"id": None, "type": "pong", "data": {}})

    async def recheck() -> None:
        while True:
            await asyncio.sleep(RECHECK)
            if not await still_allowed():
                await socket.close(code=SIGNED_OUT, message=b"signed out")
                return

    tasks = {
        asyncio.create_task(send()),
        asyncio.create_task(receive()),
        asyncio.create_task(recheck()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
    hub = request.app[HUB]
    still_allowed = _still_allowed(request, actor)
    connection = _open(hub, actor)
    response = web.StreamResponse(headers=SSE_HEADERS)
    checked = time.monotonic()
    try:
        await response.prepare(request)
        for event in await _first_events(hub, connection, last):
            if fresh(connection, event):
                await response.write(_sse(event))
        while True:
            if time.monotonic() - checked >= RECHECK:
                if not await still_allowed():
                    break
                checked = time.monotonic()
            try:
                wait = min(SSE_KEEPALIVE, max(0.0, RECHECK - (time.monotonic() - checked)))
                queued = await asyncio.wait_for(connection.queue.get(), wait)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if queued is None:
                break
            if fresh(connection, queued):
                await response.write(_sse(queued))
    except (ConnectionResetError, RuntimeError):
        pass  # the client went away
    finally:
        hub.close(connection)
    return response


def _sse(event: dict[str, Any]) -> bytes:
    head = f"id: {event['id']}\n" if event.get("id") is not None else ""
    data = json.dumps({"id": event.get("id"), "data": event.get("data")}, separators=(",", ":"))
    return f"{head}event: {event['type']}\ndata: {data}\n\n".encode()
