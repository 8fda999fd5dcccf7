"""multinotes-paydemo: a MultinotesAI billing plugin.

``create_checkout`` starts a payment and returns the page to send the buyer to; when the
payment succeeds, the payment service calls the webhook
(``POST /api/plugins/paydemo/webhook``), signed with HMAC-SHA256 over the raw body, and the
plugin credits the user's wallet through the ledger: once per payment, however often the
webhook is delivered. Replace ``create_checkout`` and the webhook's parsing with your payment
service's API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, Field, SecretStr

from multinotes.plugin import (
    BillingBackend,
    BillingRegistrar,
    Checkout,
    RouteRegistrar,
    SettingsRegistrar,
    hookimpl,
    plugin_context,
)

PLUGIN = "paydemo"


class PaydemoSettings(BaseModel):
    checkout_url: str = Field(
        default="https://pay.paydemo.example/checkout", description="The payment page."
    )
    webhook_secret: SecretStr | None = Field(default=None, description="Signs the webhook.")
    credits_per_cent: int = Field(default=1_000, ge=1, description="Credits bought per cent.")


class PaydemoBackend(BillingBackend):
    backend_id = PLUGIN
    name = "Paydemo"

    async def create_checkout(
        self,
        *,
        user_id: str,
        plan_id: str,
        amount_cents: int,
        currency: str,
        config: Any,
        **details: Any,  # order_id, description, return URLs...: what core adds over time
    ) -> Checkout:
        reference = f"{PLUGIN}-{user_id}-{plan_id}-{amount_cents}"
        query = urlencode({"reference": reference, "amount": amount_cents, "currency": currency})
        url = f"{config.checkout_url}?{query}"
        return Checkout(url=url, reference=reference)


BACKEND = PaydemoBackend()


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def webhook(request: web.Request) -> web.Response:
    context = plugin_context(request.app, PLUGIN)
    settings = await context.settings(PaydemoSettings)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    raw = await request.read()  # verify the exact bytes that were signed
    given = request.headers.get("X-Paydemo-Signature", "")
    if not secret or not hmac.compare_digest(given, sign(secret, raw)):
        return web.json_response({"error": "bad signature"}, status=403)
    payment = json.loads(raw)
    if payment.get("status") != "paid":
        return web.json_response({"ignored": payment.get("status")})
    entry = await context.credit(
        payment["user_id"],
        int(payment["amount_cents"]) * settings.credits_per_cent,
        reason=f"Paydemo payment {payment['payment_id']}",
        reference=payment["payment_id"],  # a webhook delivered twice credits once
    )
    return web.json_response({"credited": entry.amount})


@hookimpl
def register_billing(register: BillingRegistrar) -> None:
    register(BACKEND)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(PaydemoSettings)


@hookimpl
def register_routes(register: RouteRegistrar) -> None:
    register(
        "POST", "/api/plugins/paydemo/webhook", webhook, access="public", name="paydemo_webhook"
    )
