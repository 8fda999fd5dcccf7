"""``GET /api/documents/{id}/collab``: the WebSocket a note is edited together on.

Who may connect: whoever may read the note (its owner, people it is shared with, directly or
through a folder), signed in by session (the ``Origin`` must be this site, as for /api/live) or
by an API key. Viewers, and keys without the ``notes`` scope, receive every edit live and may show
their cursor, but every update they send is refused. Losing access (a share revoked, the note
trashed or moved out of a shared folder) closes the connection at once with code 4403.

Frames: binary ones are the y-websocket protocol (``multinotes.collab.protocol``); text ones are
JSON control messages from the server (docs/live.md).
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import WSMsgType, web
from sqlalchemy import select

from multinotes.collab import ROOMS
from multinotes.collab.room import Peer, Role
from multinotes.errors import BadRequest, NotFound
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import Actor, require_user
from multinotes.identity.models import User
from multinotes.keys import DB
from multinotes.live.api import HEARTBEAT, RECHECK, SIGNED_OUT, _check_origin, _still_allowed
from multinotes.sharing import access

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

#: The largest frame a client may send: a whole note's text as its first update, with room.
MAX_FRAME = 4 * 1024 * 1024


def _role(actor: Actor, role: Role) -> Role:
    """A key that may not change notes edits nothing, whatever its owner may."""
    if actor.via == "api_key" and role != "viewer" and "notes" not in (actor.scopes or ()):
        return "viewer"
    return role


@routes.get("/api/documents/{id}/collab", name="api_document_collab")
@endpoint(access="user", tags=["notes"], errors=[400, 403, 404])
async def collab_socket(request: web.Request) -> web.StreamResponse:
    """Edit a note together: a WebSocket speaking the Yjs sync and awareness protocol
    (y-websocket framing, binary frames) on the note's text. The server sends `collab.hello`
    (JSON: your role, the document's epoch and version) and sync step 1 first. Viewers get
    every edit but their updates are refused (`error` `read_only`); the merged text is saved as
    a new version after a pause in editing (`collab.saved`). Closes with 4403 when your access
    ends, 4404 when the note is deleted (docs/live.md)."""
    actor = require_user(request)
    note_id = request.match_info["id"]
    db = request.app[DB]
    role = await access.role_of(db, actor.user_id, "document", note_id)
    if role is None:
        raise NotFound(access.NOT_FOUND["document"])
    # After the access check: what another site's page may not open is a 404 like any other.
    _check_origin(request, actor, required=True)
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_FRAME)
    if not socket.can_prepare(request).ok:
        raise BadRequest(
            "This is a WebSocket: connect with 'Upgrade: websocket'.", code="websocket_required"
        )
    async with db.read() as session:
        name = await session.scalar(select(User.name).where(User.id == actor.user_id))
    peer = Peer(actor.user_id, str(name or ""), _role(actor, role))
    peer.read_only = peer.role == "viewer" and role != "viewer"
    rooms = request.app[ROOMS]
    try:
        room = await rooms.enter(note_id, peer)
    except NotFound:
        raise NotFound(access.NOT_FOUND["document"]) from None
    still_allowed = _still_allowed(request, actor)
    try:
        await socket.prepare(request)

        async def send() -> None:
            while True:
                item = await peer.outbox.get()
                if item is None:
                    return
                if isinstance(item, tuple):
                    code, reason = item
                    await socket.close(code=code, message=reason.encode()[:120])
                    return
                if isinstance(item, bytes):
                    await socket.send_bytes(item)
                else:
                    await socket.send_json(item)

        async def receive() -> None:
            async for message in socket:
                if message.type == WSMsgType.BINARY:
                    await room.receive(peer, message.data)
                elif message.type == WSMsgType.TEXT:
                    await room.control(peer, message.data)

        async def recheck() -> None:
            while True:
                await asyncio.sleep(RECHECK)
                if not await still_allowed():
                    peer.end(SIGNED_OUT, "signed out")
                    return

        # The re-check only queues a close; sending it ends the connection.
        checker = asyncio.create_task(recheck())
        tasks = {asyncio.create_task(send()), asyncio.create_task(receive())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*tasks, checker):
                task.cancel()
            await asyncio.gather(*tasks, checker, return_exceptions=True)
    finally:
        await rooms.leave(room, peer)
        await socket.close()
    return socket
