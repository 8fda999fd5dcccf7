"""An administrator's refund, shared by the JSON API and the console's order page: the payment
provider refunds the payment first, then core reverses the order's credits (only what is still
unspent, never below zero) and the audit log records who did it and why."""

from __future__ import annotations

from aiohttp import web

from multinotes import audit
from multinotes.billing import service as billing
from multinotes.billing.checkout import choose_backend
from multinotes.billing.models import Order
from multinotes.errors import Conflict
from multinotes.identity.actor import require_admin
from multinotes.keys import DB, PLUGIN_SETTINGS


def refundable(order: Order) -> bool:
    """Whether the order can be refunded through its backend (paid, with a payment to refund)."""
    return order.status == "paid" and bool(order.payment_reference)


async def refund_through_backend(request: web.Request, order_id: str, reason: str) -> Order:
    """Refund ``order_id`` in full at its provider and take back its unspent credits; returns
    the order as it is now. The provider's idempotency key is the order's, so a second click
    (or a retry after a timeout) cannot refund twice; a refused or failed provider call changes
    nothing here."""
    admin = require_admin(request)
    app = request.app
    order = await billing.order_for(app[DB], order_id, admin.user_id, is_admin=True)
    if not refundable(order):
        raise Conflict("Only a paid one-time order can be refunded here.", code="not_refundable")
    assert order.payment_reference is not None
    plugin, backend = choose_backend(app, order.backend)
    refund_id = await backend.refund(
        payment_reference=order.payment_reference,
        amount=order.total,
        reason=reason,
        idempotency_key=f"refund-{order.id}",
        config=await app[PLUGIN_SETTINGS].config(plugin),
    )
    await billing.refund_order(app[DB], order.id)
    await audit.record(
        app,
        request,
        "billing.order_refunded",
        target_type="order",
        target_id=order.id,
        details={"reason": reason, "refund": refund_id, "amount": order.total},
    )
    return await billing.order_for(app[DB], order.id, admin.user_id, is_admin=True)
