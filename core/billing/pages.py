"""The money pages: ``/pricing`` (public plan cards, a coupon field with a live quote),
``/billing/return`` ("confirming…" until the provider's webhook lands) and ``/billing``
(current plan and orders). Buying goes through ``checkout.start_checkout`` like the API."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from multinotes.billing import auto_reload, referrals
from multinotes.billing import service as billing
from multinotes.billing.checkout import choose_backend, site_url, start_checkout
from multinotes.billing.models import Order, Plan
from multinotes.billing.schemas import QuoteIn
from multinotes.db import utcnow
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import current_actor, require_user
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS
from multinotes.wallet import service as wallet

routes = web.RouteTableDef()

#: Currencies without a minor unit (amounts are whole units).
ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"}


def money(amount: int, currency: str) -> str:
    if currency.upper() in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


def plan_view(plan: Plan) -> dict[str, Any]:
    per = {"once": "", "month": " / month", "year": " / year"}[plan.interval]
    return {
        "id": plan.id,
        "name": plan.name,
        "kind": plan.kind,
        "credits": plan.credits,
        "storage_gib": round((plan.storage_bytes or 0) / 2**30, 1),
        "price": money(plan.price, plan.currency) + per,
        "duration_days": plan.duration_days,
        "description": plan.description,
    }


def order_view(order: Order, plans: dict[str, Plan]) -> dict[str, Any]:
    plan = plans.get(order.plan_id)
    return {
        "id": order.id,
        "plan": plan.name if plan else "",
        "status": billing.shown_status(order),
        "total": money(order.total, order.currency),
        "discount": money(order.discount, order.currency) if order.discount else "",
        "credits": order.credits + order.bonus_credits,
        "subscription_status": order.subscription_status,
        "created_at": order.created_at,
        "paid_at": order.paid_at,
        "organisation_id": order.organisation_id,
        "seats": order.seats,
    }


def backend_choices(app: web.Application) -> list[dict[str, str]]:
    """The enabled payment backends a buyer may choose between, the default first (the one
    ``choose_backend`` takes when none is named)."""
    backends = app[PLUGINS].registries.billing
    ordered = sorted(backends, key=lambda backend_id: (backend_id != "stripe", backend_id))
    return [{"id": backend_id, "name": backends[backend_id][1].name} for backend_id in ordered]


async def _pricing(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    # Organisation plans (per seat) are bought from the organisation's page.
    plans = [
        plan_view(p) for p in await billing.list_plans(request.app[DB]) if p.kind != "organisation"
    ]
    return render(
        request,
        "billing/pricing.html",
        {
            "plans": plans,
            "error": error,
            "nav": "pricing",
            "logged_in": bool(current_actor(request)),
            "backends": backend_choices(request.app),
        },
        status=status,
    )


@routes.get("/pricing", name="pricing")
@page(access="public")
async def pricing(request: web.Request) -> web.Response:
    return await _pricing(request)


#: How the pages name the quote's fields in an error.
QUOTE_LABELS = {"plan_id": "Plan", "coupon_code": "Coupon code"}


def _quote_input(data: Any) -> QuoteIn:
    """The plan and coupon a page was sent, validated by the API's own ``QuoteIn`` (a blank
    coupon field means no coupon; other keys, such as a cache buster, are not the quote's)."""
    values = {
        name: str(data.get(name, "")).strip()
        for name in QUOTE_LABELS
        if str(data.get(name, "")).strip()
    }
    return cast(QuoteIn, validate(QuoteIn, values))


def _field_message(exc: AppError) -> str:
    """One line naming the field that is wrong, e.g. "Coupon code: This coupon has expired."."""
    if not exc.fields:
        return exc.message
    name, message = next(iter(exc.fields.items()))
    label = QUOTE_LABELS.get(name)
    return f"{label}: {message}" if label and not message.startswith(label) else message


@routes.get("/pricing/quote", name="pricing_quote")
@page(access="public")
async def pricing_quote(request: web.Request) -> web.Response:
    """The price breakdown for one plan card (an htmx fragment; nothing is stored). Bad input
    is a 422 naming the field; to htmx, which swaps only 2xx answers, the same fragment comes
    with a 200 so the card shows it."""
    actor = current_actor(request)
    context: dict[str, Any] = {"plan_id": request.query.get("plan_id", "")[:32]}
    try:
        wanted = _quote_input(request.query)
        quote = await billing.quote(
            request.app[DB], actor.user_id if actor else "", wanted.plan_id, wanted.coupon_code
        )
    except Invalid as exc:
        context["error"] = _field_message(exc)
        context["error_fields"] = exc.fields
        status = 200 if request.headers.get("HX-Request") == "true" else 422
        return render(request, "billing/_quote.html", context, status=status)
    context["quote"] = {
        "subtotal": money(quote.subtotal, quote.currency),
        "discount": money(quote.discount, quote.currency) if quote.discount else "",
        "total": money(quote.total, quote.currency),
        "credits": quote.credits,
        "bonus_credits": quote.bonus_credits,
        "coupon_code": quote.coupon_code,
    }
    return render(request, "billing/_quote.html", context)


@routes.post("/billing/checkout", name="billing_checkout_form")
@page(access="user")
async def checkout_form(request: web.Request) -> web.StreamResponse:
    """The plan card's Buy button: off to the payment provider's page (the one chosen on the
    card when more than one is enabled)."""
    try:
        form = await request.post()
        wanted = _quote_input(form)
        backend = str(form.get("backend", "")).strip()[:64] or None
        order_id, _ = await start_checkout(request, wanted.plan_id, wanted.coupon_code, backend)
    except AppError as exc:
        return await _pricing(request, error=_field_message(exc), status=exc.status)
    # Our own page first: the CSP's form-action 'self' also covers a form's redirects, so the
    # form cannot be sent on to the provider's origin; that page's refresh is a navigation.
    return web.Response(status=303, headers={"Location": f"/billing/pay?order={order_id}"})


