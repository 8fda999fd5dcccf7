"""``RazorpayBackend``: Razorpay Orders and Subscriptions behind core's billing contract.

* One-time plans: a Razorpay **Order** for the amount core computed. Razorpay has no hosted
  page for an order: the buyer pays in Razorpay's Checkout on our own page
  (``/billing/razorpay/checkout``, see ``page.py``), which hands the browser a payment id and a
  signature, HMAC-SHA256(``order_id|payment_id``, key secret).
* Recurring plans: a Razorpay **Plan** at that amount and period, and a **Subscription** of it,
  paid in the same Checkout (signature over ``payment_id|subscription_id``).
* The browser's proof is never enough: ``confirm_payment`` checks the signature and that it is
  about this order, then fetches the payment from Razorpay (and captures it if it is only
  authorised). The signed webhooks (``payment.captured``, ``order.paid``,
  ``subscription.charged``, ...) confirm the same payment independently; core applies
  whichever comes first and the other changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

from multinotes.plugin import (
    BillingBackend,
    BillingEvent,
    Checkout,
    NeedsKey,
    ProviderBadResponse,
    WebhookRejected,
)
from multinotes.plugins.billing.razorpay import client as sdk
from multinotes.plugins.billing.razorpay.events import translate
from multinotes.plugins.billing.razorpay.settings import secret

if TYPE_CHECKING:  # the SDK is imported where used, on first use (a few MB idle)
    import razorpay

#: Razorpay's period for core's interval, and how many cycles a subscription runs (Razorpay
#: needs an end; ten years, after which the buyer subscribes again).
PERIODS = {"month": ("monthly", 120), "year": ("yearly", 10)}
#: The path of the checkout page (relative to ``/billing/``, like the return page).
CHECKOUT_PATH = "razorpay/checkout"


def checkout_url(success_url: str, reference: str) -> str:
    """Our checkout page for ``reference``, on the site ``success_url`` (``…/billing/return``)
    belongs to, under the same path prefix when the site has one."""
    return urljoin(success_url, f"{CHECKOUT_PATH}?{urlencode({'ref': reference})}")


class RazorpayBackend(BillingBackend):
    backend_id = "razorpay"
    name = "Razorpay"

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
        # The notes travel with the order/subscription: the checkout page checks the buyer with
        # them and the webhooks find core's order by them.
        notes = {
            "order_id": order_id,
            "user_id": user_id,
            "plan_id": plan_id,
            "description": description[:250],
        }
        if interval == "once":
            order = await sdk.call(
                config,
                "the order",
                lambda c: c.order.create(
                    {
                        "amount": amount_cents,
                        "currency": currency.upper(),
                        "receipt": order_id[:40],
                        "notes": notes,
                    }
                ),
            )
            reference = order.get("id") if isinstance(order, dict) else None
        else:
            period, count = PERIODS[interval]
            plan = await sdk.call(
                config,
                "the plan",
                lambda c: c.plan.create(
                    {
                        "period": period,
                        "interval": 1,
                        "item": {
                            "name": (description or plan_id)[:100],
                            "amount": amount_cents,
                            "currency": currency.upper(),
                        },
                        "notes": notes,
                    }
                ),
            )
            if not isinstance(plan, dict) or not plan.get("id"):
                raise ProviderBadResponse("Razorpay returned a plan without an id.")
            subscription = await sdk.call(
                config,
                "the subscription",
                lambda c: c.subscription.create(
                    {
                        "plan_id": plan["id"],
                        "total_count": count,
                        "quantity": 1,
                        "customer_notify": 1,
                        "notes": notes,
                    }
                ),
            )
            reference = subscription.get("id") if isinstance(subscription, dict) else None
        if not isinstance(reference, str) or not reference:
            raise ProviderBadResponse("Razorpay returned no id for the checkout.")
        return Checkout(url=checkout_url(success_url, reference), reference=reference)

    async def confirm_payment(
        self, *, order_id: str, reference: str, proof: Mapping[str, str], config: Any
    ) -> BillingEvent:
        key_secret = secret(config, "key_secret")
        if not key_secret:  # an empty key would make anyone's HMAC "valid"
            raise NeedsKey("Razorpay is not configured: set its key secret in the Plugins console.")
        payment_id = proof.get("razorpay_payment_id") or ""
        signature = proof.get("razorpay_signature") or ""
        if not payment_id or not signature:
            raise WebhookRejected("the proof lacks razorpay_payment_id or razorpay_signature")
        subscription = reference.startswith("sub_")
        # The signature binds the payment to *this* order's Razorpay order/subscription, so a
        # valid proof of another (cheaper) order does not pay for this one.
        fields = {
            "razorpay_payment_id": payment_id,
            "razorpay_signature": signature,
            "razorpay_subscription_id" if subscription else "razorpay_order_id": reference,
        }
        from razorpay.errors import SignatureVerificationError
        from razorpay.utility import Utility

        verifier = Utility(SimpleNamespace(auth=("", key_secret)))  # reads the secret only
        try:
            if subscription:
                verifier.verify_subscription_payment_signature(fields)
            else:
                verifier.verify_payment_signature(fields)
        except SignatureVerificationError:
            raise WebhookRejected("the payment signature does not match this order") from None
        named = proof.get("razorpay_subscription_id" if subscription else "razorpay_order_id")
        if named and named != reference:
            raise WebhookRejected("the proof names another order")

        payment = await sdk.call(config, "the payment", lambda c: c.payment.fetch(payment_id))
        if not isinstance(payment, dict):
            raise ProviderBadResponse("Razorpay returned no payment.")
        if subscription:
            current = await sdk.call(
                config, "the subscription", lambda c: c.subscription.fetch(reference)
            )
            if not isinstance(current, dict) or (current.get("paid_count") or 0) < 1:
                raise WebhookRejected("the subscription has no paid charge yet")
            customer = current.get("customer_id")
        else:
            if payment.get("order_id") != reference:
                raise WebhookRejected("the payment belongs to another order")
            customer = payment.get("customer_id")
        if payment.get("status") == "authorized":
            # Captured here when the account does not capture automatically; an authorised
            # payment not captured in time is refunded by Razorpay and must not grant credits.
            amount, currency = payment.get("amount"), payment.get("currency")
            payment = await sdk.call(
                config,
                "the capture",
                lambda c: c.payment.capture(payment_id, amount, {"currency": currency}),
            )
        if not isinstance(payment, dict) or payment.get("status") != "captured":
            raise WebhookRejected("the payment is not captured")
        currency = payment.get("currency")
        return BillingEvent(
            id=f"confirmed:{payment_id}",
            type="payment.succeeded",
            provider_type="checkout.confirmed",
            raw={"proof": dict(fields), "payment": payment},
            order_id=order_id,
            reference=reference,
            payment_reference=payment_id,
            customer_reference=customer if isinstance(customer, str) and customer else None,
            subscription_reference=reference if subscription else None,
            amount=payment.get("amount") if isinstance(payment.get("amount"), int) else None,
            currency=currency.upper() if isinstance(currency, str) else None,
        )

    async def parse_webhook(
        self, *, body: bytes, headers: Mapping[str, str], config: Any
    ) -> BillingEvent:
        from razorpay.errors import SignatureVerificationError
        from razorpay.utility import Utility

        webhook_secret = secret(config, "webhook_secret")
        if not webhook_secret:
            raise WebhookRejected("no webhook_secret is configured")
        signature = headers.get("X-Razorpay-Signature")
        if not signature:
            raise WebhookRejected("no X-Razorpay-Signature header")
        try:
            text = body.decode()
            Utility().verify_webhook_signature(text, signature, webhook_secret)
            event = json.loads(text)
        except (SignatureVerificationError, ValueError) as exc:
            raise WebhookRejected(str(exc) or "bad signature") from None
        if not isinstance(event, dict) or event.get("entity") != "event":
            raise WebhookRejected("not a Razorpay event")
        # Razorpay sends the event's id in a header, the same on every retry; a sender that
        # leaves it out still gets one delivery counted once (the body's digest, which the
        # signature covers).
        event_id = (
            headers.get("X-Razorpay-Event-Id") or "sha256:" + hashlib.sha256(body).hexdigest()
        )
        return translate(event_id[:255], event)

    async def refund(
        self,
        *,
        payment_reference: str,
        amount: int,
        reason: str,
        idempotency_key: str,
        config: Any,
    ) -> str:
        # Razorpay's receipt holds 40 characters: a longer key is shortened to its digest, so
        # two keys that share their first 40 characters stay apart.
        receipt = idempotency_key
        if len(receipt) > 40:
            receipt = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]

        def refund_once(c: razorpay.Client) -> Any:
            # Razorpay's refund API takes no idempotency key: a refund made by an earlier try
            # carries this receipt, so a retry finds it instead of refunding again.
            earlier = c.payment.fetch_multiple_refund(payment_reference, {"count": 100})
            for item in (earlier or {}).get("items") or []:
                if isinstance(item, dict) and item.get("receipt") == receipt:
                    return item
            return c.payment.refund(
                payment_reference,
                {
                    "amount": amount,
                    "speed": "normal",
                    "receipt": receipt,
                    "notes": {"reason": reason[:250]},
                },
            )

        refund = await sdk.call(config, "the refund", refund_once)
        if not isinstance(refund, dict) or not refund.get("id"):
            raise ProviderBadResponse("Razorpay returned a refund without an id.")
        return str(refund["id"])

    async def cancel_subscription(
        self, *, subscription_reference: str, at_period_end: bool, config: Any
    ) -> None:
        await sdk.call(
            config,
            "the cancellation",
            lambda c: c.subscription.cancel(
                subscription_reference, {"cancel_at_cycle_end": 1 if at_period_end else 0}
            ),
        )
