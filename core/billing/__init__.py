"""The billing-backend contract: payment providers that top up the credit wallet.

Core owns the money: plans, orders, coupons, the state machine of an order and every ledger
entry (``multinotes.billing.service``). A billing backend only *translates* between core and one
payment provider:

* ``create_checkout`` starts a one-time or recurring payment on the provider's hosted page and
  returns where to send the buyer (``Checkout``). Nothing is credited then.
* ``parse_webhook`` verifies a webhook's signature with the provider's SDK and turns it into one
  normalised ``BillingEvent`` (``payment.succeeded``, ``payment.failed``, ``checkout.expired``,
  ``subscription.renewed``, ``subscription.cancelled``, ``refunded``, ``disputed``, or
  ``ignored`` for anything else). A bad or stale signature raises ``WebhookRejected``. Core
  stores the raw event, applies each event id exactly once, and grants credits only then.
* ``confirm_payment`` (optional) checks the proof a checkout on our own page hands back
  (Razorpay's payment signature) and confirms the payment with the provider server-side.
* ``create_portal``, ``refund``, ``cancel_subscription`` and ``charge_off_session`` are optional
  (the default raises ``BillingNotSupported``). ``charge_off_session`` raises
  ``PaymentDeclined`` when the saved method is refused.

All methods are ``async`` and take the plugin's settings object as ``config`` (core resolves it;
plugins never read the environment). Every outgoing request must go through
``multinotes.plugin.outgoing``. Amounts are integers in the currency's minor unit (cents).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from multinotes.errors import Conflict

#: The normalised webhook events core understands (``BillingEvent.type``).
EventType = Literal[
    "payment.succeeded",
    "payment.failed",
    "checkout.expired",
    "subscription.renewed",
    "subscription.cancelled",
    "refunded",
    "disputed",
    "ignored",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Checkout:
    """Where to send the buyer, and the backend's reference to match its webhook later."""

    url: str
    reference: str


@dataclass(frozen=True)
class BillingEvent:
    """One verified webhook, normalised.

    :param id: the provider's event id; core applies each (backend, id) once.
    :param type: one of ``EVENT_TYPES``; ``ignored`` for types the backend does not translate.
    :param provider_type: the provider's own name for it (``checkout.session.completed``).
    :param order_id: core's order id when the provider echoes it back (metadata), else None.
    :param reference: the checkout reference ``create_checkout`` returned, when known.
    :param payment_reference: the provider's payment (refunds are made against it).
    :param customer_reference: the provider's customer (portal, off-session charges).
    :param subscription_reference: the provider's subscription, for recurring plans.
    :param amount: what was paid or refunded, in minor units, when the event says.
    :param currency: ISO 4217 code, upper case.
    :param failure_code: for ``payment.failed``, the provider's reason in a word
        (``card_declined``, ``authentication_required``), when it says.
    :param failure_message: for ``payment.failed``, the provider's explanation for the payer.
    :param raw: the whole event as the provider sent it (kept for audit).
    """

    id: str
    type: EventType
    provider_type: str
    raw: dict[str, Any] = field(default_factory=dict)
    order_id: str | None = None
    reference: str | None = None
    payment_reference: str | None = None
    customer_reference: str | None = None
    subscription_reference: str | None = None
    amount: int | None = None
    currency: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class WebhookRejected(Exception):
    """The webhook's signature is missing, wrong or stale, or its body is not an event. Core
    answers 400 and changes nothing. The message is for logs, not for the sender."""


