"""A local fake of the parts of Razorpay's API the Razorpay billing plugin uses, of its Checkout
and of its webhook sender.

REST (JSON bodies, ``Authorization: Basic key_id:key_secret``; a wrong key is Razorpay's 401
``{"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}}``):
``POST/GET /v1/orders``, ``GET /v1/payments/{id}``, ``POST /v1/payments/{id}/capture``,
``POST /v1/payments/{id}/refund``, ``GET /v1/payments/{id}/refunds``, ``POST/GET /v1/plans``,
``POST/GET /v1/subscriptions``, ``POST /v1/subscriptions/{id}/cancel``.

Checkout: ``GET /v1/checkout.js`` defines ``window.Razorpay(options)`` like Razorpay's script
(``open()``, ``on("payment.failed")``, ``handler``, ``modal.ondismiss``): it opens the payment
form (``GET /checkout/embedded``) in a frame over the merchant's page; the form's Pay button
(``POST /checkout/embedded``) makes a captured payment, sends the signed webhooks
(``payment.captured`` and ``order.paid``, or ``subscription.activated`` and
``subscription.charged``) to ``webhook_url`` and hands the page's handler
``{razorpay_payment_id, razorpay_order_id | razorpay_subscription_id, razorpay_signature}`` by
``postMessage``, as Razorpay's frame does. The signature is HMAC-SHA256 of
``order_id|payment_id`` (``payment_id|subscription_id`` for a subscription) with the key secret.

Webhooks are signed exactly as Razorpay signs them: ``X-Razorpay-Signature`` is the hex
HMAC-SHA256 of the raw body with the webhook secret; ``X-Razorpay-Event-Id`` names the event
(the same on every retry of it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

ALPHABET = string.ascii_letters + string.digits
#: The JSON body of an API request, read once by the auth middleware.
BODY = web.RequestKey("body", dict)


def rzp_id(prefix: str) -> str:
    """An id shaped like Razorpay's: a prefix and 14 letters and digits."""
    return f"{prefix}_" + "".join(secrets.choice(ALPHABET) for _ in range(14))


def hmac_hex(message: str | bytes, key: str) -> str:
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def razorpay_error(status: int, description: str, code: str = "BAD_REQUEST_ERROR") -> web.Response:
    return web.json_response(
        {"error": {"code": code, "description": description, "source": "NA", "step": "NA"}},
        status=status,
    )


