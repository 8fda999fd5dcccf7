"""The checkout page: Razorpay's Checkout runs on our page, not on a hosted one.

Why a page of ours: Razorpay has no hosted page for an Order. Its Standard Checkout is a script
(``checkout.js``) that opens Razorpay's payment form in a frame over the merchant's page and hands
the page's ``handler`` the payment id and signature. Its redirect mode (``callback_url``) posts
them from Razorpay's origin instead, which this site's CSRF guard refuses for every cross-site
POST, by design. So the page loads the script from ``checkout_script`` (Razorpay's by default;
the tests' fake Razorpay serves one that speaks the same options, frame and handler), and our own
script (``static/checkout.js``) sends the proof to ``POST /api/billing/orders/{id}/confirm``,
where core has it checked and the payment fetched from Razorpay before anything is credited.

The page widens the site's Content-Security-Policy for this page only: the script's origin in
``script-src``, and the frame's (the checkout and the API origins) in ``frame-src``. Without
JavaScript the page says so; the order stays pending and its webhook can still complete it.

The page is ``GET /billing/razorpay/checkout?ref=<Razorpay order or subscription id>``. What it
shows comes from Razorpay (the order's or the plan's amount, the notes written at checkout), and
only the buyer named in those notes may see it (else 404).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from multinotes.plugin import NotFound, ProviderBadResponse, plugin_context
from multinotes.plugins.billing.razorpay import client as sdk
from multinotes.plugins.billing.razorpay.settings import (
    DEFAULT_API_BASE,
    DEFAULT_CHECKOUT_SCRIPT,
    RazorpaySettings,
)

PLUGIN = "razorpay"
REFERENCE = re.compile(r"^(order|sub)_[A-Za-z0-9]{1,40}$")
#: Currencies without a minor unit (amounts are whole units), as core's pages show them.
ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""


def page_policy(settings: RazorpaySettings) -> str:
    """The site's policy, plus Razorpay's script and frames (this page only)."""
    script = _origin(settings.checkout_script or DEFAULT_CHECKOUT_SCRIPT)
    frames = " ".join(
        dict.fromkeys(o for o in (script, _origin(settings.api_base or DEFAULT_API_BASE)) if o)
    )
    return (
        f"default-src 'self'; script-src 'self' {script}; style-src 'self'; "
        "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
        f"font-src 'self' data:; frame-src {frames}; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def money(amount: int, currency: str) -> str:
    if currency.upper() in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


def _object(found: Any) -> dict[str, Any]:
    if not isinstance(found, dict):
        raise ProviderBadResponse("Razorpay answered with something other than an object.")
    return found


async def _what_is_paid(config: RazorpaySettings, reference: str) -> dict[str, Any]:
    """The order (or subscription and its plan) at Razorpay: amount, currency, notes, status."""
    if reference.startswith("order_"):
        order = _object(await sdk.call(config, "the order", lambda c: c.order.fetch(reference)))
        return {
            "amount": order.get("amount"),
            "currency": order.get("currency"),
            "notes": order.get("notes") or {},
            "paid": order.get("status") == "paid",
        }
    subscription = _object(
        await sdk.call(config, "the subscription", lambda c: c.subscription.fetch(reference))
    )
    plan_id = str(subscription.get("plan_id") or "")
    plan = _object(await sdk.call(config, "the plan", lambda c: c.plan.fetch(plan_id)))
    item: dict[str, Any] = plan["item"] if isinstance(plan.get("item"), dict) else {}
    return {
        "amount": item.get("amount"),
        "currency": item.get("currency"),
        "notes": subscription.get("notes") or {},
        "paid": (subscription.get("paid_count") or 0) > 0,
        "period": plan.get("period"),
    }


async def checkout_page(request: web.Request) -> web.StreamResponse:
    """Pay one of your pending Razorpay orders or subscriptions in Razorpay's Checkout."""
    context = plugin_context(request.app, PLUGIN)
    caller = context.caller(request)
    reference = request.query.get("ref", "")
    if not REFERENCE.match(reference):
        raise NotFound("No such order.")
    config = await context.settings(RazorpaySettings)
    found = await _what_is_paid(config, reference)
    notes = found["notes"] if isinstance(found["notes"], dict) else {}
    order_id = str(notes.get("order_id") or "")
    if notes.get("user_id") != caller.user_id or not order_id:
        raise NotFound("No such order.")
    if found["paid"]:
        raise web.HTTPSeeOther(f"/billing/return?order={order_id}")
    amount, currency = found["amount"], str(found["currency"] or "")
    if not isinstance(amount, int) or not currency:
        raise NotFound("No such order.")
    description = str(notes.get("description") or "")
    response = context.render_page(
        request,
        "razorpay/checkout.html",
        nav="billing",
        order_id=order_id,
        description=description,
        total=money(amount, currency),
        period=found.get("period"),
        checkout_script=config.checkout_script or DEFAULT_CHECKOUT_SCRIPT,
        options={
            "key": config.key_id or "",
            "amount": str(amount),
            "currency": currency,
            "name": "MultinotesAI",
            "description": description,
            "email": caller.email,
            "contact-name": caller.name,
            "order": reference if reference.startswith("order_") else "",
            "subscription": reference if reference.startswith("sub_") else "",
            "confirm-url": f"/api/billing/orders/{order_id}/confirm",
            "return-url": f"/billing/return?order={order_id}",
        },
    )
    response.headers["Content-Security-Policy"] = page_policy(config)
    return response
