"""The operator's actions on announcements, audited; the API and the console both call them."""

from __future__ import annotations

from aiohttp import web

from multinotes import audit
from multinotes.announcements import service
from multinotes.announcements.models import Announcement
from multinotes.announcements.schemas import AnnouncementIn
from multinotes.identity.actor import require_admin
from multinotes.keys import DB


async def publish(request: web.Request, body: AnnouncementIn) -> Announcement:
    """Publish and audit (the API and the console's form)."""
    admin = require_admin(request)
    row = await service.publish(request.app[DB], admin.user_id, **body.model_dump())
    await audit.record(
        request.app,
        request,
        "announcement.published",
        target_type="announcement",
        target_id=row.id,
        details={"title": row.title, "severity": row.severity},
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
