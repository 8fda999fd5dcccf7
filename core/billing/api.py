"""Billing API: public plans, quotes, checkout, orders; admin plans and coupons; webhooks."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from multinotes import audit
from multinotes.billing import (
    WebhookRejected,
    clawback,
    manual_payments,
    reactions,
    receipts,
    reports,
)
from multinotes.billing import service as billing
from multinotes.billing.checkout import choose_backend, site_url, start_checkout
from multinotes.billing.models import Coupon, Order, Plan
from multinotes.billing.refunds import refund_through_backend
from multinotes.billing.schemas import (
    CheckoutIn,
    CheckoutOut,
    ConfirmIn,
    CouponIn,
    CouponOut,
    ManualPaymentIn,
    OrderOut,
    OrdersQuery,
    PlanIn,
    PlanOut,
    PlanPatch,
    QuoteIn,
    QuoteOut,
    RefundIn,
    RefundOut,
    UrlOut,
    WebhookOut,
)
from multinotes.errors import BadRequest, Conflict, NotFound
from multinotes.http.endpoint import endpoint
from multinotes.identity import service as identity
from multinotes.identity.actor import require_admin, require_user
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS
from multinotes.organisations import seats

routes = web.RouteTableDef()
log = structlog.get_logger("multinotes.billing")


def plan_out(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "kind": plan.kind,
        "credits": plan.credits if plan.kind in ("credits", "organisation") else None,
        "storage_bytes": plan.storage_bytes,
        "price": plan.price,
        "currency": plan.currency,
        "interval": plan.interval,
        "duration_days": plan.duration_days,
        "description": plan.description,
        "archived": plan.archived_at is not None,
    }


def coupon_out(coupon: Coupon) -> dict[str, Any]:
    return {
        **{
            key: getattr(coupon, key)
            for key in (
                "id",
                "code",
                "percent_off",
                "amount_off",
                "max_discount",
                "min_order",
                "bonus_credits",
                "starts_at",
                "ends_at",
                "max_uses",
                "max_uses_per_user",
                "uses",
            )
        },
        "archived": coupon.archived_at is not None,
    }


def order_out(order: Order, plans: dict[str, Plan]) -> dict[str, Any]:
    plan = plans.get(order.plan_id)
    return {
        "id": order.id,
        "plan_id": order.plan_id,
        "plan_name": plan.name if plan else "",
        "backend": order.backend,
        "status": billing.shown_status(order),
        "subtotal": order.subtotal,
        "discount": order.discount,
        "total": order.total,
        "currency": order.currency,
        "credits": order.credits,
        "bonus_credits": order.bonus_credits,
        "organisation_id": order.organisation_id,
        "seats": order.seats,
        "subscription_status": order.subscription_status,
        "created_at": order.created_at,
        "paid_at": order.paid_at,
    }


async def _plans_by_id(app: web.Application) -> dict[str, Plan]:
    return {p.id: p for p in await billing.list_plans(app[DB], include_archived=True)}


# -- public and user ----------------------------------------------------------------------------


@routes.get("/api/billing/plans", name="api_billing_plans")
@endpoint(access="public", response=list[PlanOut], tags=["billing"])
async def public_plans(request: web.Request) -> list[dict[str, Any]]:
    """The plans on sale (no login needed)."""
    return [plan_out(p) for p in await billing.list_plans(request.app[DB])]


@routes.post("/api/billing/quote", name="api_billing_quote")
@endpoint(
    access="user",
    body=QuoteIn,
    response=QuoteOut,
    tags=["billing"],
    errors=[403, 404, 409, 422],
)
async def post_quote(request: web.Request, body: QuoteIn) -> dict[str, Any]:
    """The price a checkout of this plan (with this coupon) will charge, computed on the server."""
    actor = require_user(request)
    db = request.app[DB]
    buyer = await seats.buyer(db, actor.user_id, body.org_id, body.seats)
    priced = await billing.quote(db, actor.user_id, body.plan_id, body.coupon_code, buyer)
    return priced.as_dict()


@routes.post("/api/billing/checkout", name="api_billing_checkout")
@endpoint(
    access="user",
    body=CheckoutIn,
    response=CheckoutOut,
    status=201,
    tags=["billing"],
    errors=[403, 404, 409, 422, 502],
)
async def post_checkout(request: web.Request, body: CheckoutIn) -> dict[str, Any]:
    """Start paying for a plan: a pending order and the payment page to send the buyer to.
    Credits arrive only when the payment provider's signed webhook confirms the payment. An
    organisation plan is bought per seat for an organisation (`org_id`, `seats`) by its owner
    or an admin; its credits go to the organisation's wallet and the seats cap its members."""
    actor = require_user(request)
    buyer = await seats.buyer(request.app[DB], actor.user_id, body.org_id, body.seats)
    order_id, url = await start_checkout(
        request, body.plan_id, body.coupon_code, body.backend, buyer
    )
    return {"order_id": order_id, "url": url}


