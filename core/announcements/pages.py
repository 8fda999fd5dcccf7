"""Announcements' pages: the banners (a fragment every page loads with htmx), the dismiss form,
``/announcements`` (what is live), and the console's ``/admin/announcements`` (publish with a
Markdown body, remove)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from multinotes.announcements import service
from multinotes.announcements.actions import publish, remove
from multinotes.announcements.models import SEVERITIES, Announcement
from multinotes.announcements.schemas import AnnouncementIn
from multinotes.errors import Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render, safe_next
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.markdown import render_markdown

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
    rows = await service.live(request.app[DB])
    return render(
        request, "announcements/index.html", {"nav": "announcements", "items": _with_html(rows)}
    )


@routes.get("/announcements/banners", name="announcement_banners")
@page(access="user")
async def banners(request: web.Request) -> web.Response:
    """The banners the reader has not dismissed (a fragment for base.html)."""
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


async def _console(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    rows = await service.all_announcements(request.app[DB])
    return render(
        request,
        "admin/announcements.html",
        {
            "nav": "admin",
            "section": "announcements",
            "items": _with_html(rows),
            "severities": SEVERITIES,
            "form": {},
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
        for name in ("title", "body", "severity", "starts_at", "ends_at")
    }
    for name in ("starts_at", "ends_at"):
        if not data[name].strip():
            data[name] = None
    try:
        body = validate(AnnouncementIn, data)
    except Invalid as exc:
        return await _console(request, exc.status, form=data, errors=exc.fields, error=exc.message)
    row = await publish(request, body)
    return redirect("/admin/announcements", f"“{row.title}” was published.")


@routes.post("/admin/announcements/{id}/delete", name="admin_announcement_delete")
@page(access="admin")
async def admin_remove(request: web.Request) -> web.Response:
    await remove(request, request.match_info["id"])
    return redirect("/admin/announcements", "The announcement was removed.")
