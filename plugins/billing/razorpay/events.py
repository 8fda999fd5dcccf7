"""Razorpay's webhook events as core's ``BillingEvent``.

A Razorpay event is ``{"entity": "event", "event": "payment.captured", "contains": ["payment"],
"payload": {"payment": {"entity": {...}}}, "created_at": ...}``; its id is not in the body but
in the ``X-Razorpay-Event-Id`` header (the same on every retry of one event).

Which order it is about: a one-time order's Razorpay order id is the core order's reference
(payments carry it as ``order_id``); a subscription carries the core order id in its ``notes``
(set when it was created), and its payments are found through it.
"""

from __future__ import annotations

from typing import Any

from multinotes.plugin import BillingEvent

#: Razorpay's event → core's meaning, for the events this plugin translates.
MEANINGS: dict[str, str] = {
    "order.paid": "payment.succeeded",
    "payment.captured": "payment.succeeded",
    "payment.failed": "payment.failed",
    "subscription.charged": "payment.succeeded",  # or subscription.renewed: see translate
    "subscription.pending": "payment.failed",  # a renewal charge failed; Razorpay retries
    "subscription.halted": "payment.failed",  # every retry failed
    "subscription.cancelled": "subscription.cancelled",
    "subscription.completed": "subscription.cancelled",
    "refund.processed": "refunded",
    "payment.dispute.created": "disputed",
}


def _entity(event: dict[str, Any], name: str) -> dict[str, Any]:
    found = ((event.get("payload") or {}).get(name) or {}).get("entity")
    return found if isinstance(found, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _upper(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and value else None


def translate(event_id: str, event: dict[str, Any]) -> BillingEvent:
    """A verified Razorpay event (``event_id`` from its header) as core's ``BillingEvent``."""
    kind = str(event.get("event") or "")
    payment = _entity(event, "payment")
    order = _entity(event, "order")
    subscription = _entity(event, "subscription")
    common: dict[str, Any] = {"id": event_id, "provider_type": kind, "raw": event}
    meaning = MEANINGS.get(kind)
    if meaning is None:
        return BillingEvent(type="ignored", **common)

    if kind.startswith("subscription."):
        notes = subscription.get("notes") or {}
        references: dict[str, Any] = {
            "order_id": _str(notes.get("order_id")) if isinstance(notes, dict) else None,
            "subscription_reference": _str(subscription.get("id")),
            "customer_reference": _str(subscription.get("customer_id")),
        }
        if kind == "subscription.charged":
            paid_count = _int(subscription.get("paid_count")) or 0
            if paid_count > 1:
                # A renewal: core grants again once per payment (its reference).
                return BillingEvent(
                    type="subscription.renewed",
                    reference=_str(payment.get("id")),
                    payment_reference=_str(payment.get("id")),
                    amount=_int(payment.get("amount")),
                    currency=_upper(payment.get("currency")),
                    **references,
                    **common,
                )
            return BillingEvent(
                type="payment.succeeded",
                payment_reference=_str(payment.get("id")),
                amount=_int(payment.get("amount")),
                currency=_upper(payment.get("currency")),
                **references,
                **common,
            )
        return BillingEvent(type=meaning, **references, **common)  # type: ignore[arg-type]

    if payment.get("invoice_id") and kind in ("payment.captured", "payment.failed"):
        # A subscription's charge: its subscription.* event is the one that counts.
        return BillingEvent(type="ignored", **common)
    if kind == "order.paid":
        return BillingEvent(
            type="payment.succeeded",
            reference=_str(order.get("id")),
            payment_reference=_str(payment.get("id")),
            amount=_int(order.get("amount_paid")),
            currency=_upper(order.get("currency")),
            **common,
        )
    amount = None
    if meaning == "payment.succeeded":
        amount = _int(payment.get("amount"))
    elif meaning == "refunded":
        # Full or partial: the payment's refunded total so far (cumulative, like Stripe's
        # amount_refunded), which core records each refund by, so the admin's refund and this
        # event about it count once.
        amount = _refunded_total(payment, _entity(event, "refund"))
    return BillingEvent(
        type=meaning,  # type: ignore[arg-type]
        reference=_str(payment.get("order_id")),
        payment_reference=_str(payment.get("id")),
        amount=amount,
        currency=_upper(payment.get("currency")),
        **common,
    )


def _refunded_total(payment: dict[str, Any], refund: dict[str, Any]) -> int | None:
    refunded = _int(payment.get("amount_refunded"))
    if refunded:
        return refunded
    # Razorpay sends the payment with its running total; without it, this refund's own amount
    # (right for a first refund) rather than None, which core would take for the whole order.
    return _int(refund.get("amount"))