@routes.get("/api/billing/orders", name="api_billing_orders")
@endpoint(access="user", response=list[OrderOut], tags=["billing"])
async def get_orders(request: web.Request) -> list[dict[str, Any]]:
    """Your orders, newest first, with their status."""
    actor = require_user(request)
    plans = await _plans_by_id(request.app)
    return [order_out(o, plans) for o in await billing.list_orders(request.app[DB], actor.user_id)]


@routes.get("/api/billing/orders/{id}", name="api_billing_order")
@endpoint(access="user", response=OrderOut, tags=["billing"], errors=[404])
async def get_order(request: web.Request) -> dict[str, Any]:
    """One of your orders (admins: anyone's)."""
    actor = require_user(request)
    order = await billing.order_for(
        request.app[DB], request.match_info["id"], actor.user_id, is_admin=actor.is_admin
    )
    return order_out(order, await _plans_by_id(request.app))


@routes.get("/api/billing/orders/{id}/receipt", name="api_billing_order_receipt")
@endpoint(
    access="user",
    tags=["billing"],
    errors=[404],
    content_type="application/pdf",
)
async def order_receipt(request: web.Request) -> web.Response:
    """The PDF receipt of one of your paid orders (admins: anyone's)."""
    actor = require_user(request)
    app = request.app
    order = await billing.order_for(
        app[DB], request.match_info["id"], actor.user_id, is_admin=actor.is_admin
    )
    if order.paid_at is None:
        raise NotFound("This order has not been paid, so it has no receipt.")
    buyer = await identity.get_user(app[DB], order.user_id)
    plans = await _plans_by_id(app)
    pdf = receipts.receipt_pdf(
        order,
        plans.get(order.plan_id),
        {"name": buyer.name, "email": buyer.email},
        await receipts.seller(app[DB]),
        paid_with="Bank transfer" if await manual_payments.paid_manually(app[DB], order) else None,
    )
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="receipt-{order.id}.pdf"'},
    )


