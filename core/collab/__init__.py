"""Editing a note together (issue #20 item 4): a CRDT (Yjs in the browser, pycrdt here) per note
being edited, so edits from several people merge without conflicts.

- ``multinotes.collab.api``: the WebSocket ``GET /api/documents/{id}/collab``.
- ``multinotes.collab.room``: the rooms (one document per note being edited in this process),
  who may send what, and saving the merged text as a version per pause in editing.
- ``multinotes.collab.store``: the shared state every process opens a room from (Redis in
  production, this process in embedded mode).
- ``multinotes.collab.protocol``: the y-websocket frames.

While a room is open anywhere, a REST edit of the note's text (``PATCH /api/documents/{id}``
with ``content``, restoring a version) is refused with 409 ``editing_live``: the text being edited
is in the room, and the room's next save would otherwise overwrite it (or it the room's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from multinotes.collab.room import Rooms
from multinotes.collab.store import RedisStore, Store
from multinotes.errors import Conflict
from multinotes.keys import BUS, DB, REDIS, SETTINGS

ROOMS = web.AppKey("collab_rooms", Rooms)


class EditingLive(Conflict):
    code = "editing_live"
    default_message = (
        "This note is being edited live in the browser right now, so its text cannot be "
        "replaced through the API: your change was not saved. Edit it in the note's page, or "
        "try again once nobody has it open (title and folder changes still work)."
    )


async def refuse_while_editing(app: web.Application, note_id: str) -> None:
    """Raise 409 ``editing_live`` while someone edits the note together."""
    rooms = app.get(ROOMS)
    if rooms is not None and await rooms.editing(note_id):
        raise EditingLive(fields={"content": "Being edited live; not saved."})


def setup(app: web.Application) -> None:
    """The rooms (once the bus and the database exist), their saving loop, and their re-check
    of everyone's access whenever access may have shrunk (the presence channel's signal)."""
    from multinotes.live import presence

    async def collab_rooms(app: web.Application) -> AsyncIterator[None]:
        redis = app[REDIS]
        store = RedisStore(redis, app[SETTINGS].redis_prefix) if redis is not None else Store()
        rooms = Rooms(app[DB], app[BUS], store)
        app[ROOMS] = rooms

        async def access_changed(message: dict[str, Any]) -> None:
            # Published after any transaction that may take someone's access away (a share
            # revoked or narrowed, a note trashed or moved): who lost it is cut off now.
            if message.get("all") is True:
                await rooms.recheck_all()

        app[BUS].subscribe(presence.CHANNEL, access_changed)
        loop = asyncio.create_task(rooms.run(), name="collab-rooms")
        yield
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    async def end_rooms(app: web.Application) -> None:
        rooms = app.get(ROOMS)
        if rooms is not None:
            await rooms.close()

    app.cleanup_ctx.append(collab_rooms)
    app.on_shutdown.append(end_rooms)
