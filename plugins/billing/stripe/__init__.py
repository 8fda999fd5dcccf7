"""Stripe payments: Checkout Sessions for one-time and recurring plans, signed webhooks,
off-session PaymentIntents for auto-reload.

A one-time checkout saves the card for later (``setup_future_usage=off_session``, with a
Customer): auto-reload then charges it with ``off_session=true, confirm=true``. A refusal
(``card_declined``, ``authentication_required``, ...) is Stripe's ``CardError``, turned into the
contract's ``PaymentDeclined``.

The official ``stripe`` SDK does the work; ``api_base`` points it at any server that speaks
Stripe's API (a local fake in tests). Settings come from the Plugins console or
``MULTINOTES_PLUGINS__STRIPE__*``. Webhooks arrive at ``POST /api/billing/stripe/webhook``;
register that URL in Stripe's dashboard and paste its signing secret as ``webhook_secret``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, SecretStr

from multinotes.plugin import (
    BillingBackend,
    BillingEvent,
    BillingRegistrar,
    Checkout,
    NeedsKey,
    PaymentDeclined,
    ProviderBadResponse,
    ProviderUnavailable,
    SettingsRegistrar,
    WebhookRejected,
    hookimpl,
    outgoing,
)

if TYPE_CHECKING:  # the SDK itself is imported where used, on first use (a few MB idle)
    import stripe

__version__ = "1.0.0"

#: Stripe's default: a signature older than this (seconds) is refused, so a captured webhook
#: cannot be replayed later.
TOLERANCE = 300
#: Checkout pages expire before the core's order (one hour) stops holding its coupon.
SESSION_LIFETIME = 55 * 60


class StripeSettings(BaseModel):
    secret_key: SecretStr | None = Field(
        default=None, title="Secret key", description="From dashboard.stripe.com → Developers."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        title="Webhook signing secret",
        description="whsec_... of the endpoint <your site>/api/billing/stripe/webhook.",
    )
    api_base: str = Field(
        default="https://api.stripe.com",
        title="API base",
        description="Change only for a server that speaks Stripe's API (tests, a proxy).",
    )


def _secret(config: Any, name: str) -> str | None:
    value = getattr(config, name, None)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _ref(value: Any) -> str | None:
    """An expandable field: an id, or the object itself."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


#: What a Stripe event can mean to core (a subset of ``BillingEvent.type``).
Meaning = Literal[
    "payment.succeeded", "payment.failed", "checkout.expired", "refunded", "disputed", "ignored"
]

#: Stripe event type → what it means to core, for the objects carrying a payment.
PAYMENT_EVENTS: dict[str, Meaning] = {
    "checkout.session.completed": "payment.succeeded",
    "checkout.session.async_payment_succeeded": "payment.succeeded",
    "checkout.session.async_payment_failed": "payment.failed",
    "checkout.session.expired": "checkout.expired",
    "payment_intent.succeeded": "payment.succeeded",
    "payment_intent.payment_failed": "payment.failed",
    "charge.refunded": "refunded",
    "charge.dispute.created": "disputed",
}


def translate(event: dict[str, Any]) -> BillingEvent:
    """A verified Stripe event as core's ``BillingEvent``."""
    kind = str(event.get("type") or "")
    obj = (event.get("data") or {}).get("object") or {}
    meaning: Meaning = PAYMENT_EVENTS.get(kind, "ignored")
    metadata = obj.get("metadata") or {}
    order_id = metadata.get("order_id") or obj.get("client_reference_id")
    currency = obj.get("currency")
    common: dict[str, Any] = {
        "id": str(event.get("id") or ""),
        "provider_type": kind,
        "raw": event,
        "order_id": order_id,
        "customer_reference": _ref(obj.get("customer")),
        "currency": currency.upper() if isinstance(currency, str) else None,
    }
    if kind == "checkout.session.completed" and obj.get("payment_status") == "unpaid":
        meaning = "ignored"  # a delayed method (bank debit): async_payment_* follows
    if kind.startswith("invoice."):
        return _invoice_event(kind, obj, common)
    if kind == "customer.subscription.deleted":
        return BillingEvent(
            type="subscription.cancelled", subscription_reference=_ref(obj.get("id")), **common
        )
    if kind.startswith("checkout.session."):
        return BillingEvent(
            type=meaning,
            reference=_ref(obj.get("id")),
            subscription_reference=_ref(obj.get("subscription")),
            payment_reference=_ref(obj.get("payment_intent")),
            amount=obj.get("amount_total") if meaning == "payment.succeeded" else None,
            **common,
        )
    if kind.startswith("payment_intent."):
        error = obj.get("last_payment_error") or {}
        return BillingEvent(
            type=meaning,
            payment_reference=_ref(obj.get("id")),
            amount=obj.get("amount_received") if meaning == "payment.succeeded" else None,
            failure_code=error.get("code") if meaning == "payment.failed" else None,
            failure_message=error.get("message") if meaning == "payment.failed" else None,
            **common,
        )
    # charge.refunded comes for partial refunds too; amount_refunded is the total so far, which
    # is what core keys a refund on (so the admin's refund and this event count once).
    if kind.startswith("charge."):
        return BillingEvent(
            type=meaning,
            payment_reference=_ref(obj.get("payment_intent")),
            amount=obj.get("amount_refunded") if meaning == "refunded" else obj.get("amount"),
            **common,
        )
    return BillingEvent(type="ignored", **common)


