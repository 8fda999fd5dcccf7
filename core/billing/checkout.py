"""Starting a checkout, shared by the JSON API and the pricing page: choose the backend, open the
pending order at the server's price, ask the backend for its payment page."""

from __future__ import annotations

from aiohttp import web

from multinotes.billing import BillingBackend
from multinotes.billing import service as billing
from multinotes.errors import Conflict, Invalid
from multinotes.identity.actor import require_user
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS
from multinotes.links import request_base_url


def site_url(request: web.Request, path: str) -> str:
    """An absolute link to this site (the payment page sends the buyer back to it): from
    ``public_url`` or the address the server listens on, never from the request's ``Host`` or
    ``X-Forwarded-Host`` (``multinotes.links``)."""
    return request_base_url(request) + path


def choose_backend(app: web.Application, wanted: str | None) -> tuple[str, BillingBackend]:
    """The enabled backend asked for, or Stripe (else the first by id) when none is named."""
    backends = app[PLUGINS].registries.billing
    if wanted:
        if wanted not in backends:
            raise Invalid(fields={"backend": f"No enabled payment backend {wanted!r}."})
        plugin, backend = backends[wanted]
        return plugin, backend
    if not backends:
        raise Conflict(
            "Payments are not set up on this site yet. Ask an administrator to enable a "
            "payment plugin.",
            code="no_payment_backend",
        )
    plugin, backend = backends["stripe" if "stripe" in backends else sorted(backends)[0]]
    return plugin, backend


async def start_checkout(
    request: web.Request,
    plan_id: str,
    coupon_code: str | None,
    backend_id: str | None = None,
    buyer: billing.Buyer = billing.PERSONAL,
) -> tuple[str, str]:
    """``(order id, payment page URL)``. A backend failure voids the order (its coupon hold
    goes) and propagates. ``buyer``: the organisation and seats an organisation plan is for."""
    actor = require_user(request)
    app = request.app
    plugin, backend = choose_backend(app, backend_id)
    order, plan = await billing.open_order(
        app[DB], actor.user_id, plan_id, coupon_code, backend.id, buyer
    )
    try:
        checkout = await backend.create_checkout(
            user_id=actor.user_id,
            plan_id=plan.id,
            amount_cents=order.total,
            currency=order.currency,
            config=await app[PLUGIN_SETTINGS].config(plugin),
            order_id=order.id,
            description=(f"{plan.name}, {order.seats} seats" if order.seats else plan.name),
            interval=plan.interval,
            success_url=site_url(request, f"/billing/return?order={order.id}"),
            cancel_url=site_url(request, "/pricing"),
            customer_email=actor.email,
        )
    except BaseException:
        await billing.fail_order(app[DB], order.id)
        raise
    await billing.attach_checkout(app[DB], order.id, checkout.reference, checkout.url)
    return order.id, checkout.url
