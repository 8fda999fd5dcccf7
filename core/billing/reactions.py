"""What a verified provider event means for the user, after ``service.apply_event`` moved the
money: a renewal that failed is mailed (once per invoice), and an auto-reload charge that the
provider declined later (by webhook) switches auto-reload off like an immediate decline.

Each reaction keys on the event having *changed* something (``outcome == "applied"``): a
failed invoice moves the subscription to ``past_due`` once, and Stripe's retries of that invoice
(new event ids, the same invoice) find it there already, so they mail nobody.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from sqlalchemy import select

from multinotes.billing import BillingEvent, auto_reload
from multinotes.billing.models import Order, Plan, ProviderEvent
from multinotes.identity import service as identity
from multinotes.keys import DB, SETTINGS
from multinotes.mail import queue_mail

log = structlog.get_logger("multinotes.billing.reactions")


async def after_event(
    app: web.Application, backend: str, event: BillingEvent, outcome: str
) -> None:
    """Called by the webhook route once ``apply_event`` committed."""
    if outcome != "applied" or event.type != "payment.failed":
        return
    async with app[DB].read() as session:
        # apply_event kept the event with the order it found for it.
        order_id = await session.scalar(
            select(ProviderEvent.order_id).where(
                ProviderEvent.backend == backend, ProviderEvent.event_id == event.id[:255]
            )
        )
        order = await session.get(Order, order_id) if order_id else None
        plan = await session.get(Plan, order.plan_id) if order else None
    if order is None or plan is None:
        return
    if order.status == "paid" and order.subscription_status == "past_due":
        await mail_renewal_failed(app, order, plan)
    elif await auto_reload.is_reload_order(app[DB], order.id):
        await auto_reload.declined(
            app,
            order.id,
            event.failure_code or "payment_failed",
            event.failure_message or "The payment failed.",
        )


async def mail_renewal_failed(app: web.Application, order: Order, plan: Plan) -> None:
    """Tell the buyer their renewal failed: the credits stay for now; the link opens the
    provider's customer portal (through ``/billing/portal``, which asks for a login first and
    makes a fresh portal session: the provider's own links expire within minutes)."""
    user = await identity.get_user(app[DB], order.user_id)
    settings = app[SETTINGS]
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    await queue_mail(
        app,
        template="renewal_failed",
        to=user.email,
        context={
            "name": user.name,
            "plan": plan.name,
            "link": f"{base}/billing/portal",
        },
    )
    log.info("billing.renewal_failed_mailed", order_id=order.id)
