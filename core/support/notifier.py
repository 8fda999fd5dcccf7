"""Who hears about a support message, once it committed (``support.message_added``):

- a staff reply: the ticket's owner, in the app and by mail, with a link to the thread (they
  answer on the page, not by mail);
- a message from the owner: the assigned administrator, in the app (an unassigned ticket waits
  in the console's queue for whoever is on duty);
- an internal note: nobody.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from multinotes.domain_events import EVENTS, SUPPORT_MESSAGE_ADDED, DomainEvent, EventBus
from multinotes.identity.models import User
from multinotes.keys import DB
from multinotes.links import site_url
from multinotes.mail import queue_mail
from multinotes.sharing.notifications import excerpt, notify
from multinotes.support.models import SupportMessage, SupportTicket

#: The notification's kind (``GET /api/notifications``).
KIND = "support"


def setup(app: web.Application) -> None:
    subscribe(app[EVENTS])


def subscribe(bus: EventBus) -> None:
    bus.subscribe(SUPPORT_MESSAGE_ADDED, message_added)


def user_path(ticket_id: str) -> str:
    return f"/support/{ticket_id}"


def staff_path(ticket_id: str) -> str:
    return f"/admin/support/{ticket_id}"


async def message_added(app: web.Application, event: DomainEvent) -> None:
    payload = event.payload
    if payload["internal"]:
        return
    mail: dict[str, str] | None = None
    async with app[DB].transaction() as session:
        ticket = await session.scalar(
            select(SupportTicket).where(SupportTicket.id == payload["ticket_id"])
        )
        message = await session.scalar(
            select(SupportMessage).where(SupportMessage.id == payload["message_id"])
        )
        if ticket is None or message is None:
            return
        if payload["from_staff"]:
            reader_id, path = ticket.user_id, user_path(ticket.id)
        elif ticket.assignee_id:
            reader_id, path = ticket.assignee_id, staff_path(ticket.id)
        else:
            return
        reader = await session.scalar(select(User).where(User.id == reader_id))
        if reader is None or not reader.is_active:
            return
        notify(
            session,
            user_id=reader.id,
            kind=KIND,
            actor_id=message.author_id,
            actor_name=message.author_name,
            object_type="ticket",
            object_id=ticket.id,
            title=ticket.subject,
            url=path,
            text=message.body,
        )
        if payload["from_staff"]:
            mail = {
                "to": reader.email,
                "name": " ".join(reader.name.split()),
                "subject_line": " ".join(ticket.subject.split()),
                "excerpt": excerpt(message.body),
            }
    if mail is not None:
        to = mail.pop("to")
        await queue_mail(
            app,
            template="support_reply",
            to=to,
            context={**mail, "link": site_url(app, path)},
        )
