"""Low balance: when a user's credits fall below the administrator's threshold
(``wallet.low_balance_credits``), they get an in-app notification and a mail, both pointing at
``/pricing`` to top up.

It lives beside the other notifications: the wallet only publishes the event (and must not
import this package, since chat depends on the wallet). The wallet stages ``credits.low`` in the
transaction that took the balance across the threshold (``wallet.service.stage_if_low``: once
per crossing, not on every charge while it stays low), so this subscriber runs once per
crossing, after that commit; a failure here is logged by the event bus and costs only the
notice, never the charge. A deactivated account hears nothing.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from multinotes.domain_events import CREDITS_LOW, EVENTS, DomainEvent, EventBus
from multinotes.identity.models import User
from multinotes.keys import DB
from multinotes.links import site_url
from multinotes.mail import queue_mail
from multinotes.sharing.notifications import notify

#: Where every "top up" goes.
TOP_UP = "/pricing"
#: The notification's kind (``GET /api/notifications``).
KIND = "low_balance"


def setup(app: web.Application) -> None:
    """Subscribe to ``credits.low`` (the app's event bus exists by then)."""
    subscribe(app[EVENTS])


def subscribe(bus: EventBus) -> None:
    bus.subscribe(CREDITS_LOW, credits_low)


async def credits_low(app: web.Application, event: DomainEvent) -> None:
    """Notify and mail the wallet's owner that their credits are running low."""
    balance = int(event.payload["balance"])
    async with app[DB].transaction() as session:
        user = await session.scalar(select(User).where(User.id == event.user_id))
        if user is None or not user.is_active:
            return
        notify(
            session,
            user_id=user.id,
            kind=KIND,
            actor_id=None,
            actor_name="",
            object_type="wallet",
            object_id=user.id,
            title="Your credits are running low",
            url=TOP_UP,
            text=f"{balance:,} credits left. Top up to keep your answers coming.",
        )
        name, address = " ".join(user.name.split()), user.email
    await queue_mail(
        app,
        template="low_balance",
        to=address,
        context={"name": name, "balance": f"{balance:,}", "link": site_url(app, TOP_UP)},
    )