@routes.post("/api/billing/orders/{id}/confirm", name="api_billing_order_confirm")
@endpoint(
    access="user", body=ConfirmIn, response=OrderOut, tags=["billing"], errors=[400, 404, 409, 502]
)
async def confirm_order(request: web.Request, body: ConfirmIn) -> dict[str, Any]:
    """Confirm a payment made in a checkout that runs on this site (Razorpay's): ``payment``
    is what the provider's checkout handed the page (``razorpay_payment_id``,
    ``razorpay_order_id`` or ``razorpay_subscription_id``, ``razorpay_signature``). Its
    signature is checked and the payment is then confirmed with the provider itself, so the
    credits never rest on the browser's word; a bad proof is a 400 and changes nothing. The
    order is applied once: confirming again, or the provider's webhook after it, changes
    nothing."""
    actor = require_user(request)
    app = request.app
    order = await billing.order_for(
        app[DB], request.match_info["id"], actor.user_id, is_admin=False
    )
    if order.status == "paid":  # the webhook (or an earlier confirmation) was first
        return order_out(order, await _plans_by_id(app))
    if order.status not in ("pending", "failed", "expired") or not order.reference:
        raise Conflict("This order cannot be paid any more.", code="not_payable")
    plugin, backend = choose_backend(app, order.backend)
    try:
        event = await backend.confirm_payment(
            order_id=order.id,
            reference=order.reference,
            proof=body.payment,
            config=await app[PLUGIN_SETTINGS].config(plugin),
        )
    except WebhookRejected as exc:
        log.warning("billing.confirm_rejected", backend=backend.id, order=order.id, reason=str(exc))
        raise BadRequest(
            "The payment could not be verified.",
            code="bad_signature",
            fields={"payment": "Not a valid payment for this order."},
        ) from None
    outcome = await billing.apply_event(app[DB], backend.id, event)
    log.info("billing.confirmed", backend=backend.id, order=order.id, outcome=outcome)
    order = await billing.order_for(app[DB], order.id, actor.user_id, is_admin=False)
    return order_out(order, await _plans_by_id(app))


@routes.get("/api/admin/billing/seller", name="api_admin_billing_seller")
@endpoint(access="admin", response=receipts.SellerSettings, tags=["billing"])
async def get_seller(request: web.Request) -> receipts.SellerSettings:
    """The seller details and tax line printed on every receipt."""
    return await receipts.seller(request.app[DB])


@routes.put("/api/admin/billing/seller", name="api_admin_billing_seller_put")
@endpoint(
    access="admin",
    body=receipts.SellerSettings,
    response=receipts.SellerSettings,
    tags=["billing"],
    errors=[422],
)
async def put_seller(
    request: web.Request, body: receipts.SellerSettings
) -> receipts.SellerSettings:
    """Set the seller details and tax line printed on receipts."""
    await receipts.save_seller(request.app[DB], body)
    await audit.record(request.app, request, "billing.seller_changed", target_type="settings")
    return body


@routes.post("/api/billing/orders/{id}/cancel", name="api_billing_order_cancel")
@endpoint(access="user", response=OrderOut, tags=["billing"], errors=[404, 409, 502])
async def cancel_subscription(request: web.Request) -> dict[str, Any]:
    """Cancel your subscription at the end of the period already paid (credits stay until
    then)."""
    actor = require_user(request)
    app = request.app
    order = await billing.order_for(
        app[DB], request.match_info["id"], actor.user_id, is_admin=False
    )
    if not order.subscription_reference or order.subscription_status not in ("active", "past_due"):
        raise Conflict("This order has no running subscription.", code="no_subscription")
    plugin, backend = choose_backend(app, order.backend)
    await backend.cancel_subscription(
        subscription_reference=order.subscription_reference,
        at_period_end=True,
        config=await app[PLUGIN_SETTINGS].config(plugin),
    )
    await billing.set_subscription_status(app[DB], order.id, "cancelling")
    order = await billing.order_for(app[DB], order.id, actor.user_id, is_admin=False)
    return order_out(order, await _plans_by_id(app))


@routes.post("/api/billing/portal", name="api_billing_portal")
@endpoint(access="user", response=UrlOut, tags=["billing"], errors=[409, 502])
async def billing_portal(request: web.Request) -> dict[str, Any]:
    """A link to the payment provider's self-service page (cards, invoices, subscription)."""
    actor = require_user(request)
    app = request.app
    plugin, backend = choose_backend(app, None)
    customer = await billing.customer_reference(app[DB], actor.user_id, backend.id)
    if customer is None:
        raise Conflict("You have not paid with this provider yet.", code="no_customer")
    url = await backend.create_portal(
        customer_reference=customer,
        return_url=site_url(request, "/billing"),
        config=await app[PLUGIN_SETTINGS].config(plugin),
    )
    return {"url": url}


