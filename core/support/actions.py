"""The operator's actions on a ticket, audited; the API and the console pages both call them."""

from __future__ import annotations

from aiohttp import web

from multinotes import audit
from multinotes.identity.actor import require_admin
from multinotes.keys import DB
from multinotes.support import service
from multinotes.support.schemas import TicketPatch


async def staff_reply(request: web.Request, ticket_id: str, body: str, internal: bool) -> None:
    """Shared by the API and the console page: write the reply or note, then audit it."""
    staff = require_admin(request)
    message_id = await service.staff_reply(
        request.app[DB], staff.user_id, ticket_id, body, internal=internal
    )
    await audit.record(
        request.app,
        request,
        "support.note_added" if internal else "support.replied",
        target_type="ticket",
        target_id=ticket_id,
        details={"message_id": message_id},
    )


async def staff_update(request: web.Request, ticket_id: str, patch: TicketPatch) -> None:
    """Shared by the API and the console page: change status and/or assignee, audited."""
    db = request.app[DB]
    if "assignee_id" in patch.model_fields_set:
        assignee = patch.assignee_id or None
        await service.assign(db, ticket_id, assignee)
        await audit.record(
            request.app,
            request,
            "support.assigned",
            target_type="ticket",
            target_id=ticket_id,
            details={"assignee_id": assignee},
        )
    if patch.status is not None:
        await service.set_status(db, ticket_id, patch.status)
        await audit.record(
            request.app,
            request,
            "support.status_changed",
            target_type="ticket",
            target_id=ticket_id,
            details={"status": patch.status},
        )
