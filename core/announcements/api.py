"""Announcements' JSON API: ``/api/announcements`` (what is live for you, and your banners and
in-app messages) and ``POST /api/announcements/{id}/dismiss``; the operator's
``/api/admin/announcements`` (with each one's kind and segment)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from multinotes.announcements import service
from multinotes.announcements.actions import publish, remove
from multinotes.announcements.models import Announcement
from multinotes.announcements.schemas import (
    AdminAnnouncementList,
    AdminAnnouncementOut,
    AnnouncementIn,
    AnnouncementList,
)
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.markdown import render_markdown

routes = web.RouteTableDef()
TAGS = ["announcements"]


class LiveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    banners: bool = False


def announcement_out(row: Announcement) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "body": row.body,
        "html": render_markdown(row.body),
        "severity": row.severity,
        "kind": row.kind,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat() if row.ends_at else None,
    }


def admin_announcement_out(row: Announcement) -> dict[str, Any]:
    return {**announcement_out(row), "segment": service.segment_of(row).model_dump(mode="json")}


@routes.get("/api/announcements", name="api_announcements")
@endpoint(access="user", query=LiveQuery, response=AnnouncementList, tags=TAGS)
async def list_live(request: web.Request, query: LiveQuery) -> dict[str, Any]:
    """Announcements showing now to you (everyone's, and those for a segment you are in); with
    `banners=true` only those you have not dismissed (banners and in-app messages alike: see
    each one's `kind`)."""
    actor = require_user(request)
    db = request.app[DB]
    if query.banners:
        rows = await service.banners_for(db, actor.user_id)
    else:
        rows = await service.live(db, actor.user_id)
    return {"announcements": [announcement_out(r) for r in rows]}


@routes.post("/api/announcements/{id}/dismiss", name="api_announcement_dismiss")
@endpoint(access="user", status=204, tags=TAGS, errors=[404])
async def dismiss(request: web.Request) -> None:
    """Hide this announcement's banner for you, everywhere (again: no error)."""
    actor = require_user(request)
    await service.dismiss(request.app[DB], actor.user_id, request.match_info["id"])


@routes.get("/api/admin/announcements", name="api_admin_announcements")
@endpoint(access="admin", response=AdminAnnouncementList, tags=TAGS)
async def admin_list(request: web.Request) -> dict[str, Any]:
    """Every announcement, past, live and scheduled, the latest start first."""
    rows = await service.all_announcements(request.app[DB])
    return {"announcements": [admin_announcement_out(r) for r in rows]}


@routes.post("/api/admin/announcements", name="api_admin_announcements_create")
@endpoint(access="admin", body=AnnouncementIn, response=AdminAnnouncementOut, status=201, tags=TAGS)
async def admin_publish(request: web.Request, body: AnnouncementIn) -> dict[str, Any]:
    """Publish a banner or an in-app message to every user or to a `segment` (plan,
    organisation, sign-up dates), from `starts_at` (default now) to `ends_at`."""
    return admin_announcement_out(await publish(request, body))


@routes.delete("/api/admin/announcements/{id}", name="api_admin_announcement_delete")
@endpoint(access="admin", status=204, tags=TAGS, errors=[404])
async def admin_remove(request: web.Request) -> None:
    """Remove an announcement (its banner disappears for everyone)."""
    await remove(request, request.match_info["id"])
