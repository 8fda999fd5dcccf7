"""Support tickets as seen by their owner and by the operator.

``ticket_for_user`` is the one access check for users: a ticket that is not theirs is a 404, as
if it did not exist. Staff functions are only called from ``access="admin"`` routes. Every new
message stages ``support.message_added``, so notifications and mail follow the commit
(``multinotes.support.notifier``) and a rolled-back reply tells no one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, utcnow
from multinotes.domain_events import SUPPORT_MESSAGE_ADDED, SupportMessageAdded, stage
from multinotes.errors import Invalid, NotFound
from multinotes.identity.models import User
from multinotes.support.models import SupportMessage, SupportTicket

Status = Literal["open", "pending", "closed"]


@dataclass(frozen=True)
class Thread:
    ticket: SupportTicket
    messages: list[SupportMessage]
    owner_email: str
    owner_name: str
    assignee_name: str | None


async def _user(session: AsyncSession, user_id: str) -> User:
    user = await session.scalar(select(User).where(User.id == user_id))
    if user is None:
        raise NotFound("No such user.")
    return user


def _add_message(
    session: AsyncSession,
    ticket: SupportTicket,
    author: User,
    body: str,
    *,
    from_staff: bool,
    internal: bool = False,
) -> SupportMessage:
    message = SupportMessage(
        ticket_id=ticket.id,
        author_id=author.id,
        author_name=author.name[:200],
        from_staff=from_staff,
        internal=internal,
        body=body,
        created_at=utcnow(),
    )
    session.add(message)
    ticket.updated_at = message.created_at
    return message


async def _stage_added(
    session: AsyncSession, ticket: SupportTicket, message: SupportMessage
) -> None:
    await session.flush()
    stage(
        session,
        SUPPORT_MESSAGE_ADDED.of(
            ticket.user_id,
            SupportMessageAdded(
                ticket_id=ticket.id,
                message_id=message.id,
                from_staff=message.from_staff,
                internal=message.internal,
            ),
        ),
    )


async def open_ticket(db: Database, user_id: str, subject: str, body: str) -> str:
    async with db.transaction() as session:
        user = await _user(session, user_id)
        ticket = SupportTicket(user_id=user.id, subject=subject, status="open")
        session.add(ticket)
        await session.flush()
        message = _add_message(session, ticket, user, body, from_staff=False)
        await _stage_added(session, ticket, message)
        return ticket.id


async def list_for_user(db: Database, user_id: str) -> list[SupportTicket]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(SupportTicket)
                .where(SupportTicket.user_id == user_id)
                .order_by(SupportTicket.updated_at.desc(), SupportTicket.id.desc())
                .limit(200)
            )
        )


async def _thread(session: AsyncSession, ticket: SupportTicket, *, staff: bool) -> Thread:
    query = select(SupportMessage).where(SupportMessage.ticket_id == ticket.id)
    if not staff:
        query = query.where(SupportMessage.internal.is_(False))
    messages = list(
        await session.scalars(query.order_by(SupportMessage.created_at, SupportMessage.id))
    )
    owner = await session.scalar(select(User).where(User.id == ticket.user_id))
    assignee = (
        await session.scalar(select(User).where(User.id == ticket.assignee_id))
        if ticket.assignee_id
        else None
    )
    return Thread(
        ticket=ticket,
        messages=messages,
        owner_email=owner.email if owner else "",
        owner_name=owner.name if owner else "",
        assignee_name=(assignee.name or assignee.email) if assignee else None,
    )


async def ticket_for_user(db: Database, user_id: str, ticket_id: str) -> Thread:
    """The ticket and its thread without staff notes, or 404 unless it is ``user_id``'s."""
    async with db.read() as session:
        ticket = await session.scalar(
            select(SupportTicket).where(
                SupportTicket.id == ticket_id, SupportTicket.user_id == user_id
            )
        )
        if ticket is None:
            raise NotFound("No such ticket.")
        return await _thread(session, ticket, staff=False)


async def user_reply(db: Database, user_id: str, ticket_id: str, body: str) -> str:
    """The owner answers; a pending or closed ticket is the operator's turn again (open)."""
    async with db.transaction() as session:
        ticket = await session.scalar(
            select(SupportTicket)
            .where(SupportTicket.id == ticket_id, SupportTicket.user_id == user_id)
            .with_for_update()
        )
        if ticket is None:
            raise NotFound("No such ticket.")
        user = await _user(session, user_id)
        message = _add_message(session, ticket, user, body, from_staff=False)
        ticket.status = "open"
        await _stage_added(session, ticket, message)
        return message.id


# -- staff --------------------------------------------------------------------------------------


async def queue(
    db: Database, *, status: str | None, assignee: str | None, limit: int = 100
) -> list[tuple[SupportTicket, str]]:
    """Tickets for the console, the longest-waiting first, with their owner's email.
    ``assignee``: a user id, or ``"none"`` for unassigned tickets."""
    query = select(SupportTicket, User.email).join(User, User.id == SupportTicket.user_id)
    if status:
        query = query.where(SupportTicket.status == status)
    if assignee == "none":
        query = query.where(SupportTicket.assignee_id.is_(None))
    elif assignee:
        query = query.where(SupportTicket.assignee_id == assignee)
    async with db.read() as session:
        rows = await session.execute(
            query.order_by(SupportTicket.updated_at, SupportTicket.id).limit(limit)
        )
        return [(ticket, email) for ticket, email in rows.all()]


async def _staff_ticket(session: AsyncSession, ticket_id: str, *, lock: bool) -> SupportTicket:
    query = select(SupportTicket).where(SupportTicket.id == ticket_id)
    ticket = await session.scalar(query.with_for_update() if lock else query)
    if ticket is None:
        raise NotFound("No such ticket.")
    return ticket


async def ticket_for_staff(db: Database, ticket_id: str) -> Thread:
    async with db.read() as session:
        return await _thread(
            session, await _staff_ticket(session, ticket_id, lock=False), staff=True
        )


async def staff_reply(
    db: Database, staff_id: str, ticket_id: str, body: str, *, internal: bool
) -> str:
    """A reply (the ticket becomes pending: the user's turn) or an internal note (no change of
    status). Replying to an unassigned ticket assigns it to whoever answered."""
    async with db.transaction() as session:
        ticket = await _staff_ticket(session, ticket_id, lock=True)
        staff = await _user(session, staff_id)
        message = _add_message(session, ticket, staff, body, from_staff=True, internal=internal)
        if not internal:
            ticket.status = "pending"
            if ticket.assignee_id is None:
                ticket.assignee_id = staff.id
        await _stage_added(session, ticket, message)
        return message.id


async def set_status(db: Database, ticket_id: str, status: Status) -> SupportTicket:
    async with db.transaction() as session:
        ticket = await _staff_ticket(session, ticket_id, lock=True)
        ticket.status = status
        ticket.updated_at = utcnow()
        return ticket


async def assign(db: Database, ticket_id: str, assignee_id: str | None) -> SupportTicket:
    """Assign to an administrator (None: unassign); anyone else is refused by field."""
    async with db.transaction() as session:
        ticket = await _staff_ticket(session, ticket_id, lock=True)
        if assignee_id is not None:
            person = await session.scalar(select(User).where(User.id == assignee_id))
            if person is None or person.role != "admin":
                raise Invalid(fields={"assignee_id": "must be an administrator"})
        ticket.assignee_id = assignee_id
        return ticket


async def staff_members(db: Database) -> list[User]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(User)
                .where(User.role == "admin", User.is_active.is_(True))
                .order_by(User.email)
            )
        )
