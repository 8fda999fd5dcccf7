"""Which wallet the signed-in person's chat pays from: their own, or an organisation's they
chose with the workspace switch (``/organisations/{id}/workspace``), kept in a cookie.

The cookie only names a choice; the membership is read again on every page load
(``current_workspace``), so a removed member is back in their personal space at once.
"""

from __future__ import annotations

from aiohttp import web

from multinotes.errors import NotFound
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.organisations import service
from multinotes.sharing import access

#: The cookie naming the organisation whose wallet the chat pays from (absent: personal).
WORKSPACE_COOKIE = "mn_workspace"


async def current_workspace(request: web.Request) -> dict[str, str] | None:
    """The organisation the signed-in user chose to work in, if they are still a member:
    ``{"id", "name"}``, or None for their personal space."""
    chosen = request.cookies.get(WORKSPACE_COOKIE, "")
    if not chosen:
        return None
    actor = require_user(request)
    db = request.app[DB]
    try:
        who = await access.organisation(db, actor.user_id, chosen)
    except NotFound:
        return None
    organisation = await service.get(db, who)
    return {"id": organisation.id, "name": organisation.name}
