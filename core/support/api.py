"""Support's JSON API: ``/api/tickets`` for the people who open tickets (their own only) and
``/api/admin/tickets`` for the operator's queue (replies, staff notes, status, assignee)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.support import service
from multinotes.support.actions import staff_reply, staff_update
from multinotes.support.models import SupportMessage, SupportTicket
from multinotes.support.schemas import (
    QueueQuery,
    ReplyIn,
    StaffReplyIn,
    StaffThreadOut,
    StaffTicketList,
    ThreadOut,
    TicketIn,
    TicketList,
    TicketPatch,
)

routes = web.RouteTableDef()
TAGS = ["support"]


def ticket_out(ticket: SupportTicket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
    }


def message_out(message: SupportMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "author": message.author_name,
        "from_staff": message.from_staff,
        "internal": message.internal,
        "body": message.body,
        "created_at": message.created_at.isoformat(),
    }


def thread_out(thread: service.Thread) -> dict[str, Any]:
    return {**ticket_out(thread.ticket), "messages": [message_out(m) for m in thread.messages]}


def staff_thread_out(thread: service.Thread) -> dict[str, Any]:
    return {
        **thread_out(thread),
        "user_email": thread.owner_email,
        "assignee_id": thread.ticket.assignee_id,
    }


@routes.get("/api/tickets", name="api_tickets")
@endpoint(access="user", response=TicketList, tags=TAGS)
async def list_tickets(request: web.Request) -> dict[str, Any]:
    """Your support tickets, the most recently active first."""
    actor = require_user(request)
    tickets = await service.list_for_user(request.app[DB], actor.user_id)
    return {"tickets": [ticket_out(t) for t in tickets]}


@routes.post("/api/tickets", name="api_tickets_create")
@endpoint(access="user", body=TicketIn, response=ThreadOut, status=201, tags=TAGS)
async def open_ticket(request: web.Request, body: TicketIn) -> dict[str, Any]:
    """Open a ticket with its first message; it waits in the operator's queue (status open)."""
    actor = require_user(request)
    db = request.app[DB]
    ticket_id = await service.open_ticket(db, actor.user_id, body.subject, body.body)
    return thread_out(await service.ticket_for_user(db, actor.user_id, ticket_id))


@routes.get("/api/tickets/{id}", name="api_ticket")
@endpoint(access="user", response=ThreadOut, tags=TAGS, errors=[404])
async def get_ticket(request: web.Request) -> dict[str, Any]:
    """One of your tickets with its thread (staff notes are never shown)."""
    actor = require_user(request)
    thread = await service.ticket_for_user(request.app[DB], actor.user_id, request.match_info["id"])
    return thread_out(thread)


@routes.post("/api/tickets/{id}/messages", name="api_ticket_reply")
@endpoint(access="user", body=ReplyIn, response=ThreadOut, status=201, tags=TAGS, errors=[404])
async def reply(request: web.Request, body: ReplyIn) -> dict[str, Any]:
    """Answer on your ticket; a pending or closed ticket opens again."""
    actor = require_user(request)
    db, ticket_id = request.app[DB], request.match_info["id"]
    await service.user_reply(db, actor.user_id, ticket_id, body.body)
    return thread_out(await service.ticket_for_user(db, actor.user_id, ticket_id))


# -- the operator ---------------------------------------------------------------------------


@routes.get("/api/admin/tickets", name="api_admin_tickets")
@endpoint(access="admin", query=QueueQuery, response=StaffTicketList, tags=TAGS)
async def admin_queue(request: web.Request, query: QueueQuery) -> dict[str, Any]:
    """The support queue, the longest-waiting first, filtered by status and assignee."""
    rows = await service.queue(request.app[DB], status=query.status, assignee=query.assignee)
    return {
        "tickets": [
            {**ticket_out(t), "user_email": email, "assignee_id": t.assignee_id}
            for t, email in rows
        ]
    }


@routes.get("/api/admin/tickets/{id}", name="api_admin_ticket")
@endpoint(access="admin", response=StaffThreadOut, tags=TAGS, errors=[404])
async def admin_ticket(request: web.Request) -> dict[str, Any]:
    """A ticket with its whole thread, staff notes included."""
    return staff_thread_out(
        await service.ticket_for_staff(request.app[DB], request.match_info["id"])
    )


@routes.post("/api/admin/tickets/{id}/messages", name="api_admin_ticket_reply")
@endpoint(
    access="admin", body=StaffReplyIn, response=StaffThreadOut, status=201, tags=TAGS, errors=[404]
)
async def admin_reply(request: web.Request, body: StaffReplyIn) -> dict[str, Any]:
    """Reply to the ticket's owner (they are notified and mailed a link; the ticket becomes
    pending and, if nobody had it, yours) or, with `internal`, add a note only staff see."""
    ticket_id = request.match_info["id"]
    await staff_reply(request, ticket_id, body.body, body.internal)
    return staff_thread_out(await service.ticket_for_staff(request.app[DB], ticket_id))


@routes.patch("/api/admin/tickets/{id}", name="api_admin_ticket_update")
@endpoint(access="admin", body=TicketPatch, response=StaffThreadOut, tags=TAGS, errors=[404])
async def admin_update(request: web.Request, body: TicketPatch) -> dict[str, Any]:
    """Close or reopen a ticket, or assign it to an administrator (empty string: nobody)."""
    ticket_id = request.match_info["id"]
    await service.ticket_for_staff(request.app[DB], ticket_id)  # 404 before anything is written
    await staff_update(request, ticket_id, body)
    return staff_thread_out(await service.ticket_for_staff(request.app[DB], ticket_id))