@routes.post("/api/billing/{backend}/webhook", name="api_billing_webhook")
@endpoint(access="public", response=WebhookOut, tags=["billing"], rate=None, errors=[400, 404])
async def post_webhook(request: web.Request) -> dict[str, Any]:
    """A payment provider's event. Its signature is checked by the backend (a bad or stale one
    is a 400 and changes nothing); each event id is applied once; unknown types are
    acknowledged and ignored."""
    app = request.app
    backends = app[PLUGINS].registries.billing
    name = request.match_info["backend"]
    if name not in backends:
        raise NotFound("No such payment backend.")
    plugin, backend = backends[name]
    raw = await request.read()
    try:
        event = await backend.parse_webhook(
            body=raw, headers=request.headers, config=await app[PLUGIN_SETTINGS].config(plugin)
        )
    except WebhookRejected as exc:
        log.warning("billing.webhook_rejected", backend=name, reason=str(exc))
        raise BadRequest(
            "The webhook's signature could not be verified.", code="bad_signature"
        ) from None
    outcome = await billing.apply_event(app[DB], backend.id, event)
    await reactions.after_event(app, backend.id, event, outcome)
    log.info(
        "billing.webhook",
        backend=name,
        event_id=event.id,
        type=event.provider_type,
        outcome=outcome,
    )
    return {"received": True, "outcome": outcome}


# -- admin --------------------------------------------------------------------------------------


@routes.get("/api/admin/plans", name="api_admin_plans")
@endpoint(access="admin", response=list[PlanOut], tags=["billing"])
async def admin_plans(request: web.Request) -> list[dict[str, Any]]:
    """Every plan, archived ones included."""
    return [plan_out(p) for p in await billing.list_plans(request.app[DB], include_archived=True)]


@routes.post("/api/admin/plans", name="api_admin_plans_create")
@endpoint(access="admin", body=PlanIn, response=PlanOut, status=201, tags=["billing"], errors=[422])
async def create_plan(request: web.Request, body: PlanIn) -> dict[str, Any]:
    """Create a credits or storage plan (price in minor units)."""
    plan = await billing.create_plan(request.app[DB], body.plan_values())
    await audit.record(
        request.app, request, "billing.plan_created", target_type="plan", target_id=plan.id
    )
    return plan_out(plan)


@routes.patch("/api/admin/plans/{id}", name="api_admin_plan")
@endpoint(access="admin", body=PlanPatch, response=PlanOut, tags=["billing"], errors=[404, 422])
async def edit_plan(request: web.Request, body: PlanPatch) -> dict[str, Any]:
    """Change a plan; orders already placed keep the price and credits they were sold at."""
    changes = body.model_dump(exclude_unset=True)
    plan = await billing.update_plan(request.app[DB], request.match_info["id"], changes)
    await audit.record(
        request.app, request, "billing.plan_changed", target_type="plan", target_id=plan.id
    )
    return plan_out(plan)


@routes.post("/api/admin/plans/{id}/archive", name="api_admin_plan_archive")
@endpoint(access="admin", response=PlanOut, tags=["billing"], errors=[404])
async def archive_plan(request: web.Request) -> dict[str, Any]:
    """Stop selling a plan (existing orders are unaffected)."""
    plan = await billing.archive_plan(request.app[DB], request.match_info["id"])
    await audit.record(
        request.app, request, "billing.plan_archived", target_type="plan", target_id=plan.id
    )
    return plan_out(plan)


@routes.get("/api/admin/coupons", name="api_admin_coupons")
@endpoint(access="admin", response=list[CouponOut], tags=["billing"])
async def admin_coupons(request: web.Request) -> list[dict[str, Any]]:
    """Every coupon with its usage count."""
    return [coupon_out(c) for c in await billing.list_coupons(request.app[DB])]


