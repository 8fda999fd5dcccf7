"""The operator's billing console (issue #14, item 13): plans, coupons, orders with their ledger
entries and provider events, refunds from the order page, the CSV export and the revenue page;
and /pricing/quote validating its query with the API's QuoteIn.

Forms are posted as a browser posts them (form-encoded, with the CSRF token) and answer with a
redirect (POST-redirect-GET) or the same page with the fields in error (422). Payments go
through the fake Stripe with signed webhooks, as in tests/test_billing.py.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Any

from multinotes.testing import ApiClient
from tests import test_billing as paying
from tests.fakes.stripe_server import FakeStripe
from tests.security.routes import app_routes
from tests.test_billing import balance, buyer, checkout, session_id

# The fake Stripe and the app configured for it, as the payment tests have them.
fake_stripe = paying.fake_stripe
plugins = paying.plugins
settings = paying.settings
stripe = paying.stripe


async def post_form(api: ApiClient, path: str, form: dict[str, str]) -> Any:
    """A form as a browser posts it; the redirect is not followed."""
    return await api.client.post(
        path, data={"csrf_token": api.csrf or "", **form}, allow_redirects=False
    )


async def page_text(api: ApiClient, path: str, status: int = 200) -> str:
    response = await api.get(path)
    text = str(await response.text())
    assert response.status == status, text[:500]
    return text


PLAN_FORM = {
    "name": "Console Starter",
    "kind": "credits",
    "credits": "250,000",
    "price": "10.50",
    "currency": "usd",
    "interval": "once",
    "duration_days": "30",
    "description": "Made in the console",
}


async def create_plan(admin: ApiClient, **changes: str) -> dict[str, Any]:
    sent = await post_form(admin, "/admin/billing/plans", {**PLAN_FORM, **changes})
    assert sent.status == 303, await sent.text()
    plans = await admin.get_json("/api/admin/plans")
    return dict(next(p for p in plans if p["name"] == changes.get("name", PLAN_FORM["name"])))


async def pay(admin_or_buyer: ApiClient, stripe: FakeStripe, plan_id: str, coupon: str = "") -> str:
    started = await checkout(admin_or_buyer, plan_id, coupon or None)
    event = stripe.event("checkout.session.completed", stripe.complete(session_id(started["url"])))
    status, body = await stripe.deliver(event)
    assert (status, body["outcome"]) == (200, "applied")
    return str(started["order_id"])


# -- plans --------------------------------------------------------------------------------------


async def test_plans_are_created_edited_archived_and_restored_from_the_console(
    admin: ApiClient, make_client: Callable[[], Any]
) -> None:
    assert "No plans yet" in await page_text(admin, "/admin/billing/plans")

    # Every field in error at once, nothing created.
    bad = await post_form(
        admin,
        "/admin/billing/plans",
        {**PLAN_FORM, "name": "", "credits": "", "price": "10.555", "currency": "dollars"},
    )
    assert bad.status == 422
    text = await bad.text()
    assert "Nothing was saved" in text
    assert 'id="f-name-error"' in text and 'id="f-currency-error"' in text
    assert "a credits plan needs its number of credits" in text.lower()
    assert "Use at most 2 decimal places." in text
    assert 'value="10.555"' in text  # what was typed stays in the form
    assert await admin.get_json("/api/admin/plans") == []

    plan = await create_plan(admin)
    assert (plan["price"], plan["currency"], plan["credits"]) == (1050, "USD", 250_000)
    assert (plan["interval"], plan["duration_days"]) == ("once", 30)
    anonymous: ApiClient = await make_client()
    pricing = await page_text(anonymous, "/pricing")
    assert "Console Starter" in pricing and "10.50 USD" in pricing

    storage = await create_plan(
        admin, name="Half a GiB", kind="storage", storage_gib="0.5", price="3", credits=""
    )
    assert (storage["storage_bytes"], storage["credits"]) == (2**29, None)

    edit = f"/admin/billing/plans/{plan['id']}"
    form = await page_text(admin, edit)
    assert 'value="10.50"' in form and 'value="250000"' in form
    refused = await post_form(admin, edit, {"name": "Renamed", "credits": "", "price": "12"})
    assert refused.status == 422
    assert "Cannot be empty." in await refused.text()
    assert (await admin.get_json("/api/admin/plans"))[0]["name"] == "Console Starter"
    saved = await post_form(
        admin,
        edit,
        {"name": "Console Plus", "credits": "300000", "price": "12", "duration_days": ""},
    )
    assert (saved.status, saved.headers["Location"]) == (
        303,
        f"/admin/billing/plans#plan-{plan['id']}",
    )
    edited = next(p for p in await admin.get_json("/api/admin/plans") if p["id"] == plan["id"])
    assert (edited["name"], edited["credits"], edited["price"]) == ("Console Plus", 300_000, 1200)
    assert edited["duration_days"] is None  # an empty field clears the duration

    archived = await post_form(admin, f"{edit}/archive", {})
    assert archived.status == 303
    assert "Console Plus" not in await page_text(anonymous, "/pricing")
    listed = await page_text(admin, "/admin/billing/plans")
    assert "archived" in listed and "Put back on sale" in listed
    assert (await post_form(admin, f"{edit}/restore", {})).status == 303
    assert "Console Plus" in await page_text(anonymous, "/pricing")
    assert (await admin.get("/admin/billing/plans/nope")).status == 404


# -- coupons ------------------------------------------------------------------------------------


async def test_coupons_are_created_listed_with_redemptions_and_deactivated(
    admin: ApiClient, stripe: FakeStripe
) -> None:
    plan = await create_plan(admin)
    bad = await post_form(
        admin,
        "/admin/billing/coupons",
        {
            "code": "no spaces",
            "discount_kind": "percent",
            "discount": "150",
            "starts_at": "2030-01-02T00:00",
            "ends_at": "2030-01-01T00:00",
        },
    )
    assert bad.status == 422
    text = await bad.text()
    assert 'id="f-code-error"' in text and 'id="f-discount-error"' in text
    assert await admin.get_json("/api/admin/coupons") == []

    created = await post_form(
        admin,
        "/admin/billing/coupons",
        {
            "code": "spring",
            "discount_kind": "percent",
            "discount": "20",
            "max_discount": "1.00",
            "bonus_credits": "5,000",
            "max_uses": "10",
            "ends_at": "2099-12-31T23:59",
        },
    )
    assert created.status == 303, await created.text()
    [coupon] = await admin.get_json("/api/admin/coupons")
    assert (coupon["code"], coupon["percent_off"], coupon["max_discount"]) == ("SPRING", 20, 100)
    assert coupon["bonus_credits"] == 5000 and coupon["ends_at"].startswith("2099-12-31T23:59")
    taken = await post_form(
        admin,
        "/admin/billing/coupons",
        {"code": "SPRING", "discount_kind": "amount", "discount": "2"},
    )
    assert taken.status == 422 and "Taken." in await taken.text()

    quote = await page_text(admin, f"/pricing/quote?plan_id={plan['id']}&coupon_code=spring")
    assert "\u2212 1.00 USD" in quote and "9.50 USD" in quote  # 20% of 10.50 capped at 1.00
    await pay(admin, stripe, plan["id"], "SPRING")
    listed = await page_text(admin, "/admin/billing/coupons")
    assert re.search(r"1 / 10</a>", listed)  # one redemption of ten

    deactivated = await post_form(admin, f"/admin/billing/coupons/{coupon['id']}/deactivate", {})
    assert deactivated.status == 303
    assert "deactivated" in await page_text(admin, "/admin/billing/coupons")
    quote = await page_text(
        admin, f"/pricing/quote?plan_id={plan['id']}&coupon_code=spring", status=422
    )
    assert "No such coupon." in quote


# -- orders -------------------------------------------------------------------------------------


async def test_orders_are_filtered_shown_with_ledger_and_events_refunded_and_exported(
    admin: ApiClient, stripe: FakeStripe, make_client: Callable[[], Any]
) -> None:
    plan = await create_plan(admin, name="=HYPERLINK(1)")  # a name a spreadsheet would run
    await post_form(
        admin, "/admin/billing/coupons", {"code": "TEN", "discount_kind": "amount", "discount": "1"}
    )
    ann = await buyer(make_client, "ann@example.com")
    bob = await buyer(make_client, "bob@example.com")
    ann_order = await pay(ann, stripe, plan["id"], "TEN")
    bob_order = await pay(bob, stripe, plan["id"])
    pending = (await checkout(bob, plan["id"]))["order_id"]

    listed = await page_text(admin, "/admin/billing/orders")
    assert all(o[-8:] in listed for o in (ann_order, bob_order, pending))
    only_paid = await page_text(admin, "/admin/billing/orders?status=paid&user=ann%40")
    assert ann_order[-8:] in only_paid and bob_order[-8:] not in only_paid
    by_coupon = await page_text(admin, "/admin/billing/orders?coupon=ten")
    assert ann_order[-8:] in by_coupon and bob_order[-8:] not in by_coupon
    by_pending = await page_text(admin, "/admin/billing/orders?status=pending")
    assert pending[-8:] in by_pending and ann_order[-8:] not in by_pending
    future = await page_text(admin, "/admin/billing/orders?since=2099-01-01")
    assert "No order matches." in future
    # The admin API searches with the same model.
    found = await admin.get_json("/api/admin/orders?status=paid&user=ann%40example")
    assert [o["id"] for o in found] == [ann_order]
    assert (await admin.get("/api/admin/orders?since=2026-02-01&until=2026-01-01")).status == 422
    assert len(await admin.get_json("/api/admin/orders?until=9999-12-31")) == 3  # no overflow
    bad = await page_text(admin, "/admin/billing/orders?status=lost&since=yesterday", status=422)
    assert "Some filters are invalid" in bad and "status" in bad and "since" in bad

    detail = await page_text(admin, f"/admin/billing/orders/{bob_order}")
    assert "bob@example.com" in detail and "10.50 USD" in detail
    assert 'id="order-ledger"' in detail and "purchase" in detail
    assert "checkout.session.completed" in detail and "applied" in detail
    assert 'id="refund-form"' in detail and "data-confirm=" in detail

    refund = f"/admin/billing/orders/{bob_order}/refund"
    no_reason = await post_form(admin, refund, {"reason": "", "amount": "ten"})
    assert no_reason.status == 422
    text = await no_reason.text()
    assert 'id="refund-reason-error"' in text and 'id="refund-amount-error"' in text
    assert stripe.refunds == []

    # A part first: the same part of the credits goes back (250,000 x 2.50 / 10.50).
    part = await post_form(admin, refund, {"reason": "Late answer", "amount": "2.50"})
    assert (part.status, part.headers["Location"]) == (303, f"/admin/billing/orders/{bob_order}")
    assert await balance(bob) == 250_000 - 59_523
    # Bob spends most of what is left; the rest of the refund takes back only what is unspent.
    spent = await admin.post(
        f"/api/admin/users/{bob.user['id']}/credits", {"amount": -150_000, "reason": "spent"}
    )
    assert spent.status == 201
    too_much = await post_form(admin, refund, {"reason": "more", "amount": "9.00"})
    assert too_much.status == 422
    assert "At most 8.00 USD is left to refund." in await too_much.text()
    rest = await post_form(admin, refund, {"reason": "Asked within 14 days"})
    assert rest.status == 303
    assert [r["amount"] for r in stripe.refunds] == [250, 800]
    assert await balance(bob) == 0
    after = await page_text(admin, f"/admin/billing/orders/{bob_order}")
    assert "refunded in full" in after and 'id="refund-form"' not in after
    assert "\u221259,523" in after and "\u221240,477" in after  # the two take-backs
    assert re.search(r'data-label="Already spent" class="num">150,000<', after)
    audit = await page_text(admin, "/admin/audit?action=billing.order_refunded")
    assert "Order refunded by an admin" in audit and bob_order in audit
    again = await post_form(admin, refund, {"reason": "twice"})
    assert again.status == 409 and len(stripe.refunds) == 2

    exported = await admin.get("/admin/billing/orders.csv?status=paid")
    assert exported.status == 200 and exported.content_type == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await exported.text())))
    assert [r["order_id"] for r in rows] == [ann_order]
    [row] = rows
    assert (row["email"], row["coupon"], row["total_minor"], row["currency"]) == (
        "ann@example.com",
        "TEN",
        "950",
        "USD",
    )
    assert row["plan"] == "'=HYPERLINK(1)"  # never a formula
    everything = list(
        csv.DictReader(io.StringIO(await (await admin.get("/admin/billing/orders.csv")).text()))
    )
    assert len(everything) == 3


# -- revenue ------------------------------------------------------------------------------------


async def test_revenue_shows_payments_refunds_mrr_and_subscriptions(
    admin: ApiClient, stripe: FakeStripe
) -> None:
    once = await create_plan(admin)
    monthly = await create_plan(
        admin, name="Monthly", interval="month", price="15", duration_days=""
    )
    yearly = await create_plan(admin, name="Yearly", interval="year", price="120", duration_days="")
    await pay(admin, stripe, once["id"])
    refunded = await pay(admin, stripe, once["id"])
    await pay(admin, stripe, monthly["id"])
    await pay(admin, stripe, yearly["id"])
    assert (
        await post_form(admin, f"/admin/billing/orders/{refunded}/refund", {"reason": "x"})
    ).status == 303

    page = await page_text(admin, "/admin/billing/revenue")
    # 10.50 + 10.50 + 15 + 120 received today, 10.50 refunded.
    assert re.search(r'id="revenue-today">145\.50 USD<', page)
    assert re.search(r'id="revenue-30d">145\.50 USD<', page)
    assert re.search(r'id="revenue-refunds">10\.50 USD<', page)
    assert re.search(r'id="revenue-mrr">25\.00 USD<', page)  # 15 + 120 / 12
    assert re.search(r'id="revenue-subscriptions">2<', page)
    assert "<svg" in page and 'class="chart-bar"' in page and 'class="chart-refund"' in page
    assert 'id="revenue-table"' in page and "156.00 USD" in page  # today's row: received
    assert 'id="revenue-by-plan"' in page and "Console Starter" in page

    months = await page_text(admin, "/admin/billing/revenue?by=month&currency=usd")
    assert "Month (UTC)" in months and months.count("<rect") >= 1
    other = await page_text(admin, "/admin/billing/revenue?currency=EUR")
    assert re.search(r'id="revenue-30d">0\.00 EUR<', other)
    bad = await page_text(admin, "/admin/billing/revenue?by=week&currency=12", status=422)
    assert "Some choices are invalid" in bad


# -- access -------------------------------------------------------------------------------------


async def test_only_admins_reach_the_billing_console(
    admin: ApiClient, make_client: Callable[[], Any]
) -> None:
    plan = await create_plan(admin)
    someone = await buyer(make_client, "someone@example.com")
    anonymous: ApiClient = await make_client()
    console = [r for r in app_routes(admin.app) if r.path.startswith("/admin/billing")]
    assert len(console) == 15  # every page and form of the console, none forgotten
    for route in console:
        url = route.url(**{p: plan["id"] for p in route.params})
        if route.method == "GET":
            refused = await someone.get(url, allow_redirects=False)
            away = await anonymous.get(url, allow_redirects=False)
        else:
            refused = await post_form(
                someone, url, {"reason": "mine", "name": "Free", "code": "FREE"}
            )
            away = await anonymous.client.post(url, data={}, allow_redirects=False)
        assert refused.status == 403, route
        assert away.status in (303, 403), route
    assert [p["name"] for p in await admin.get_json("/api/admin/plans")] == ["Console Starter"]
    assert await admin.get_json("/api/admin/coupons") == []


# -- the pricing page's quote -------------------------------------------------------------------


async def test_the_pricing_quote_validates_its_query_with_the_apis_model(
    admin: ApiClient,
) -> None:
    plan = await create_plan(admin)
    long_code = "X" * 41
    too_long = await admin.get(f"/pricing/quote?plan_id={plan['id']}&coupon_code={long_code}")
    assert too_long.status == 422
    assert "Coupon code: String should have at most 40 characters" in await too_long.text()
    api = await admin.post("/api/billing/quote", {"plan_id": plan["id"], "coupon_code": long_code})
    assert api.status == 422 and "coupon_code" in (await api.json())["error"]["fields"]

    missing = await admin.get("/pricing/quote")
    assert missing.status == 422 and "Plan: Field required" in await missing.text()
    unknown = await admin.get("/pricing/quote?plan_id=nope")
    assert "Plan: No such plan (or it is no longer sold)." in await unknown.text()
    # htmx swaps only 2xx answers: the card gets the same message with a 200.
    swapped = await admin.get("/pricing/quote?plan_id=nope", headers={"HX-Request": "true"})
    assert swapped.status == 200 and "No such plan" in await swapped.text()
    fine = await admin.get(f"/pricing/quote?plan_id={plan['id']}&coupon_code=&_=1")
    assert fine.status == 200 and "10.50 USD" in await fine.text()

    form = {"plan_id": plan["id"], "coupon_code": long_code}
    bought = await post_form(admin, "/billing/checkout", form)
    assert bought.status == 422
    assert "Coupon code: String should have at most 40 characters" in await bought.text()
