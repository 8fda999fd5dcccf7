"""An administrator's refund, shared by the JSON API and the console's order page: the payment
provider refunds the payment first (all that is left, or a part), then core takes back the
order's credits in proportion (only what is still unspent, never below zero; see
``multinotes.billing.clawback``) and the audit log records who did it, why, and what could not be
taken back."""

from __future__ import annotations

from aiohttp import web

from multinotes import audit
from multinotes.billing import clawback
from multinotes.billing import service as billing
from multinotes.billing.checkout import choose_backend
from multinotes.billing.models import Order
from multinotes.errors import Conflict
from multinotes.identity.actor import require_admin
from multinotes.keys import DB, PLUGIN_SETTINGS


def refundable(order: Order) -> bool:
    """Whether the order can be refunded through its backend (paid, with a payment to refund)."""
    return order.status == "paid" and bool(order.payment_reference)


async def refund_through_backend(
    request: web.Request, order_id: str, reason: str, amount: int | None = None
) -> Order:
    """Refund ``amount`` (minor units; None: all that is left) of ``order_id`` at its provider
    and take back the credits it bought in proportion, as far as they are unspent; returns the
    order as it is now (``refunded`` once nothing is left to refund). The provider's
    idempotency key names the order and its refunded total after this refund, so a second click
    (or a retry after a timeout) cannot refund twice; a refused or failed provider call changes
    nothing here."""
    admin = require_admin(request)
    app = request.app
    order = await billing.order_for(app[DB], order_id, admin.user_id, is_admin=True)
    if not refundable(order):
        raise Conflict("Only a paid one-time order can be refunded here.", code="not_refundable")
    assert order.payment_reference is not None
    total_after = await clawback.next_total(app[DB], order, amount)
    refunding = total_after - await clawback.refunded_amount(app[DB], order.id)
    plugin, backend = choose_backend(app, order.backend)
    refund_id = await backend.refund(
        payment_reference=order.payment_reference,
        amount=refunding,
        reason=reason,
        idempotency_key=f"refund-{order.id}-{total_after}",
        config=await app[PLUGIN_SETTINGS].config(plugin),
    )
    recorded = await clawback.record_refund(
        app[DB], order.id, total_after, provider_refund_id=refund_id, reason=reason
    )
    details: dict[str, object] = {"reason": reason, "refund": refund_id, "amount": refunding}
    if recorded.refund is not None:
        details["credits_taken"] = recorded.refund.credits_taken
        details["shortfall"] = recorded.refund.shortfall
    await audit.record(
        app,
        request,
        "billing.order_refunded",
        target_type="order",
        target_id=order.id,
        details=details,
    )
    return await billing.order_for(app[DB], order.id, admin.user_id, is_admin=True)