@routes.get("/billing/pay", name="billing_pay")
@page(access="user")
async def billing_pay(request: web.Request) -> web.Response:
    """On to the payment provider's page of one of your pending orders."""
    actor = require_user(request)
    order = await billing.order_for(
        request.app[DB], request.query.get("order", "")[:32], actor.user_id, is_admin=False
    )
    if billing.shown_status(order) != "pending" or not order.url:
        raise web.HTTPSeeOther(f"/billing/return?order={order.id}")
    return render(request, "billing/pay.html", {"url": order.url, "nav": "billing"})


async def _return_context(request: web.Request) -> dict[str, Any]:
    actor = require_user(request)
    order = await billing.order_for(
        request.app[DB], request.query.get("order", "")[:32], actor.user_id, is_admin=False
    )
    plans = {p.id: p for p in await billing.list_plans(request.app[DB], include_archived=True)}
    current = await wallet.balance(request.app[DB], actor.user_id)
    return {"order": order_view(order, plans), "balance": current.available}


@routes.get("/billing/return", name="billing_return")
@page(access="user")
async def billing_return(request: web.Request) -> web.Response:
    """Where the provider sends the buyer back. It proves nothing: it waits for the webhook."""
    return render(
        request, "billing/return.html", {**await _return_context(request), "nav": "billing"}
    )


@routes.get("/billing/return/status", name="billing_return_status")
@page(access="user")
async def billing_return_status(request: web.Request) -> web.Response:
    return render(request, "billing/_return_status.html", await _return_context(request))


@routes.get("/billing", name="billing")
@page(access="user")
async def billing_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    plans = {p.id: p for p in await billing.list_plans(db, include_archived=True)}
    orders = [order_view(o, plans) for o in await billing.list_orders(db, actor.user_id)]
    period = await billing.current_period(db, actor.user_id)
    code = await referrals.existing_code(db, actor.user_id)  # a GET makes none
    referral_url = site_url(request, f"/r/{code}") if code else ""
    current_plan = plans.get(period.plan_id) if period and period.plan_id else None
    storage_plan = (
        plans.get(period.storage_plan_id)
        if period
        and period.storage_plan_id
        and (period.storage_expires_at is None or period.storage_expires_at > utcnow())
        else None
    )
    return render(
        request,
        "billing/index.html",
        {
            "nav": "billing",
            "orders": orders,
            "plan": current_plan,
            "plan_expires_at": period.expires_at if period else None,
            "storage_plan": storage_plan,
            "storage_expires_at": period.storage_expires_at if storage_plan and period else None,
            "balance": (await wallet.balance(db, actor.user_id)).available,
            "referral_url": referral_url,
            "auto_reload": await auto_reload.state(request.app, actor.user_id),
            "reload_plans": [plan_view(p) for p in auto_reload.reload_plans(list(plans.values()))],
        },
    )


@routes.post("/billing/referral", name="billing_referral_form")
@page(access="user")
async def referral_form(request: web.Request) -> web.StreamResponse:
    """Make the referral link of an account that was created before referrals existed."""
    await referrals.code_for(request.app[DB], require_user(request).user_id)
    return redirect("/billing#referral")


@routes.get("/r/{code}", name="referral_link")
@page(access="public")
async def referral_link(request: web.Request) -> web.StreamResponse:
    """A referral link: remembered in this browser for its sign-up, then on to /register."""
    response = web.Response(status=303, headers={"Location": "/register"})
    response.set_cookie(
        referrals.COOKIE,
        request.match_info["code"][:16],
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
    )
    return response


@routes.post("/billing/orders/{id}/cancel", name="billing_cancel_form")
@page(access="user")
async def cancel_form(request: web.Request) -> web.StreamResponse:
    """Cancel a subscription at the end of its period (the order's Cancel button)."""
    actor = require_user(request)
    app = request.app
    order = await billing.order_for(
        app[DB], request.match_info["id"], actor.user_id, is_admin=False
    )
    if not order.subscription_reference or order.subscription_status not in ("active", "past_due"):
        return redirect("/billing", "This order has no running subscription.", "error")
    plugin, backend = choose_backend(app, order.backend)
    try:
        await backend.cancel_subscription(
            subscription_reference=order.subscription_reference,
            at_period_end=True,
            config=await app[PLUGIN_SETTINGS].config(plugin),
        )
    except AppError as exc:
        return redirect("/billing", exc.message, "error")
    await billing.set_subscription_status(app[DB], order.id, "cancelling")
    return redirect("/billing", "Your subscription ends with the period already paid.")


@routes.post("/billing/portal", name="billing_portal_form")
@page(access="user")
async def portal_form(request: web.Request) -> web.StreamResponse:
    """On to the provider's self-service page (a page of ours whose refresh goes there: the
    CSP keeps forms and their redirects on this site)."""
    actor = require_user(request)
    app = request.app
    try:
        plugin, backend = choose_backend(app, None)
        customer = await billing.customer_reference(app[DB], actor.user_id, backend.id)
        if customer is None:
            return redirect("/billing", "You have not paid with this provider yet.", "error")
        url = await backend.create_portal(
            customer_reference=customer,
            return_url=site_url(request, "/billing"),
            config=await app[PLUGIN_SETTINGS].config(plugin),
        )
    except AppError as exc:
        return redirect("/billing", exc.message, "error")
    return render(request, "billing/pay.html", {"url": url, "nav": "billing"})