def entity(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


CHECKOUT_JS = """(function () {
  "use strict";
  var origin = new URL(document.currentScript.src).origin;
  function Razorpay(options) {
    if (!(this instanceof Razorpay)) return new Razorpay(options);
    this.options = options || {};
    this.events = {};
  }
  Razorpay.prototype.on = function (name, callback) { this.events[name] = callback; };
  Razorpay.prototype.open = function () {
    var self = this, o = this.options, prefill = o.prefill || {};
    var query = new URLSearchParams({
      key_id: o.key || "", order_id: o.order_id || "", subscription_id: o.subscription_id || "",
      name: o.name || "", description: o.description || "", email: prefill.email || ""
    });
    var overlay = document.createElement("div");
    overlay.className = "razorpay-container";
    overlay.style.position = "fixed";
    overlay.style.inset = "0";
    overlay.style.zIndex = "2147483647";
    overlay.style.background = "rgba(0, 0, 0, 0.5)";
    var frame = document.createElement("iframe");
    frame.className = "razorpay-checkout-frame";
    frame.title = "Razorpay Checkout";
    frame.src = origin + "/checkout/embedded?" + query.toString();
    frame.style.width = "100%";
    frame.style.height = "100%";
    frame.style.border = "0";
    overlay.appendChild(frame);
    document.body.appendChild(overlay);
    function listener(event) {
      if (event.origin !== origin || !event.data || typeof event.data !== "object") return;
      var message = event.data;
      if (message.type === "razorpay.payment.success") {
        window.removeEventListener("message", listener);
        overlay.remove();
        if (o.handler) o.handler(message.response);
      } else if (message.type === "razorpay.payment.failed") {
        if (self.events["payment.failed"]) self.events["payment.failed"]({ error: message.error });
      } else if (message.type === "razorpay.dismiss") {
        window.removeEventListener("message", listener);
        overlay.remove();
        if (o.modal && o.modal.ondismiss) o.modal.ondismiss();
      }
    }
    window.addEventListener("message", listener);
  };
  window.Razorpay = Razorpay;
})();
"""


@dataclass
class FakeRazorpay:
    key_id: str = "rzp_test_FakeKey0123456"
    key_secret: str = "fake_key_secret_0123456789"
    webhook_secret: str = "fake_webhook_secret_abcdef"
    #: Where events are sent (the app's webhook URL); set by the test.
    webhook_url: str = ""
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    sent: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    #: Seconds between the buyer paying and the webhooks leaving (Razorpay's are asynchronous),
    #: so the buyer's own confirmation can come first.
    webhook_delay: float = 0.0
    #: Payments start ``authorized`` (an account without automatic capture) instead of captured.
    capture_automatically: bool = True
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/orders", self.create_order)
        app.router.add_get("/v1/orders/{id}", self.fetch_order)
        app.router.add_get("/v1/payments/{id}", self.fetch_payment)
        app.router.add_post("/v1/payments/{id}/capture", self.capture_payment)
        app.router.add_post("/v1/payments/{id}/refund", self.refund_payment)
        app.router.add_get("/v1/payments/{id}/refunds", self.list_refunds)
        app.router.add_post("/v1/plans", self.create_plan)
        app.router.add_get("/v1/plans/{id}", self.fetch_plan)
        app.router.add_post("/v1/subscriptions", self.create_subscription)
        app.router.add_get("/v1/subscriptions/{id}", self.fetch_subscription)
        app.router.add_post("/v1/subscriptions/{id}/cancel", self.cancel_subscription)
        app.router.add_get("/v1/checkout.js", self.checkout_js)
        app.router.add_get("/checkout/embedded", self.checkout_form)
        app.router.add_post("/checkout/embedded", self.checkout_pay)
        return app

    # -- REST ----------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/v1/") or request.path == "/v1/checkout.js":
            return await handler(request)
        expected = base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return razorpay_error(401, "Authentication failed")
        body: Any = None
        if request.method == "POST":
            try:
                body = await request.json() if request.can_read_body else {}
            except ValueError:
                return razorpay_error(400, "The request body is not valid JSON.")
            if not isinstance(body, dict):
                return razorpay_error(400, "The request body must be an object.")
        self.requests.append((request.method, request.path, body))
        request[BODY] = body or {}
        return await handler(request)

    @staticmethod
    def _amount(body: dict[str, Any], name: str = "amount") -> int | None:
        value = body.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    async def create_order(self, request: web.Request) -> web.Response:
        body = request[BODY]
        amount = self._amount(body)
        if amount is None or amount < 100:
            return razorpay_error(400, "The amount must be atleast INR 1.00", "BAD_REQUEST_ERROR")
        if not isinstance(body.get("currency"), str) or len(body["currency"]) != 3:
            return razorpay_error(400, "The currency field is required.")
        order = {
            "id": rzp_id("order"),
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": body["currency"],
            "receipt": body.get("receipt"),
            "offer_id": None,
            "status": "created",
            "attempts": 0,
            "notes": body.get("notes") or [],
            "created_at": int(time.time()),
        }
        self.orders[order["id"]] = order
        return web.json_response(order)

    def _found(self, table: dict[str, dict[str, Any]], key: str, what: str) -> Any:
        found = table.get(key)
        if found is None:
            return razorpay_error(400, f"The id provided does not exist ({what})")
        return found

    async def fetch_order(self, request: web.Request) -> web.Response:
        order = self._found(self.orders, request.match_info["id"], "order")
        return order if isinstance(order, web.Response) else web.json_response(entity(order))

    async def fetch_payment(self, request: web.Request) -> web.Response:
        payment = self._found(self.payments, request.match_info["id"], "payment")
        return payment if isinstance(payment, web.Response) else web.json_response(payment)

    async def capture_payment(self, request: web.Request) -> web.Response:
        payment = self._found(self.payments, request.match_info["id"], "payment")
        if isinstance(payment, web.Response):
            return payment
        body = request[BODY]
        if payment["status"] != "authorized":
            return razorpay_error(400, "This payment has already been captured")
        if self._amount(body) != payment["amount"]:
            return razorpay_error(
                400, "Capture amount must be equal to the amount authorized", "BAD_REQUEST_ERROR"
            )
        payment.update(status="captured", captured=True)
        self._order_paid(payment)
        return web.json_response(payment)

    async def refund_payment(self, request: web.Request) -> web.Response:
        payment = self._found(self.payments, request.match_info["id"], "payment")
        if isinstance(payment, web.Response):
            return payment
        body = request[BODY]
        if payment["status"] not in ("captured", "refunded"):
            return razorpay_error(400, "The payment has not been captured")
        left = payment["amount"] - payment["amount_refunded"]
        amount = self._amount(body)
        amount = left if amount is None else amount
        if amount < 1 or amount > left:
            return razorpay_error(400, "The refund amount provided is greater than amount captured")
        refund = {
            "id": rzp_id("rfnd"),
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment["id"],
            "notes": body.get("notes") or [],
            "receipt": body.get("receipt"),
            "status": "processed",
            "speed_requested": body.get("speed", "normal"),
            "created_at": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        payment["amount_refunded"] += amount
        payment["refund_status"] = (
            "full" if payment["amount_refunded"] == payment["amount"] else "partial"
        )
        if payment["refund_status"] == "full":
            payment["status"] = "refunded"
        return web.json_response(refund)

    async def list_refunds(self, request: web.Request) -> web.Response:
        items = [r for r in self.refunds.values() if r["payment_id"] == request.match_info["id"]]
        return web.json_response({"entity": "collection", "count": len(items), "items": items})

    async def create_plan(self, request: web.Request) -> web.Response:
        body = request[BODY]
        item = body.get("item") or {}
        if body.get("period") not in ("daily", "weekly", "monthly", "yearly"):
            return razorpay_error(400, "The period must be daily, weekly, monthly or yearly.")
        if not isinstance(body.get("interval"), int) or self._amount(item) is None:
            return razorpay_error(400, "The interval and item.amount fields are required.")
        plan = {
            "id": rzp_id("plan"),
            "entity": "plan",
            "interval": body["interval"],
            "period": body["period"],
            "item": {
                "id": rzp_id("item"),
                "active": True,
                "name": item.get("name"),
                "amount": item["amount"],
                "unit_amount": item["amount"],
                "currency": item.get("currency"),
            },
            "notes": body.get("notes") or [],
            "created_at": int(time.time()),
        }
        self.plans[plan["id"]] = plan
        return web.json_response(plan)

    async def fetch_plan(self, request: web.Request) -> web.Response:
        plan = self._found(self.plans, request.match_info["id"], "plan")
        return plan if isinstance(plan, web.Response) else web.json_response(plan)

    async def create_subscription(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if body.get("plan_id") not in self.plans:
            return razorpay_error(400, "The id provided does not exist (plan)")
        if not isinstance(body.get("total_count"), int) or body["total_count"] < 1:
            return razorpay_error(400, "The total count field is required.")
        subscription = {
            "id": rzp_id("sub"),
            "entity": "subscription",
            "plan_id": body["plan_id"],
            "customer_id": None,
            "status": "created",
            "quantity": body.get("quantity", 1),
            "total_count": body["total_count"],
            "paid_count": 0,
            "remaining_count": body["total_count"],
            "notes": body.get("notes") or [],
            "current_start": None,
            "current_end": None,
            "charge_at": None,
            "has_scheduled_changes": False,
            "short_url": f"{request.url.origin()}/sub/{rzp_id('link')}",
            "created_at": int(time.time()),
        }
        self.subscriptions[subscription["id"]] = subscription
        return web.json_response(subscription)

    async def fetch_subscription(self, request: web.Request) -> web.Response:
        subscription = self._found(self.subscriptions, request.match_info["id"], "subscription")
        if isinstance(subscription, web.Response):
            return subscription
        return web.json_response(subscription)

    async def cancel_subscription(self, request: web.Request) -> web.Response:
        subscription = self._found(self.subscriptions, request.match_info["id"], "subscription")
        if isinstance(subscription, web.Response):
            return subscription
        if subscription["status"] in ("cancelled", "completed", "expired"):
            return razorpay_error(400, "Subscription is not cancellable in cancelled status.")
        if request[BODY].get("cancel_at_cycle_end") in (1, True, "1"):
            subscription["has_scheduled_changes"] = True
            subscription["change_scheduled_at"] = subscription.get("current_end")
            subscription["_cancel_at_cycle_end"] = True
        else:
            subscription.update(status="cancelled", ended_at=int(time.time()))
        return web.json_response(entity(subscription))

    # -- payments ------------------------------------------------------------------------------

    def _payment(self, amount: int, currency: str, **extra: Any) -> dict[str, Any]:
        captured = self.capture_automatically
        payment = {
            "id": rzp_id("pay"),
            "entity": "payment",
            "amount": amount,
            "currency": currency,
            "status": "captured" if captured else "authorized",
            "order_id": None,
            "invoice_id": None,
            "international": False,
            "method": "card",
            "amount_refunded": 0,
            "refund_status": None,
            "captured": captured,
            "description": "",
            "email": "buyer@example.com",
            "contact": "+919000090000",
            "customer_id": None,
            "notes": [],
            "fee": amount * 2 // 100,
            "tax": 0,
            "created_at": int(time.time()),
            **extra,
        }
        self.payments[payment["id"]] = payment
        return payment

    def _order_paid(self, payment: dict[str, Any]) -> None:
        order = self.orders.get(payment.get("order_id") or "")
        if order is not None and payment["status"] == "captured":
            order.update(status="paid", amount_paid=order["amount"], amount_due=0)

    def pay_order(self, order_id: str) -> dict[str, Any]:
        """The buyer paid ``order_id`` in the Checkout: a payment (captured unless the account
        captures by hand), the order paid when it is."""
        order = self.orders[order_id]
        order["attempts"] += 1
        payment = self._payment(
            order["amount"], order["currency"], order_id=order_id, notes=order["notes"]
        )
        self._order_paid(payment)
        return payment

    def charge_subscription(self, subscription_id: str) -> dict[str, Any]:
        """One paid charge of a subscription (the first when it is bought, then each
        renewal): a payment with its invoice, the subscription's counts moved on."""
        subscription = self.subscriptions[subscription_id]
        plan = self.plans[subscription["plan_id"]]
        if subscription["customer_id"] is None:
            subscription["customer_id"] = rzp_id("cust")
        now = int(time.time())
        payment = self._payment(
            plan["item"]["amount"],
            plan["item"]["currency"],
            order_id=rzp_id("order"),
            invoice_id=rzp_id("inv"),
            customer_id=subscription["customer_id"],
            status="captured",
            captured=True,
        )
        period = 365 * 86400 if plan["period"] == "yearly" else 30 * 86400
        subscription.update(
            status="active",
            paid_count=subscription["paid_count"] + 1,
            remaining_count=subscription["remaining_count"] - 1,
            current_start=now,
            current_end=now + period,
            charge_at=now + period,
        )
        return payment

    def signature(self, payment_id: str, *, order_id: str = "", subscription_id: str = "") -> str:
        """What Checkout hands the page: HMAC-SHA256 with the key secret."""
        if subscription_id:
            return hmac_hex(f"{payment_id}|{subscription_id}", self.key_secret)
        return hmac_hex(f"{order_id}|{payment_id}", self.key_secret)

    # -- Checkout ------------------------------------------------------------------------------

    async def checkout_js(self, request: web.Request) -> web.Response:
        return web.Response(text=CHECKOUT_JS, content_type="application/javascript")

    async def checkout_form(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("key_id") != self.key_id:
            return web.Response(status=400, text="Checkout: the key id is not valid.")
        if query.get("order_id") in self.orders:
            order = self.orders[query["order_id"]]
            amount, currency = order["amount"], order["currency"]
        elif query.get("subscription_id") in self.subscriptions:
            subscription = self.subscriptions[query["subscription_id"]]
            item = self.plans[subscription["plan_id"]]["item"]
            amount, currency = item["amount"], item["currency"]
        else:
            return web.Response(status=400, text="Checkout: no such order or subscription.")
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
            for name in ("key_id", "order_id", "subscription_id")
        )
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Razorpay Checkout (fake)</title><link rel="icon" href="data:,"><style>
body {{ font-family: sans-serif; background: transparent; margin: 0; }}
main {{ background: #fff; max-width: 22rem; margin: 10vh auto; padding: 1.5rem;
  border-radius: 8px; }}</style></head><body><main>
<h1>{html.escape(query.get("name", ""))}</h1>
<p>{html.escape(query.get("description", ""))}:
<strong id="amount">{amount / 100:.2f} {html.escape(currency)}</strong></p>
<p>Paying as {html.escape(query.get("email", ""))}</p>
<form method="post">{hidden}<button type="submit" name="outcome" value="pay">Pay now</button>
<button type="submit" name="outcome" value="fail">Fail this payment</button></form>
<form method="post">{hidden}<button type="submit" name="outcome" value="dismiss">Close</button>
</form></main></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def checkout_pay(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("key_id") != self.key_id:
            return web.Response(status=400, text="Checkout: the key id is not valid.")
        order_id = str(form.get("order_id") or "")
        subscription_id = str(form.get("subscription_id") or "")
        outcome = form.get("outcome")
        if outcome == "dismiss":
            return self._tell_parent({"type": "razorpay.dismiss"})
        if outcome == "fail":
            error = {"code": "BAD_REQUEST_ERROR", "description": "Your card was declined."}
            return self._tell_parent({"type": "razorpay.payment.failed", "error": error})
        if subscription_id in self.subscriptions:
            payment = self.charge_subscription(subscription_id)
            subscription = self.subscriptions[subscription_id]
            events = [
                self.event("subscription.activated", subscription=subscription),
                self.event("subscription.charged", subscription=subscription, payment=payment),
            ]
            response = {
                "razorpay_payment_id": payment["id"],
                "razorpay_subscription_id": subscription_id,
                "razorpay_signature": self.signature(
                    payment["id"], subscription_id=subscription_id
                ),
            }
        elif order_id in self.orders:
            payment = self.pay_order(order_id)
            events = []
            if payment["status"] == "captured":
                events = [
                    self.event("payment.captured", payment=payment),
                    self.event("order.paid", payment=payment, order=self.orders[order_id]),
                ]
            response = {
                "razorpay_payment_id": payment["id"],
                "razorpay_order_id": order_id,
                "razorpay_signature": self.signature(payment["id"], order_id=order_id),
            }
        else:
            return web.Response(status=400, text="Checkout: no such order or subscription.")
        task = asyncio.create_task(self._deliver_later(events))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return self._tell_parent({"type": "razorpay.payment.success", "response": response})

    @staticmethod
    def _tell_parent(message: dict[str, Any]) -> web.Response:
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Razorpay Checkout (fake)</title></head><body><p>Done.</p>
<script>parent.postMessage({json.dumps(message)}, "*");</script></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _deliver_later(self, events: list[dict[str, Any]]) -> None:
        await asyncio.sleep(self.webhook_delay)
        for event in events:
            if self.webhook_url:
                await self.deliver(event)

    # -- webhooks ------------------------------------------------------------------------------

    @staticmethod
    def event(kind: str, **entities: dict[str, Any]) -> dict[str, Any]:
        """A webhook event as Razorpay sends it: the entities it is about under ``payload``."""
        return {
            "entity": "event",
            "account_id": "acc_FakeAccount0001",
            "event": kind,
            "contains": list(entities),
            "payload": {name: {"entity": entity(obj)} for name, obj in entities.items()},
            "created_at": int(time.time()),
        }

    def signed(
        self, event: dict[str, Any], *, secret: str | None = None, event_id: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        payload = json.dumps(event).encode()
        return payload, {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": hmac_hex(payload, secret or self.webhook_secret),
            "X-Razorpay-Event-Id": event_id or rzp_id("evt"),
        }

    async def deliver(
        self,
        event: dict[str, Any],
        url: str | None = None,
        *,
        secret: str | None = None,
        event_id: str | None = None,
    ) -> tuple[int, Any]:
        """POST the signed event to the app, as Razorpay's webhook sender does."""
        payload, headers = self.signed(event, secret=secret, event_id=event_id)
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

    def checkout_query(self, **params: str) -> str:
        return urlencode({"key_id": self.key_id, **params})
