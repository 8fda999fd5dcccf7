"""The operator's actions on announcements, audited; the API and the console both call them."""

from __future__ import annotations

from aiohttp import web

from multinotes import audit
from multinotes.announcements import service
from multinotes.announcements.models import Announcement
from multinotes.announcements.schemas import AnnouncementIn
from multinotes.identity.actor import require_admin
from multinotes.keys import DB
from multinotes.segments import check_exists


async def publish(request: web.Request, body: AnnouncementIn) -> Announcement:
    """Publish and audit (the API and the console's form); a segment naming a plan or an
    organisation that does not exist is a 422 naming it."""
    admin = require_admin(request)
    db = request.app[DB]
    await check_exists(db, body.segment)
    fields = body.model_dump(exclude={"segment"})
    row = await service.publish(db, admin.user_id, **fields, segment=body.segment)
    await audit.record(
        request.app,
        request,
        "announcement.published",
        target_type="announcement",
        target_id=row.id,
        details={
            "title": row.title,
            "severity": row.severity,
            "kind": row.kind,
            "segment": row.segment or {},
        },
    )
    return row


async def remove(request: web.Request, announcement_id: str) -> None:
    await service.remove(request.app[DB], announcement_id)
    await audit.record(
        request.app,
        request,
        "announcement.removed",
        target_type="announcement",
        target_id=announcement_id,
    )
