"""Coupons' limits (issue #14, item 7) beyond the total-use race of tests/test_billing.py: the
per-user limit, the date window, a fixed amount, and a coupon checked again at checkout (a quote
is no promise). A pending order holds its use until it is paid or its checkout ends; the use is
counted when the payment succeeds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from multinotes.billing.models import Order
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.testing import ApiClient
from tests import test_billing as paying
from tests.fakes.stripe_server import FakeStripe
from tests.test_billing import CREDITS, balance, buyer, checkout, session_id

fake_stripe = paying.fake_stripe
plugins = paying.plugins
settings = paying.settings
stripe = paying.stripe
plan = paying.plan


async def coupon_error(api: ApiClient, path: str, body: dict[str, Any]) -> str:
    response = await api.post(path, body)
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "coupon_invalid"
    return str(error["fields"]["coupon_code"])


async def test_a_coupon_once_per_person_holds_while_pending_and_counts_when_paid(
    admin: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    created = await admin.post(
        "/api/admin/coupons", {"code": "WELCOME", "amount_off": 250, "max_uses_per_user": 1}
    )
    assert created.status == 201, await created.text()
    ann = await buyer(make_client, "ann@example.com")
    bob = await buyer(make_client, "bob@example.com")
    body = {"plan_id": plan["id"], "coupon_code": "welcome"}

    quote = await (await ann.post("/api/billing/quote", body)).json()
    assert (quote["subtotal"], quote["discount"], quote["total"]) == (1000, 250, 750)
    first = await checkout(ann, plan["id"], "welcome")
    # Her open checkout holds her one use: a second is refused, at quote and at checkout.
    assert (
        await coupon_error(ann, "/api/billing/quote", body) == "You have already used this coupon."
    )
    assert "already used" in await coupon_error(ann, "/api/billing/checkout", body)
    # Someone else still may.
    assert (await bob.post("/api/billing/quote", body)).status == 200

    # Her checkout ends unpaid: the use is hers again.
    async with admin.app[DB].transaction() as session:
        await session.execute(
            update(Order)
            .where(Order.id == first["order_id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    second = await checkout(ann, plan["id"], "welcome")
    session = stripe.complete(session_id(second["url"]))
    assert session["amount_total"] == 750
    await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert await balance(ann) == CREDITS
    assert (await admin.get_json("/api/admin/coupons"))[0]["uses"] == 1
    # Paid: used for good.
    assert "already used" in await coupon_error(ann, "/api/billing/checkout", body)


async def test_a_coupon_works_only_inside_its_date_window(
    admin: ApiClient, plan: dict[str, Any]
) -> None:
    now = utcnow()
    soon = {"code": "SOON", "percent_off": 10, "starts_at": (now + timedelta(days=1)).isoformat()}
    gone = {
        "code": "GONE",
        "percent_off": 10,
        "starts_at": (now - timedelta(days=2)).isoformat(),
        "ends_at": (now - timedelta(days=1)).isoformat(),
    }
    live = {
        "code": "LIVE",
        "percent_off": 10,
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    for coupon in (soon, gone, live):
        created = await admin.post("/api/admin/coupons", coupon)
        assert created.status == 201, await created.text()
    backwards = {**live, "code": "BACKWARDS", "ends_at": live["starts_at"]}
    assert (await admin.post("/api/admin/coupons", backwards)).status == 422

    def body(code: str) -> dict[str, Any]:
        return {"plan_id": plan["id"], "coupon_code": code}

    assert "not valid yet" in await coupon_error(admin, "/api/billing/quote", body("soon"))
    assert "expired" in await coupon_error(admin, "/api/billing/quote", body("gone"))
    assert "expired" in await coupon_error(admin, "/api/billing/checkout", body("gone"))
    quote = await (await admin.post("/api/billing/quote", body("live"))).json()
    assert (quote["discount"], quote["total"]) == (100, 900)


async def test_a_coupon_quoted_then_deactivated_is_refused_at_checkout(
    admin: ApiClient, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    created = await (
        await admin.post("/api/admin/coupons", {"code": "FLASH", "percent_off": 20})
    ).json()
    carol = await buyer(make_client, "carol@example.com")
    body = {"plan_id": plan["id"], "coupon_code": "flash"}
    assert (await carol.post("/api/billing/quote", body)).status == 200
    archived = await admin.post(f"/api/admin/coupons/{created['id']}/archive", {})
    assert archived.status == 200
    assert await coupon_error(carol, "/api/billing/checkout", body) == "No such coupon."
    assert await carol.get_json("/api/billing/orders") == []  # nothing was opened
