"""Announcements' pages: the banners and in-app messages (a fragment every page loads with
htmx), the dismiss form, ``/announcements`` (what is live for the reader), and the console's
``/admin/announcements`` (publish a banner or an in-app message with a Markdown body, to everyone
or a segment; remove)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from multinotes.announcements import service
from multinotes.announcements.actions import publish, remove
from multinotes.announcements.models import KINDS, SEVERITIES, Announcement
from multinotes.announcements.schemas import AnnouncementIn
from multinotes.errors import AppError
from multinotes.http.endpoint import page, validate
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render, safe_next
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.markdown import render_markdown
from multinotes.segments import choices

routes = web.RouteTableDef()


def _with_html(rows: list[Announcement]) -> list[tuple[Announcement, str]]:
    """Each announcement with its body as sanitised HTML (nh3), for ``| safe``."""
    return [(row, render_markdown(row.body)) for row in rows]


def _current_page(request: web.Request) -> str:
    """The page the banners sit on (htmx sends its URL), where a plain dismiss form returns."""
    url = urlsplit(request.headers.get("HX-Current-URL", ""))
    return safe_next(url.path + (f"?{url.query}" if url.query else ""))


@routes.get("/announcements", name="announcements")
@page(access="user")
async def announcements(request: web.Request) -> web.Response:
    actor = require_user(request)
    rows = await service.live(request.app[DB], actor.user_id)
    return render(
        request, "announcements/index.html", {"nav": "announcements", "items": _with_html(rows)}
    )


@routes.get("/announcements/banners", name="announcement_banners")
@page(access="user")
async def banners(request: web.Request) -> web.Response:
    """The banners and in-app messages the reader has not dismissed (a fragment for
    base.html)."""
    actor = require_user(request)
    rows = await service.banners_for(request.app[DB], actor.user_id)
    return aiohttp_jinja2.render_template(
        "announcements/_banners.html",
        request,
        {"items": _with_html(rows), "back": _current_page(request)},
    )


@routes.post("/announcements/{id}/dismiss", name="announcement_dismiss")
@page(access="user")
async def dismiss(request: web.Request) -> web.Response:
    """Hide the banner for good; htmx swaps it away, a plain form comes back to its page."""
    actor = require_user(request)
    form = await request.post()
    await service.dismiss(request.app[DB], actor.user_id, request.match_info["id"])
    if request.headers.get("HX-Request"):
        return web.Response(text="", content_type="text/html")
    back = form.get("next")
    return redirect(safe_next(back if isinstance(back, str) else None), "Announcement dismissed.")


def _segment_summary(row: Announcement) -> str:
    """Who an announcement is for, in a few words (the console's list)."""
    segment = service.segment_of(row)
    if segment.everyone:
        return "Everyone"
    parts = []
    if segment.plans:
        parts.append(f"plan: {len(segment.plans)}")
    if segment.organisations:
        parts.append(f"organisation: {len(segment.organisations)}")
    if segment.signed_up_after:
        parts.append(f"signed up from {segment.signed_up_after:%Y-%m-%d}")
    if segment.signed_up_before:
        parts.append(f"signed up before {segment.signed_up_before:%Y-%m-%d}")
    return "; ".join(parts)


async def _console(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    db = request.app[DB]
    rows = await service.all_announcements(db)
    plans, organisations = await choices(db)
    return render(
        request,
        "admin/announcements.html",
        {
            "nav": "admin",
            "section": "announcements",
            "items": _with_html(rows),
            "audience": {row.id: _segment_summary(row) for row in rows},
            "severities": SEVERITIES,
            "kinds": KINDS,
            "plans": plans,
            "organisations": organisations,
            "form": {"segment": {}},
            "errors": {},
            **extra,
        },
        status=status,
    )


@routes.get("/admin/announcements", name="admin_announcements")
@page(access="admin")
async def admin_announcements(request: web.Request) -> web.Response:
    return await _console(request)


@routes.post("/admin/announcements", name="admin_announcements_publish")
@page(access="admin")
async def admin_publish(request: web.Request) -> web.Response:
    form = await request.post()
    data: dict[str, Any] = {
        name: str(form.get(name, "")).replace("\r\n", "\n")
        for name in ("title", "body", "severity", "kind", "starts_at", "ends_at")
    }
    for name in ("starts_at", "ends_at"):
        if not data[name].strip():
            data[name] = None
    data["segment"] = {
        "plans": [v for v in form.getall("plans", []) if isinstance(v, str)],
        "organisations": [v for v in form.getall("organisations", []) if isinstance(v, str)],
        "signed_up_after": form_field(form, "signed_up_after") or None,
        "signed_up_before": form_field(form, "signed_up_before") or None,
    }
    try:
        row = await publish(request, validate(AnnouncementIn, data))
    except AppError as exc:
        if not exc.fields:
            raise
        return await _console(request, exc.status, form=data, errors=exc.fields, error=exc.message)
    return redirect("/admin/announcements", f"“{row.title}” was published.")


@routes.post("/admin/announcements/{id}/delete", name="admin_announcement_delete")
@page(access="admin")
async def admin_remove(request: web.Request) -> web.Response:
    await remove(request, request.match_info["id"])
    return redirect("/admin/announcements", "The announcement was removed.")
