"""Notifications react to what happened: a share received (``share.created``) and a mention in
a comment (``comment.created``, ``comment.edited``) each leave an in-app notification and queue
a mail, after the change that caused them committed.

Sharing and comments only publish their events; this module is the one place that turns them
into notifications and mail, whichever page or API call the change came from. A subscriber that
fails is logged by the event bus and costs only the notification, never the share or comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.domain_events import (
    COMMENT_CREATED,
    COMMENT_EDITED,
    EVENTS,
    SHARE_CREATED,
    DomainEvent,
    EventBus,
)
from multinotes.identity.models import User
from multinotes.keys import DB
from multinotes.links import site_url
from multinotes.mail import queue_mail
from multinotes.notes.models import Document
from multinotes.sharing import access
from multinotes.sharing.models import Comment, Share
from multinotes.sharing.notifications import excerpt, notify
from multinotes.sharing.service import object_path, one_line, title_of, without_links


@dataclass(frozen=True)
class Mail:
    template: str
    to: str
    context: dict[str, Any]


def setup_notifications(app: web.Application) -> None:
    """Notifications and their mail follow shares and comments (after setup_events)."""
    subscribe(app[EVENTS])


def subscribe(bus: EventBus) -> None:
    bus.subscribe(SHARE_CREATED, share_received)
    bus.subscribe(COMMENT_CREATED, people_mentioned)
    bus.subscribe(COMMENT_EDITED, people_mentioned)


async def send(app: web.Application, mails: list[Mail]) -> None:
    """Queue the mails, their links made absolute (mail clients cannot follow a path)."""
    for mail in mails:
        context = dict(mail.context)
        for key in ("link", "register_link"):
            if isinstance(context.get(key), str) and context[key].startswith("/"):
                context[key] = site_url(app, context[key])
        await queue_mail(app, template=mail.template, to=mail.to, context=context)


async def share_received(app: web.Application, event: DomainEvent) -> None:
    """The person a thing was shared with: a notification if they have an account, and a mail
    (an invitation to sign up if they have none). A deactivated account hears nothing, in the
    app or in its inbox; a public link tells no one."""
    mails: list[Mail] = []
    async with app[DB].transaction() as session:
        share = await session.scalar(select(Share).where(Share.id == event.payload["share_id"]))
        if share is None or share.recipient_email is None:
            return
        owner = await session.scalar(select(User).where(User.id == share.owner_id))
        if owner is None:
            return
        recipient = (
            await session.scalar(select(User).where(User.id == share.recipient_id))
            if share.recipient_id
            else None
        )
        if recipient is not None and not recipient.is_active:
            return
        obj, _ = await access.object_in(session, owner.id, share.object_type, share.object_id)
        title = title_of(obj)
        path = object_path(share.object_type, share.object_id)
        if recipient is not None:
            notify(
                session,
                user_id=recipient.id,
                kind="share",
                actor_id=owner.id,
                actor_name=owner.name,
                object_type=share.object_type,
                object_id=share.object_id,
                title=title,
                url=path,
            )
        context = {
            "sharer": without_links(owner.name),
            "sharer_email": owner.email,
            "title": without_links(title),
            "kind": share.object_type,
            "role": share.role,
            "link": path,
            "email": share.recipient_email,
        }
        if recipient is not None:
            context["name"] = one_line(recipient.name)
            mails.append(Mail("share_received", share.recipient_email, context))
        else:
            context["register_link"] = "/register"
            mails.append(Mail("share_invite", share.recipient_email, context))
    await send(app, mails)


async def people_mentioned(app: web.Application, event: DomainEvent) -> None:
    """Each person a comment (newly) mentions, other than its author: a notification that opens
    the comment, and a mail with an excerpt of it."""
    payload = event.payload
    author_id = payload["author_id"]
    mentioned = [uid for uid in payload["mentioned_ids"] if uid != author_id]
    if not mentioned:
        return
    mails: list[Mail] = []
    async with app[DB].transaction() as session:
        comment = await session.scalar(select(Comment).where(Comment.id == payload["comment_id"]))
        document = await session.scalar(select(Document).where(Document.id == payload["note_id"]))
        author = await session.scalar(select(User).where(User.id == author_id))
        if comment is None or document is None or author is None:
            return  # deleted since: nothing left to point at
        people = {
            user.id: user
            for user in await session.scalars(
                select(User).where(User.id.in_(mentioned), User.is_active.is_(True))
            )
        }
        path = f"/notes/{document.id}#comment-{comment.id}"
        for user_id in mentioned:
            person = people.get(user_id)
            if person is None:
                continue
            notify(
                session,
                user_id=person.id,
                kind="mention",
                actor_id=author.id,
                actor_name=author.name,
                object_type="document",
                object_id=document.id,
                title=document.title,
                url=path,
                text=comment.body,
            )
            mails.append(
                Mail(
                    "mention",
                    person.email,
                    {
                        "name": " ".join(person.name.split()),
                        "author": " ".join(author.name.split()),
                        "title": document.title,
                        "excerpt": excerpt(comment.body),
                        "link": path,
                    },
                )
            )
    await send(app, mails)