def _invoice_event(kind: str, obj: dict[str, Any], common: dict[str, Any]) -> BillingEvent:
    """A subscription's invoice. Its first one (``subscription_create``) is the same payment as
    the checkout session; later ones (``subscription_cycle``) are renewals."""
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    if not details:  # API versions before 2025-03 put it on the invoice itself
        details = {
            "subscription": obj.get("subscription"),
            "metadata": obj.get("subscription_details", {}).get("metadata"),
        }
    order_id = (details.get("metadata") or {}).get("order_id") or common["order_id"]
    first = obj.get("billing_reason") == "subscription_create"
    if kind in ("invoice.paid", "invoice.payment_succeeded"):
        meaning = "payment.succeeded" if first else "subscription.renewed"
    elif kind == "invoice.payment_failed":
        meaning = "payment.failed"
    else:
        meaning = "ignored"
    return BillingEvent(
        type=meaning,  # type: ignore[arg-type]
        reference=_ref(obj.get("id")),
        subscription_reference=_ref(details.get("subscription")),
        amount=obj.get("amount_paid") if meaning == "payment.succeeded" else None,
        **{**common, "order_id": order_id},
    )


class StripeBackend(BillingBackend):
    backend_id = "stripe"
    name = "Stripe"

    def _client(self, config: Any) -> tuple[stripe.StripeClient, stripe.AIOHTTPClient]:
        import stripe

        key = _secret(config, "secret_key")
        if not key:
            raise NeedsKey("Stripe is not configured: set its secret key in the Plugins console.")
        http = stripe.AIOHTTPClient(connector=outgoing.connector())
        base = str(getattr(config, "api_base", "") or "https://api.stripe.com").rstrip("/")
        client = stripe.StripeClient(
            key, base_addresses={"api": base}, http_client=http, max_network_retries=2
        )
        return client, http

    async def create_checkout(
        self,
        *,
        user_id: str,
        plan_id: str,
        amount_cents: int,
        currency: str,
        config: Any,
        order_id: str = "",
        description: str = "",
        interval: str = "once",
        success_url: str = "",
        cancel_url: str = "",
        customer_email: str | None = None,
    ) -> Checkout:
        metadata = {"order_id": order_id, "user_id": user_id, "plan_id": plan_id}
        price: dict[str, Any] = {
            "currency": currency.lower(),
            "unit_amount": amount_cents,
            "product_data": {"name": description or plan_id},
        }
        params: dict[str, Any] = {
            "mode": "payment" if interval == "once" else "subscription",
            "line_items": [{"quantity": 1, "price_data": price}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": order_id,
            "metadata": metadata,
            "expires_at": int(time.time()) + SESSION_LIFETIME,
        }
        if customer_email:
            params["customer_email"] = customer_email
        if interval == "once":
            # Keep the card for auto-reload, on a Customer it can be charged through later.
            params["payment_intent_data"] = {
                "metadata": metadata,
                "setup_future_usage": "off_session",
            }
            params["customer_creation"] = "always"
        else:
            price["recurring"] = {"interval": interval}
            params["subscription_data"] = {"metadata": metadata}
        import stripe

        client, http = self._client(config)
        try:
            session = await client.v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"checkout-{order_id}"},
            )
        except stripe.AuthenticationError as exc:
            raise NeedsKey(f"Stripe refused the secret key: {exc.user_message or exc}") from None
        except stripe.InvalidRequestError as exc:
            raise ProviderBadResponse(f"Stripe refused the checkout: {exc.user_message}") from None
        except stripe.StripeError as exc:
            raise ProviderUnavailable(f"Stripe could not be reached: {exc}") from None
        finally:
            await http.close_async()
        if not session.url or not session.id:
            raise ProviderBadResponse("Stripe returned a checkout session without a URL.")
        return Checkout(url=session.url, reference=session.id)

    async def _call(self, config: Any, what: str, call: Any) -> Any:
        import stripe

        client, http = self._client(config)
        try:
            return await call(client)
        except stripe.AuthenticationError as exc:
            raise NeedsKey(f"Stripe refused the secret key: {exc.user_message or exc}") from None
        except stripe.InvalidRequestError as exc:
            raise ProviderBadResponse(f"Stripe refused the {what}: {exc.user_message}") from None
        except stripe.StripeError as exc:
            raise ProviderUnavailable(f"Stripe could not be reached: {exc}") from None
        finally:
            await http.close_async()

    async def create_portal(self, *, customer_reference: str, return_url: str, config: Any) -> str:
        session = await self._call(
            config,
            "portal session",
            lambda client: client.v1.billing_portal.sessions.create_async(
                {"customer": customer_reference, "return_url": return_url}
            ),
        )
        return str(session.url)

    async def cancel_subscription(
        self, *, subscription_reference: str, at_period_end: bool, config: Any
    ) -> None:
        if at_period_end:
            await self._call(
                config,
                "cancellation",
                lambda client: client.v1.subscriptions.update_async(
                    subscription_reference, {"cancel_at_period_end": True}
                ),
            )
        else:
            await self._call(
                config,
                "cancellation",
                lambda client: client.v1.subscriptions.cancel_async(subscription_reference),
            )

    async def refund(
        self,
        *,
        payment_reference: str,
        amount: int,
        reason: str,
        idempotency_key: str,
        config: Any,
    ) -> str:
        refund = await self._call(
            config,
            "refund",
            lambda client: client.v1.refunds.create_async(
                {
                    "payment_intent": payment_reference,
                    "amount": amount,
                    "metadata": {"reason": reason[:500]},
                },
                {"idempotency_key": idempotency_key},
            ),
        )
        return str(refund.id)

    async def charge_off_session(
        self,
        *,
        customer_reference: str,
        amount_cents: int,
        currency: str,
        order_id: str,
        idempotency_key: str,
        config: Any,
    ) -> str:
        async def charge(client: stripe.StripeClient) -> str:
            import stripe

            method = await _saved_method(client, customer_reference)
            if method is None:
                raise PaymentDeclined("No saved card on this account.", code="no_payment_method")
            try:
                intent = await client.v1.payment_intents.create_async(
                    {
                        "amount": amount_cents,
                        "currency": currency.lower(),
                        "customer": customer_reference,
                        "payment_method": method,
                        "off_session": True,
                        "confirm": True,
                        "description": "Auto-reload",
                        "metadata": {"order_id": order_id},
                    },
                    {"idempotency_key": idempotency_key},
                )
            except stripe.CardError as exc:
                intent_of = getattr(exc.error, "payment_intent", None) if exc.error else None
                failed = getattr(intent_of, "id", None) if intent_of is not None else None
                raise PaymentDeclined(
                    exc.user_message or "The card was declined.",
                    code=str(exc.code or "card_declined"),
                    payment_reference=str(failed or ""),
                ) from None
            return str(intent.id)

        return str(await self._call(config, "off-session payment", charge))

    async def parse_webhook(
        self, *, body: bytes, headers: Mapping[str, str], config: Any
    ) -> BillingEvent:
        import stripe

        secret = _secret(config, "webhook_secret")
        if not secret:
            raise WebhookRejected("no webhook_secret is configured")
        signature = headers.get("Stripe-Signature")
        if not signature:
            raise WebhookRejected("no Stripe-Signature header")
        try:
            stripe.Webhook.construct_event(body, signature, secret, tolerance=TOLERANCE)
            event = json.loads(body)
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise WebhookRejected(str(exc)) from None
        if not isinstance(event, dict) or not event.get("id"):
            raise WebhookRejected("not a Stripe event")
        return translate(event)


async def _saved_method(client: stripe.StripeClient, customer: str) -> str | None:
    """The card to charge: the customer's default (set in the portal), else the newest saved."""
    found = (await client.v1.customers.retrieve_async(customer)).to_dict()
    default = _ref((found.get("invoice_settings") or {}).get("default_payment_method"))
    if default:
        return default
    methods = await client.v1.customers.payment_methods.list_async(customer, {"limit": 1})
    return str(methods.data[0].id) if methods.data else None


@hookimpl
def register_billing(register: BillingRegistrar) -> None:
    register(StripeBackend())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(StripeSettings)