class PaymentDeclined(Exception):
    """``charge_off_session``: the saved payment method was refused (a decline, a card that
    needs its holder to authenticate, no saved method left). Nothing was charged; core marks
    the order failed and stops charging that method until the user acts.

    :param code: the provider's reason in a word (``card_declined``,
        ``authentication_required``, ``no_payment_method``); shown to the user.
    :param payment_reference: the provider's failed payment, when it made one.
    """

    def __init__(self, message: str, *, code: str = "declined", payment_reference: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.payment_reference = payment_reference


class BillingNotSupported(Conflict):
    """The backend cannot do this (a refund, a portal, ...)."""

    code = "billing_not_supported"


class BillingBackend(ABC):
    """A payment provider. Register one with ``register_billing``.

    ``backend_id`` names the webhook route (``POST /api/billing/<backend_id>/webhook``) and the
    ``backend`` a checkout asks for."""

    backend_id: ClassVar[str]
    name: ClassVar[str]

    @property
    def id(self) -> str:
        return self.backend_id

    @abstractmethod
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
        """Start a payment of ``amount_cents`` (minor units of ``currency``) for ``order_id``.

        ``interval`` is ``once``, ``month`` or ``year`` (a subscription). The provider must echo
        ``order_id`` back in the events about this payment. ``success_url`` / ``cancel_url`` are
        absolute. Raise ``ProviderError`` (or ``NeedsKey`` when unconfigured) on failure. The
        wallet is credited only when a verified webhook confirms the payment."""

    async def parse_webhook(
        self, *, body: bytes, headers: Mapping[str, str], config: Any
    ) -> BillingEvent:
        """Verify ``body`` (the raw bytes, exactly as received) against the signature in
        ``headers`` and translate it. Raise ``WebhookRejected`` when it cannot be trusted."""
        raise BillingNotSupported(f"{self.name} does not receive webhooks.")

    async def create_portal(self, *, customer_reference: str, return_url: str, config: Any) -> str:
        """The URL of the provider's self-service page for this customer."""
        raise BillingNotSupported(f"{self.name} has no customer portal.")

    async def refund(
        self,
        *,
        payment_reference: str,
        amount: int,
        reason: str,
        idempotency_key: str,
        config: Any,
    ) -> str:
        """Refund ``amount`` of a payment; returns the provider's refund id. Core reverses
        credits itself (only what is unspent)."""
        raise BillingNotSupported(f"{self.name} cannot refund.")

    async def cancel_subscription(
        self, *, subscription_reference: str, at_period_end: bool, config: Any
    ) -> None:
        """Stop a subscription (at the end of the paid period, or now)."""
        raise BillingNotSupported(f"{self.name} has no subscriptions.")

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
        """Charge the customer's saved payment method without them present (an auto-reload);
        returns the payment reference. The payment must carry ``order_id`` back in its events
        (like a checkout), and ``idempotency_key`` makes a retried call charge once. Raise
        ``PaymentDeclined`` when the method is refused (nothing charged), ``ProviderError`` when
        the provider cannot be reached. Credits come only with the verified
        ``payment.succeeded`` webhook, never from this return value."""
        raise BillingNotSupported(f"{self.name} cannot charge a saved payment method.")

    async def confirm_payment(
        self, *, order_id: str, reference: str, proof: Mapping[str, str], config: Any
    ) -> BillingEvent:
        """The buyer's browser is back from a checkout that runs on our page (Razorpay's) with
        ``proof`` of a payment for ``order_id`` (``reference`` is what ``create_checkout``
        returned). Check the proof's signature *and* that it is about this order, then ask the
        provider itself about the payment (never take the browser's word for it) and return it
        as a ``payment.succeeded`` event, which core applies like a webhook: once, and the
        webhook about the same payment then changes nothing. Raise ``WebhookRejected`` when the
        proof is forged, for another order or the payment is not captured, ``ProviderError``
        when the provider cannot be asked. Backends whose checkout ends in a webhook only
        (Stripe's hosted page) keep this default."""
        raise BillingNotSupported(f"{self.name} confirms payments by webhook only.")


__all__ = [
    "EVENT_TYPES",
    "BillingBackend",
    "BillingEvent",
    "BillingNotSupported",
    "Checkout",
    "EventType",
    "PaymentDeclined",
    "WebhookRejected",
]