@routes.post("/api/admin/coupons", name="api_admin_coupons_create")
@endpoint(
    access="admin",
    body=CouponIn,
    response=CouponOut,
    status=201,
    tags=["billing"],
    errors=[409, 422],
)
async def create_coupon(request: web.Request, body: CouponIn) -> dict[str, Any]:
    """Create a coupon: percent (with an optional cap) or a fixed amount off, limits, bonus."""
    coupon = await billing.create_coupon(request.app[DB], body.model_dump())
    await audit.record(
        request.app, request, "billing.coupon_created", target_type="coupon", target_id=coupon.id
    )
    return coupon_out(coupon)


@routes.post("/api/admin/coupons/{id}/archive", name="api_admin_coupon_archive")
@endpoint(access="admin", response=CouponOut, tags=["billing"], errors=[404])
async def archive_coupon(request: web.Request) -> dict[str, Any]:
    """Stop accepting a coupon."""
    coupon = await billing.archive_coupon(request.app[DB], request.match_info["id"])
    await audit.record(
        request.app, request, "billing.coupon_archived", target_type="coupon", target_id=coupon.id
    )
    return coupon_out(coupon)


@routes.get("/api/admin/orders", name="api_admin_orders")
@endpoint(
    access="admin", query=OrdersQuery, response=list[OrderOut], tags=["billing"], errors=[422]
)
async def admin_orders(request: web.Request, query: OrdersQuery) -> list[dict[str, Any]]:
    """Everyone's orders, newest first, filtered like the console's order search; ``before``
    (the last id of a page) continues after it."""
    plans = await _plans_by_id(request.app)
    rows, _ = await reports.search_orders(request.app[DB], query)
    return [order_out(row.order, plans) for row in rows]


@routes.post("/api/admin/orders/{id}/refund", name="api_admin_order_refund")
@endpoint(
    access="admin", body=RefundIn, response=OrderOut, tags=["billing"], errors=[404, 409, 502]
)
async def refund_order(request: web.Request, body: RefundIn) -> dict[str, Any]:
    """Refund a paid order through its payment provider, all that is left or ``amount`` of
    it, and take back the same part of its credits as far as they are unspent (never below
    zero; what was spent is the refund's ``shortfall``, see ``.../refunds``)."""
    order = await refund_through_backend(
        request, request.match_info["id"], body.reason, body.amount
    )
    return order_out(order, await _plans_by_id(request.app))


@routes.post("/api/admin/orders/{id}/mark-paid", name="api_admin_order_mark_paid")
@endpoint(
    access="admin",
    body=ManualPaymentIn,
    response=OrderOut,
    tags=["billing"],
    errors=[404, 409, 422],
)
async def mark_order_paid(request: web.Request, body: ManualPaymentIn) -> dict[str, Any]:
    """Record an offline payment (a bank transfer) of exactly the order's total: the order is
    paid and its credits granted once, as a webhook would. Repeating it changes nothing and
    answers the paid order; an order its provider paid, refunded or disputed is a 409."""
    admin = require_admin(request)
    order_id = request.match_info["id"]
    await manual_payments.mark_paid(request, order_id, body)
    order = await billing.order_for(request.app[DB], order_id, admin.user_id, is_admin=True)
    return order_out(order, await _plans_by_id(request.app))


@routes.get("/api/admin/orders/{id}/refunds", name="api_admin_order_refunds")
@endpoint(access="admin", response=list[RefundOut], tags=["billing"], errors=[404])
async def order_refunds(request: web.Request) -> list[dict[str, Any]]:
    """The order's refunds, oldest first, with the credits each took back and its shortfall."""
    admin = require_admin(request)
    order = await billing.order_for(
        request.app[DB], request.match_info["id"], admin.user_id, is_admin=True
    )
    return [
        {column: getattr(refund, column) for column in RefundOut.model_fields}
        for refund in await clawback.refunds_of(request.app[DB], order.id)
    ]
