"""Razorpay payments: Orders and Subscriptions paid in Razorpay's Checkout, signed webhooks,
refunds.

The official ``razorpay`` SDK does the work (in a thread: it is synchronous), through the
outgoing guard; ``api_base`` points it at any server that speaks Razorpay's API (a local fake in
tests). Settings come from the Plugins console or ``MULTINOTES_PLUGINS__RAZORPAY__*``: ``key_id``,
``key_secret`` and ``webhook_secret`` (both stored encrypted, never shown), ``api_base`` and
``checkout_script``. Webhooks arrive at ``POST /api/billing/razorpay/webhook``: add that URL in
Razorpay's dashboard with a secret of your choosing, paste it as ``webhook_secret``, and pick the
events ``payment.captured``, ``payment.failed``, ``order.paid``, ``subscription.charged``,
``subscription.pending``, ``subscription.halted``, ``subscription.cancelled``,
``subscription.completed``, ``refund.processed`` and ``payment.dispute.created``.

How a purchase goes: ``backend.py`` (orders, subscriptions, the payment's confirmation, refunds),
``page.py`` (the checkout page, and why it is ours), ``events.py`` (webhooks → core's events).
"""

from __future__ import annotations

from pathlib import Path

from multinotes.plugin import (
    BillingRegistrar,
    RouteRegistrar,
    SettingsRegistrar,
    TemplateRegistrar,
    hookimpl,
)
from multinotes.plugins.billing.razorpay.backend import RazorpayBackend
from multinotes.plugins.billing.razorpay.page import checkout_page
from multinotes.plugins.billing.razorpay.settings import RazorpaySettings

__version__ = "1.0.0"


@hookimpl
def register_billing(register: BillingRegistrar) -> None:
    """Razorpay as the ``razorpay`` payment backend."""
    register(RazorpayBackend())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    """Keys, webhook secret, API base and checkout script (secrets stored encrypted)."""
    register(RazorpaySettings)


@hookimpl
def register_routes(register: RouteRegistrar) -> None:
    """The page where the buyer pays in Razorpay's Checkout."""
    register(
        "GET", "/billing/razorpay/checkout", checkout_page, access="user", name="razorpay_checkout"
    )


@hookimpl
def register_templates(register: TemplateRegistrar) -> None:
    """The checkout page's template and script."""
    here = Path(__file__).parent
    register(templates=here / "templates", static=here / "static")
