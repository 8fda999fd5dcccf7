"""Audit records that follow sharing's events. An invitation (a new share with an address that
has no account yet, which mails a stranger at an address the sharer chose) is recorded for abuse
review: who mailed which fingerprinted address, about what, from where. The daily invitation
limit counts these records (``multinotes.sharing.actions``).

The record is written in reaction to ``share.created``, after the share committed, whichever
page or API call made it; the IP address and User-Agent are those of the request that shared
(``multinotes.links.current_request``), as for every other audit record.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from multinotes import audit
from multinotes.domain_events import EVENTS, SHARE_CREATED, DomainEvent, EventBus
from multinotes.keys import DB
from multinotes.links import current_request
from multinotes.sharing.models import Share

#: The audit action of each invitation.
INVITATION = "share.invitation"


def setup_audit_trail(app: web.Application) -> None:
    """Sharing's audit records follow its events (after setup_events)."""
    subscribe(app[EVENTS])


def subscribe(bus: EventBus) -> None:
    bus.subscribe(SHARE_CREATED, record_invitation)


async def record_invitation(app: web.Application, event: DomainEvent) -> None:
    payload = event.payload
    if payload["kind"] != "user" or payload["recipient_id"] is not None:
        return  # a public link, or a person with an account: no one is invited
    async with app[DB].read() as session:
        share = await session.scalar(select(Share).where(Share.id == payload["share_id"]))
    if share is None or share.recipient_email is None:
        return
    await audit.record(
        app,
        current_request.get(),
        INVITATION,
        actor_id=event.user_id,  # the owner, the only one who shares
        target_type="share",
        target_id=share.id,
        details={
            **audit.attempted_email(app, share.recipient_email),
            "object_type": payload["object_type"],
            "object_id": payload["object_id"],
        },
    )
