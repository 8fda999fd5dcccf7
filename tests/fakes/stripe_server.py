"""A local fake of the parts of Stripe's API the Stripe billing plugin uses, and of Stripe's
webhook sender.

REST: form-encoded bodies with Stripe's bracket notation (``line_items[0][price_data][currency]``),
``Authorization: Bearer <secret key>`` (a wrong key is Stripe's 401 ``invalid_request_error``),
``Idempotency-Key`` (a repeat with the same key gets the first response; with other parameters,
Stripe's 400 ``idempotency_error``). Objects: ``POST/GET /v1/checkout/sessions``,
``POST /v1/refunds``, ``GET /v1/customers/<id>`` and ``/v1/customers/<id>/payment_methods``,
``POST /v1/payment_intents`` (off-session charges of a saved card).

Saved cards behave like Stripe's test payment methods: ``pm_card_visa`` succeeds,
``pm_card_chargeDeclined`` is declined (``card_declined``) and ``pm_card_authenticationRequired``
needs its holder (``authentication_required``, which an off-session charge cannot satisfy). A
refused off-session PaymentIntent is Stripe's 402 ``card_error`` carrying the failed intent, and
``payment_intent.payment_failed`` follows by webhook; a paid one sends
``payment_intent.succeeded``. A one-time session saves ``card`` on its new customer.

Refunds (whole or partial, of a checkout's or an off-session payment) cannot exceed what is
left unrefunded (Stripe's 400 ``amount_too_large`` / ``charge_already_refunded``); each is
followed by ``charge.refunded`` with the cumulative ``amount_refunded``.

The hosted page: ``GET /pay/<session>`` is a minimal checkout page whose "Pay" button posts to
``/pay/<session>``, which completes the session (a payment intent, a customer), sends the signed
``checkout.session.completed`` webhook to ``webhook_url`` and redirects to the session's
``success_url``.

Webhooks are signed exactly as Stripe signs them: ``Stripe-Signature: t=<unix time>,v1=<hex
HMAC-SHA256 of "<t>.<payload>" with the endpoint secret>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's bracket notation back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            following = None if last else parts[i + 1]
            child: Any = value if last else ([] if following.isdigit() else {})  # type: ignore[union-attr]
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if node[index] is None or last:
                    node[index] = child
                node = node[index]
            else:
                if part not in node or last:
                    node[part] = child
                node = node[part]
    return root


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def stripe_error(status: int, kind: str, message: str, param: str | None = None) -> web.Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if param:
        error["param"] = param
    return web.json_response({"error": error}, status=status)


@dataclass
class FakeStripe:
    secret_key: str = "sk_test_fake_4242424242"
    webhook_secret: str = "whsec_fake_signing_secret_0123"
    #: Where completed payments are announced (the app's webhook URL); set by the test.
    webhook_url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    portal_sessions: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any], str | None]] = field(default_factory=list)
    idempotent: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = field(default_factory=dict)
    sent: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    #: Seconds between the buyer paying and the webhook leaving (Stripe's is asynchronous too),
    #: so the buyer can be back on the site before it lands.
    webhook_delay: float = 0.0
    #: Deliver the webhooks an API call causes before answering it (Stripe does not promise
    #: which one the caller sees first).
    webhooks_first: bool = False
    #: Keep the webhooks API calls cause until ``release_webhooks()`` (to know they come after).
    hold_webhooks: bool = False
    _held: list[dict[str, Any]] = field(default_factory=list)
    #: The card the buyer pays with on the hosted page (saved on the customer for later).
    card: str = "pm_card_visa"
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self.create_session)
        app.router.add_get("/v1/checkout/sessions/{id}", self.retrieve_session)
        app.router.add_post("/v1/refunds", self.create_refund)
        app.router.add_post("/v1/subscriptions/{id}", self.update_subscription)
        app.router.add_delete("/v1/subscriptions/{id}", self.cancel_subscription)
        app.router.add_post("/v1/billing_portal/sessions", self.create_portal_session)
        app.router.add_get("/v1/customers/{id}", self.retrieve_customer)
        app.router.add_get("/v1/customers/{id}/payment_methods", self.list_payment_methods)
        app.router.add_post("/v1/payment_intents", self.create_payment_intent)
        app.router.add_get("/pay/{id}", self.pay_page)
        app.router.add_post("/pay/{id}", self.pay)
        return app

    # -- REST ----------------------------------------------------------------------------------

    async def _authorised(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided.")
        return None

    async def _read(self, request: web.Request) -> dict[str, Any]:
        body = await request.text()
        params = decode_form(body)
        key = request.headers.get("Idempotency-Key")
        self.requests.append((request.method, request.path, params, key))
        return params

    async def _idempotent(
        self, request: web.Request, params: dict[str, Any], make: Any
    ) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotent:
            first_params, status, body = self.idempotent[key]
            if first_params != params:
                return stripe_error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters.",
                )
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        status, body = make(params)
        if key:
            self.idempotent[key] = (params, status, body)
        return web.json_response(body, status=status)

    async def create_session(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        params = await self._read(request)
        base = str(request.url.origin())

        def make(p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            for required in ("success_url", "line_items", "mode"):
                if not p.get(required):
                    return 400, {
                        "error": {
                            "type": "invalid_request_error",
                            "message": f"Missing required param: {required}.",
                            "param": required,
                        }
                    }
            items = p["line_items"]
            price = items[0]["price_data"]
            amount = int(price["unit_amount"]) * int(items[0].get("quantity", 1))
            session_id = _id("cs")
            session = {
                "id": session_id,
                "object": "checkout.session",
                "mode": p["mode"],
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": amount,
                "amount_subtotal": amount,
                "currency": price["currency"],
                "client_reference_id": p.get("client_reference_id"),
                "customer": None,
                "customer_email": p.get("customer_email"),
                "metadata": p.get("metadata", {}),
                "payment_intent": None,
                "subscription": None,
                "success_url": p["success_url"],
                "cancel_url": p.get("cancel_url"),
                "expires_at": int(p.get("expires_at") or time.time() + 86400),
                "url": f"{base}/pay/{session_id}",
                "livemode": False,
                "_payment_intent_metadata": (p.get("payment_intent_data") or {}).get(
                    "metadata", {}
                ),
                "_setup_future_usage": (p.get("payment_intent_data") or {}).get(
                    "setup_future_usage"
                ),
                "_line_items": items,
                "_subscription_metadata": (p.get("subscription_data") or {}).get("metadata", {}),
            }
            self.sessions[session_id] = session
            return 200, self.public(session)

        return await self._idempotent(request, params, make)

    @staticmethod
    def public(session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if not k.startswith("_")}

    async def retrieve_session(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return stripe_error(404, "invalid_request_error", "No such checkout.session", "id")
        return web.json_response(self.public(session))

    async def create_refund(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        params = await self._read(request)
        sent_first: list[dict[str, Any]] = []

        def make(p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            intent = p.get("payment_intent")
            charge = self._charge_of(str(intent))
            if charge is None:
                return 404, {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"No such payment_intent: '{intent}'",
                        "param": "payment_intent",
                    }
                }
            so_far = sum(r["amount"] for r in self.refunds if r["payment_intent"] == intent)
            amount = int(p.get("amount") or charge["amount"] - so_far)
            if amount > charge["amount"] - so_far:
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "charge_already_refunded"
                        if so_far >= charge["amount"]
                        else "amount_too_large",
                        "message": f"Refund amount ({amount}) is greater than unrefunded amount "
                        f"on charge ({charge['amount'] - so_far})",
                        "param": "amount",
                    }
                }
            refund = {
                "id": _id("re"),
                "object": "refund",
                "amount": amount,
                "payment_intent": intent,
                "status": "succeeded",
                "metadata": p.get("metadata", {}),
            }
            self.refunds.append(refund)
            refunded = so_far + amount
            event = self.event(
                "charge.refunded",
                {**charge, "amount_refunded": refunded, "refunded": refunded >= charge["amount"]},
            )
            if self.webhooks_first:
                sent_first.append(event)
            else:
                self._send_later(event)
            return 200, refund

        answer = await self._idempotent(request, params, make)
        for event in sent_first:
            await self.deliver(event)
        return answer

    async def update_subscription(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        params = await self._read(request)
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            return stripe_error(404, "invalid_request_error", "No such subscription", "id")
        if "cancel_at_period_end" in params:
            subscription["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        return web.json_response(subscription)

    async def cancel_subscription(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            return stripe_error(404, "invalid_request_error", "No such subscription", "id")
        subscription["status"] = "canceled"
        return web.json_response(subscription)

    async def create_portal_session(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        params = await self._read(request)
        if not params.get("customer"):
            return stripe_error(400, "invalid_request_error", "Missing customer", "customer")
        portal = {
            "id": _id("bps"),
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params.get("return_url"),
            "url": f"{request.url.origin()}/portal/{params['customer']}",
        }
        self.portal_sessions.append(portal)
        return web.json_response(portal)

    # -- customers and off-session payments ---------------------------------------------------

    def save_card(self, customer: str, card: str) -> None:
        """Attach ``card`` (a test payment method id) to ``customer`` as its newest card."""
        found = self.customers.setdefault(
            customer,
            {
                "id": customer,
                "object": "customer",
                "invoice_settings": {"default_payment_method": None},
                "_methods": [],
            },
        )
        found["_methods"].insert(0, card)

    async def retrieve_customer(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        customer = self.customers.get(request.match_info["id"])
        if customer is None:
            return stripe_error(404, "invalid_request_error", "No such customer", "id")
        return web.json_response(self.public(customer))

    async def list_payment_methods(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        customer = self.customers.get(request.match_info["id"])
        if customer is None:
            return stripe_error(404, "invalid_request_error", "No such customer", "customer")
        limit = int(request.query.get("limit", "10"))
        methods = [
            {
                "id": card,
                "object": "payment_method",
                "type": "card",
                "customer": customer["id"],
                "card": {"brand": "visa", "last4": "4242"},
            }
            for card in customer["_methods"][:limit]
        ]
        return web.json_response(
            {
                "object": "list",
                "url": request.path,
                "has_more": len(customer["_methods"]) > limit,
                "data": methods,
            }
        )

    #: Test cards that an off-session charge cannot use: (code, decline code, message).
    REFUSALS = {
        "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
        "pm_card_authenticationRequired": (
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        ),
    }

    async def create_payment_intent(self, request: web.Request) -> web.Response:
        if refused := await self._authorised(request):
            return refused
        params = await self._read(request)

        def make(p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            customer = self.customers.get(p.get("customer", ""))
            card = p.get("payment_method")
            if customer is None or card not in customer["_methods"]:
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "No such PaymentMethod for this customer.",
                        "param": "payment_method",
                    }
                }
            intent: dict[str, Any] = {
                "id": _id("pi"),
                "object": "payment_intent",
                "amount": int(p["amount"]),
                "amount_received": 0,
                "currency": p["currency"],
                "customer": customer["id"],
                "payment_method": card,
                "metadata": p.get("metadata", {}),
                "description": p.get("description"),
                "off_session": p.get("off_session") == "true",
                "status": "requires_payment_method",
                "last_payment_error": None,
            }
            self.payment_intents[intent["id"]] = intent
            refusal = self.REFUSALS.get(str(card))
            if refusal is None and p.get("confirm") == "true":
                intent.update(status="succeeded", amount_received=intent["amount"])
                self._send_later(self.event("payment_intent.succeeded", dict(intent)))
                return 200, intent
            if refusal is None:
                return 200, intent
            code, decline_code, message = refusal
            error = {
                "type": "card_error",
                "code": code,
                "decline_code": decline_code,
                "message": message,
                "payment_method": {"id": card, "object": "payment_method"},
            }
            intent["last_payment_error"] = error
            self._send_later(self.event("payment_intent.payment_failed", dict(intent)))
            return 402, {"error": {**error, "payment_intent": dict(intent)}}

        return await self._idempotent(request, params, make)

    def _send_later(self, event: dict[str, Any]) -> None:
        """Send a webhook after the API call answered, as Stripe does."""
        if not self.webhook_url:
            return
        if self.hold_webhooks:
            self._held.append(event)
            return
        task = asyncio.create_task(self._deliver_later(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def release_webhooks(self) -> None:
        """Send the held webhooks, in order, and send later ones as usual."""
        self.hold_webhooks = False
        while self._held:
            await self.deliver(self._held.pop(0))

    async def settled(self) -> None:
        """Wait until every webhook queued so far was delivered."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    # -- the hosted page -----------------------------------------------------------------------

    async def pay_page(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            raise web.HTTPNotFound()
        items = session["_line_items"]
        name = items[0]["price_data"]["product_data"]["name"]
        amount = session["amount_total"] / 100
        currency = html.escape(session["currency"].upper())
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Pay - Fake Stripe</title><link rel="icon" href="data:,"></head><body><main>
<h1>Fake Stripe checkout</h1>
<p>{html.escape(name)}: <strong id="amount">{amount:.2f} {currency}</strong></p>
<form method="post"><button type="submit">Pay</button></form>
</main></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def pay(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            raise web.HTTPNotFound()
        self.complete(session["id"])
        event = self.event("checkout.session.completed", self.public(session))
        if self.webhook_delay:
            task = asyncio.create_task(self._deliver_later(event))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            await self.deliver(event)
        raise web.HTTPSeeOther(session["success_url"])

    async def _deliver_later(self, event: dict[str, Any]) -> None:
        await asyncio.sleep(self.webhook_delay)
        await self.deliver(event)

    def complete(self, session_id: str) -> dict[str, Any]:
        """The buyer paid: the session gets its payment intent and customer."""
        session = self.sessions[session_id]
        if session["status"] != "complete":
            customer = _id("cus")
            session.update(status="complete", payment_status="paid", customer=customer)
            if session["mode"] == "subscription":
                subscription = {
                    "id": _id("sub"),
                    "object": "subscription",
                    "customer": customer,
                    "status": "active",
                    "cancel_at_period_end": False,
                    "metadata": session["_subscription_metadata"],
                }
                self.subscriptions[subscription["id"]] = subscription
                session["subscription"] = subscription["id"]
            else:
                session["payment_intent"] = _id("pi")
                if session["_setup_future_usage"] == "off_session":
                    self.save_card(customer, self.card)
        return self.public(session)

    def invoice(self, session_id: str, reason: str, *, paid: bool = True) -> dict[str, Any]:
        """An invoice of the session's subscription (``subscription_create`` for the first,
        ``subscription_cycle`` for a renewal), shaped as API version 2025-03 and later."""
        session = self.sessions[session_id]
        subscription = self.subscriptions[session["subscription"]]
        return {
            "id": _id("in"),
            "object": "invoice",
            "billing_reason": reason,
            "customer": subscription["customer"],
            "currency": session["currency"],
            "amount_due": session["amount_total"],
            "amount_paid": session["amount_total"] if paid else 0,
            "status": "paid" if paid else "open",
            "metadata": {},
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription["id"],
                    "metadata": subscription["metadata"],
                },
            },
        }

    def payment_intent(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        return {
            "id": session["payment_intent"],
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": session["amount_total"],
            "currency": session["currency"],
            "customer": session["customer"],
            "metadata": session["_payment_intent_metadata"],
            "status": "succeeded",
        }

    def _charge_of(self, intent: str) -> dict[str, Any] | None:
        """The charge of a paid payment intent (a checkout's or an off-session one)."""
        for session in self.sessions.values():
            if session.get("payment_intent") == intent and session["status"] == "complete":
                return self.charge(session["id"])
        found = self.payment_intents.get(intent)
        if found is None or found["status"] != "succeeded":
            return None
        return {
            "id": _id("ch"),
            "object": "charge",
            "amount": found["amount"],
            "amount_refunded": 0,
            "refunded": False,
            "currency": found["currency"],
            "customer": found["customer"],
            "payment_intent": intent,
            "metadata": found["metadata"],
        }

    def charge(
        self, session_id: str, *, refunded: bool = False, amount_refunded: int | None = None
    ) -> dict[str, Any]:
        """The session's charge; ``refunded`` in full, or ``amount_refunded`` of it so far."""
        session = self.sessions[session_id]
        total = session["amount_total"]
        so_far = total if refunded else (amount_refunded or 0)
        return {
            "id": _id("ch"),
            "object": "charge",
            "amount": total,
            "amount_refunded": so_far,
            "refunded": so_far >= total,
            "currency": session["currency"],
            "customer": session["customer"],
            "payment_intent": session["payment_intent"],
            "metadata": session["_payment_intent_metadata"],
        }

    # -- webhooks ------------------------------------------------------------------------------

    @staticmethod
    def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _id("evt"),
            "object": "event",
            "api_version": "2025-06-30.basil",
            "created": int(time.time()),
            "type": kind,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": obj},
        }

    def signed(
        self, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        payload = json.dumps(event, indent=2).encode()
        header = sign(payload, secret or self.webhook_secret, timestamp)
        return payload, {"Stripe-Signature": header, "Content-Type": "application/json"}

    async def deliver(
        self,
        event: dict[str, Any],
        url: str | None = None,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[int, Any]:
        """POST the signed event to the app, as Stripe's webhook sender does."""
        payload, headers = self.signed(event, secret=secret, timestamp=timestamp)
        async with (
            aiohttp.ClientSession() as client,
            client.post(url or self.webhook_url, data=payload, headers=headers) as response,
        ):
            body = await response.text()
            self.sent.append((event, response.status))
            try:
                return response.status, json.loads(body)
            except ValueError:
                return response.status, body
