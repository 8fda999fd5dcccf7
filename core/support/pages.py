"""Support's pages: ``/support`` (your tickets and a form to open one), ``/support/{id}`` (the
thread and a reply form), and the console's queue ``/admin/support`` and ticket page. Plain
forms with POST-redirect-GET; a refused form is shown again with its text and the error."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes.errors import Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_admin, require_user
from multinotes.keys import DB
from multinotes.markdown import render_markdown
from multinotes.support import service
from multinotes.support.actions import staff_reply, staff_update
from multinotes.support.models import STATUSES
from multinotes.support.schemas import QueueQuery, ReplyIn, StaffReplyIn, TicketIn, TicketPatch

routes = web.RouteTableDef()

STATUS_LABELS = {"open": "Waiting for support", "pending": "Answered", "closed": "Closed"}


def _html(thread: service.Thread) -> dict[str, str]:
    """Each message's Markdown as sanitised HTML (nh3), for ``| safe`` in the template."""
    return {m.id: render_markdown(m.body) for m in thread.messages}


def _form_text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return str(value).replace("\r\n", "\n") if isinstance(value, str) else ""


@routes.get("/support", name="support")
@page(access="user")
async def support_home(request: web.Request) -> web.Response:
    return await _home(request)


async def _home(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    actor = require_user(request)
    tickets = await service.list_for_user(request.app[DB], actor.user_id)
    return render(
        request,
        "support/index.html",
        {"nav": "support", "tickets": tickets, "labels": STATUS_LABELS, "form": {}, **extra},
        status=status,
    )


@routes.post("/support", name="support_open")
@page(access="user")
async def support_open(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    data = {"subject": _form_text(form, "subject"), "body": _form_text(form, "body")}
    try:
        body = validate(TicketIn, data)
    except Invalid as exc:
        return await _home(request, exc.status, form=data, errors=exc.fields, error=exc.message)
    ticket_id = await service.open_ticket(request.app[DB], actor.user_id, body.subject, body.body)
    return redirect(f"/support/{ticket_id}", "Your ticket was sent. We will answer here.")


async def _ticket(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    actor = require_user(request)
    thread = await service.ticket_for_user(request.app[DB], actor.user_id, request.match_info["id"])
    return render(
        request,
        "support/ticket.html",
        {
            "nav": "support",
            "thread": thread,
            "html": _html(thread),
            "labels": STATUS_LABELS,
            "text": "",
            **extra,
        },
        status=status,
    )


@routes.get("/support/{id}", name="support_ticket")
@page(access="user")
async def support_ticket(request: web.Request) -> web.Response:
    return await _ticket(request)


@routes.post("/support/{id}/messages", name="support_reply")
@page(access="user")
async def support_reply(request: web.Request) -> web.Response:
    actor = require_user(request)
    ticket_id = request.match_info["id"]
    form = await request.post()
    text = _form_text(form, "body")
    try:
        body = validate(ReplyIn, {"body": text})
    except Invalid as exc:
        return await _ticket(request, exc.status, text=text, error=exc.message)
    await service.user_reply(request.app[DB], actor.user_id, ticket_id, body.body)
    return redirect(f"/support/{ticket_id}#end", "Your reply was sent.")


# -- the console ------------------------------------------------------------------------------


@routes.get("/admin/support", name="admin_support")
@page(access="admin")
async def admin_queue(request: web.Request) -> web.Response:
    me = require_admin(request)
    filters = {
        name: request.query.get(name, "").strip()
        for name in ("status", "assignee")
        if request.query.get(name, "").strip()
    }
    error = None
    try:
        query = validate(QueueQuery, {**filters})
        assignee = me.user_id if query.assignee == "me" else query.assignee
        rows = await service.queue(request.app[DB], status=query.status, assignee=assignee)
    except Invalid as exc:
        error = "Some filters are invalid: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        rows = []
    return render(
        request,
        "admin/support.html",
        {
            "nav": "admin",
            "section": "support",
            "filters": filters,
            "rows": rows,
            "statuses": STATUSES,
            "labels": STATUS_LABELS,
            "staff": await service.staff_members(request.app[DB]),
            "error": error,
        },
        status=422 if error else 200,
    )


async def _staff_ticket(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    thread = await service.ticket_for_staff(request.app[DB], request.match_info["id"])
    return render(
        request,
        "admin/support_ticket.html",
        {
            "nav": "admin",
            "section": "support",
            "thread": thread,
            "html": _html(thread),
            "labels": STATUS_LABELS,
            "staff": await service.staff_members(request.app[DB]),
            "text": "",
            **extra,
        },
        status=status,
    )


@routes.get("/admin/support/{id}", name="admin_support_ticket")
@page(access="admin")
async def admin_ticket(request: web.Request) -> web.Response:
    return await _staff_ticket(request)


@routes.post("/admin/support/{id}/messages", name="admin_support_reply")
@page(access="admin")
async def admin_reply(request: web.Request) -> web.Response:
    ticket_id = request.match_info["id"]
    await service.ticket_for_staff(request.app[DB], ticket_id)  # 404 first
    form = await request.post()
    text = _form_text(form, "body")
    internal = form.get("internal") == "true"
    try:
        body = validate(StaffReplyIn, {"body": text, "internal": internal})
    except Invalid as exc:
        return await _staff_ticket(request, exc.status, text=text, error=exc.message)
    await staff_reply(request, ticket_id, body.body, body.internal)
    done = "Note added (only staff see it)." if internal else "Reply sent; the user was told."
    return redirect(f"/admin/support/{ticket_id}#end", done)


@routes.post("/admin/support/{id}", name="admin_support_update")
@page(access="admin")
async def admin_update(request: web.Request) -> web.Response:
    """Close, reopen or assign (one form each on the page)."""
    ticket_id = request.match_info["id"]
    await service.ticket_for_staff(request.app[DB], ticket_id)
    form = await request.post()
    data: dict[str, Any] = {}
    if isinstance(form.get("status"), str) and form.get("status"):
        data["status"] = form["status"]
    if isinstance(form.get("assignee_id"), str):
        data["assignee_id"] = form["assignee_id"]
    try:
        await staff_update(request, ticket_id, validate(TicketPatch, data))
    except Invalid as exc:
        return await _staff_ticket(request, exc.status, error=exc.message)
    return redirect(f"/admin/support/{ticket_id}", "Ticket updated.")
