"""The operator's billing console: plans, coupons, orders (search, one order with its ledger
entries and provider events, refund, CSV export) and revenue.

Plain forms with POST-redirect-GET like the rest of the admin console. Forms are validated by
the same pydantic models as the admin JSON API (``multinotes.billing.schemas``); the pages only
turn what a person types (``10.00`` USD, ``5`` GiB, a local date and time) into the API's
units (minor units, bytes, UTC) first. A refund goes through the same code as the API's
(``refunds.refund_through_backend``).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from multinotes import audit
from multinotes.billing import manual_payments, reports
from multinotes.billing import service as billing
from multinotes.billing.models import INTERVALS, Plan
from multinotes.billing.pages import ZERO_DECIMAL, money
from multinotes.billing.refunds import refund_through_backend, refundable
from multinotes.billing.schemas import (
    CouponIn,
    ManualPaymentIn,
    OrdersQuery,
    PlanIn,
    PlanPatch,
    RefundIn,
    RevenueQuery,
)
from multinotes.errors import AppError, Invalid, NotFound
from multinotes.http.endpoint import page, validate
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render
from multinotes.keys import DB

routes = web.RouteTableDef()

GIB = 2**30
#: The order filters, in the order the form shows them.
ORDER_FILTERS = ("status", "user", "plan_id", "coupon", "since", "until")
ORDER_STATUSES = ("pending", "paid", "failed", "expired", "refunded", "disputed")


def _minor_units(text: str, currency: str) -> int:
    """``"10.50"`` → 1050 (whole units for currencies without cents); ValueError if not a
    positive amount with at most the currency's decimals."""
    try:
        amount = Decimal(text.replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise ValueError("Enter an amount such as 10.00.") from None
    places = 0 if currency.upper() in ZERO_DECIMAL else 2
    scaled = amount.scaleb(places)
    if not amount.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"Use at most {places} decimal places.")
    if amount <= 0:
        raise ValueError("Must be more than zero.")
    return int(scaled)


def _major(amount: int | None, currency: str) -> str:
    """Minor units back to what the form shows (``1050`` → ``10.50``)."""
    if amount is None:
        return ""
    if currency.upper() in ZERO_DECIMAL:
        return str(amount)
    return f"{Decimal(amount).scaleb(-2):.2f}"


def _storage_bytes(text: str) -> int:
    try:
        gib = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError("Enter a number of GiB, such as 5 or 0.5.") from None
    if not gib.is_finite() or gib <= 0:
        raise ValueError("Must be more than zero.")
    return int(gib * GIB)


def _utc(text: str) -> datetime:
    """A ``datetime-local`` field's value, read as UTC (the console shows times in UTC)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _field_errors(exc: Invalid, renames: dict[str, str]) -> dict[str, str]:
    """The model's field errors under the form's field names. Errors about the whole model
    say which field they are about (``"credits: a credits plan needs ..."``)."""
    fields: dict[str, str] = {}
    for name, message in exc.fields.items():
        if name == "body" and ": " in message:
            name, message = message.split(": ", 1)
            message = message[:1].upper() + message[1:]
        fields.setdefault(renames.get(name, name), message)
    return fields


def _nothing_changed(fields: dict[str, str]) -> str:
    return "Nothing was saved: " + "; ".join(f"{k}: {v}" for k, v in fields.items())


def _tabs_context(tab: str) -> dict[str, Any]:
    return {"nav": "admin", "section": "billing", "tab": tab}


# -- plans --------------------------------------------------------------------------------------


def _plan_row(plan: Plan) -> dict[str, Any]:
    per = {"once": "one-time", "month": "monthly", "year": "yearly"}[plan.interval]
    return {
        "id": plan.id,
        "name": plan.name,
        "kind": plan.kind,
        "amount": (
            f"{plan.credits:,} credits"
            if plan.kind == "credits"
            else f"{(plan.storage_bytes or 0) / GIB:g} GiB storage"
        ),
        "price": money(plan.price, plan.currency),
        "interval": per,
        "duration_days": plan.duration_days,
        "archived": plan.archived_at is not None,
    }


async def plans_page(request: web.Request, *, status: int = 200, **extra: Any) -> web.Response:
    plans = await billing.list_plans(request.app[DB], include_archived=True)
    context: dict[str, Any] = {
        **_tabs_context("plans"),
        "plans": [_plan_row(p) for p in plans],
        "intervals": INTERVALS,
        "values": {"kind": "credits", "interval": "once", "currency": "USD"},
        "fields": {},
    }
    context.update(extra)
    return render(request, "admin/billing/plans.html", context, status=status)


@routes.get("/admin/billing/plans", name="admin_billing_plans")
@page(access="admin")
async def admin_plans(request: web.Request) -> web.Response:
    return await plans_page(request)


def _plan_in(form: MultiDictProxy[Any]) -> tuple[dict[str, str], PlanIn | None, dict[str, str]]:
    """The create form as ``PlanIn``: (what was typed, the plan or None, field errors)."""
    names = ("name", "kind", "credits", "storage_gib", "price", "currency", "interval")
    values = {n: form_field(form, n) for n in (*names, "duration_days", "description")}
    values["currency"] = values["currency"].upper()
    data: dict[str, Any] = {
        k: values[k] for k in ("name", "kind", "currency", "interval", "description")
    }
    fields: dict[str, str] = {}
    if values["duration_days"]:
        data["duration_days"] = values["duration_days"]
    # Said here as well as by PlanIn, whose check of the pair runs only once every field is
    # valid: the person sees all that is missing at once.
    if values["kind"] == "credits":
        if values["credits"]:
            data["credits"] = values["credits"].replace(",", "")
        else:
            fields["credits"] = "A credits plan needs its number of credits."
    if values["kind"] == "storage":
        if not values["storage_gib"]:
            fields["storage_gib"] = "A storage plan needs its storage limit."
        else:
            try:
                data["storage_bytes"] = _storage_bytes(values["storage_gib"])
            except ValueError as exc:
                fields["storage_gib"] = str(exc)
    try:
        data["price"] = _minor_units(values["price"], values["currency"] or "USD")
    except ValueError as exc:
        fields["price"] = "Enter the price." if not values["price"] else str(exc)
    try:
        plan = validate(PlanIn, data)
    except Invalid as exc:
        for name, message in _field_errors(exc, {"storage_bytes": "storage_gib"}).items():
            fields.setdefault(name, message)
        return values, None, fields
    return values, (None if fields else plan), fields


@routes.post("/admin/billing/plans", name="admin_billing_plans_create")
@page(access="admin")
async def admin_plans_create(request: web.Request) -> web.Response:
    values, body, fields = _plan_in(await request.post())
    if body is None:
        return await plans_page(
            request, status=422, error=_nothing_changed(fields), fields=fields, values=values
        )
    plan = await billing.create_plan(request.app[DB], body.plan_values())
    await audit.record(
        request.app, request, "billing.plan_created", target_type="plan", target_id=plan.id
    )
    return redirect(f"/admin/billing/plans#plan-{plan.id}", f"Plan {plan.name} created.")


async def _any_plan(request: web.Request) -> Plan:
    plans = await billing.list_plans(request.app[DB], include_archived=True)
    found = next((p for p in plans if p.id == request.match_info["id"]), None)
    if found is None:
        raise NotFound("No such plan.")
    return found


def _plan_values(plan: Plan) -> dict[str, str]:
    return {
        "name": plan.name,
        "credits": str(plan.credits),
        "storage_gib": f"{(plan.storage_bytes or 0) / GIB:g}",
        "price": _major(plan.price, plan.currency),
        "duration_days": str(plan.duration_days or ""),
        "description": plan.description,
    }


async def plan_page(
    request: web.Request, plan: Plan, *, status: int = 200, **extra: Any
) -> web.Response:
    context: dict[str, Any] = {
        **_tabs_context("plans"),
        "plan": plan,
        "row": _plan_row(plan),
        "values": _plan_values(plan),
        "fields": {},
    }
    context.update(extra)
    return render(request, "admin/billing/plan.html", context, status=status)


@routes.get("/admin/billing/plans/{id}", name="admin_billing_plan")
@page(access="admin")
async def admin_plan(request: web.Request) -> web.Response:
    return await plan_page(request, await _any_plan(request))


@routes.post("/admin/billing/plans/{id}", name="admin_billing_plan_update")
@page(access="admin")
async def admin_plan_update(request: web.Request) -> web.Response:
    plan = await _any_plan(request)
    form = await request.post()
    values = {n: form_field(form, n) for n in _plan_values(plan)}
    data: dict[str, Any] = {"name": values["name"], "description": values["description"]}
    fields: dict[str, str] = {}
    # An empty duration means "no fixed duration" (explicitly null, which PlanPatch allows).
    data["duration_days"] = values["duration_days"] or None
    if plan.kind == "credits":
        data["credits"] = values["credits"].replace(",", "") or None
    else:
        try:
            data["storage_bytes"] = _storage_bytes(values["storage_gib"])
        except ValueError as exc:
            fields["storage_gib"] = str(exc)
    try:
        data["price"] = _minor_units(values["price"], plan.currency)
    except ValueError as exc:
        fields["price"] = "Enter the price." if not values["price"] else str(exc)
    try:
        changes = validate(PlanPatch, data)
    except Invalid as exc:
        for name, message in _field_errors(exc, {"storage_bytes": "storage_gib"}).items():
            fields.setdefault(name, message)
    if fields:
        return await plan_page(
            request, plan, status=422, error=_nothing_changed(fields), fields=fields, values=values
        )
    saved = await billing.update_plan(
        request.app[DB], plan.id, changes.model_dump(exclude_unset=True)
    )
    await audit.record(
        request.app, request, "billing.plan_changed", target_type="plan", target_id=plan.id
    )
    return redirect(
        f"/admin/billing/plans#plan-{plan.id}",
        f"Plan {saved.name} saved. Orders already placed keep their price and credits.",
    )


@routes.post("/admin/billing/plans/{id}/archive", name="admin_billing_plan_archive")
@page(access="admin")
async def admin_plan_archive(request: web.Request) -> web.Response:
    plan = await billing.archive_plan(request.app[DB], (await _any_plan(request)).id)
    await audit.record(
        request.app, request, "billing.plan_archived", target_type="plan", target_id=plan.id
    )
    return redirect(
        f"/admin/billing/plans#plan-{plan.id}",
        f"Plan {plan.name} archived: it is no longer sold (orders and subscriptions go on).",
    )


@routes.post("/admin/billing/plans/{id}/restore", name="admin_billing_plan_restore")
@page(access="admin")
async def admin_plan_restore(request: web.Request) -> web.Response:
    plan = await billing.update_plan(
        request.app[DB], (await _any_plan(request)).id, {"archived_at": None}
    )
    await audit.record(
        request.app, request, "billing.plan_restored", target_type="plan", target_id=plan.id
    )
    return redirect(f"/admin/billing/plans#plan-{plan.id}", f"Plan {plan.name} is on sale again.")


# -- coupons ------------------------------------------------------------------------------------


def _coupon_row(coupon: Any) -> dict[str, Any]:
    if coupon.percent_off:
        discount = f"{coupon.percent_off}% off"
        if coupon.max_discount:
            discount += f" (at most {_major(coupon.max_discount, 'USD')})"
    else:
        discount = f"{_major(coupon.amount_off, 'USD')} off"
    now = datetime.now(UTC)
    if coupon.archived_at is not None:
        state = "deactivated"
    elif coupon.ends_at and coupon.ends_at <= now:
        state = "expired"
    elif coupon.starts_at and coupon.starts_at > now:
        state = "scheduled"
    elif coupon.max_uses is not None and coupon.uses >= coupon.max_uses:
        state = "used up"
    else:
        state = "active"
    return {
        "id": coupon.id,
        "code": coupon.code,
        "discount": discount,
        "min_order": _major(coupon.min_order, "USD"),
        "bonus_credits": coupon.bonus_credits,
        "starts_at": coupon.starts_at,
        "ends_at": coupon.ends_at,
        "uses": coupon.uses,
        "max_uses": coupon.max_uses,
        "max_uses_per_user": coupon.max_uses_per_user,
        "state": state,
        "archived": coupon.archived_at is not None,
    }


async def coupons_page(request: web.Request, *, status: int = 200, **extra: Any) -> web.Response:
    coupons = await billing.list_coupons(request.app[DB])
    context: dict[str, Any] = {
        **_tabs_context("coupons"),
        "coupons": [_coupon_row(c) for c in coupons],
        "values": {"discount_kind": "percent"},
        "fields": {},
    }
    context.update(extra)
    return render(request, "admin/billing/coupons.html", context, status=status)


@routes.get("/admin/billing/coupons", name="admin_billing_coupons")
@page(access="admin")
async def admin_coupons(request: web.Request) -> web.Response:
    return await coupons_page(request)


def _coupon_in(
    form: MultiDictProxy[Any],
) -> tuple[dict[str, str], CouponIn | None, dict[str, str]]:
    names = (
        "code",
        "discount_kind",
        "discount",
        "max_discount",
        "min_order",
        "bonus_credits",
        "starts_at",
        "ends_at",
        "max_uses",
        "max_uses_per_user",
    )
    values = {n: form_field(form, n) for n in names}
    data: dict[str, Any] = {"code": values["code"]}
    fields: dict[str, str] = {}
    if values["discount_kind"] not in ("percent", "amount"):
        fields["discount_kind"] = "Choose a percentage or an amount off."
    elif not values["discount"]:
        fields["discount"] = "Enter the discount."
    elif values["discount_kind"] == "percent":
        data["percent_off"] = values["discount"].removesuffix("%").strip()
    else:
        try:
            data["amount_off"] = _minor_units(values["discount"], "USD")
        except ValueError as exc:
            fields["discount"] = str(exc)
    for name in ("max_discount", "min_order"):
        if values[name]:
            try:
                data[name] = _minor_units(values[name], "USD")
            except ValueError as exc:
                fields[name] = str(exc)
    for name in ("bonus_credits", "max_uses", "max_uses_per_user"):
        if values[name]:
            data[name] = values[name].replace(",", "")
    for name in ("starts_at", "ends_at"):
        if values[name]:
            try:
                data[name] = _utc(values[name])
            except ValueError:
                fields[name] = "Enter a date and time, such as 2026-12-31 23:59."
    try:
        coupon = validate(CouponIn, data)
    except Invalid as exc:
        renames = {"percent_off": "discount", "amount_off": "discount"}
        for name, message in _field_errors(exc, renames).items():
            fields.setdefault(name, message)
        return values, None, fields
    return values, (None if fields else coupon), fields


@routes.post("/admin/billing/coupons", name="admin_billing_coupons_create")
@page(access="admin")
async def admin_coupons_create(request: web.Request) -> web.Response:
    values, body, fields = _coupon_in(await request.post())
    if body is not None:
        try:
            coupon = await billing.create_coupon(request.app[DB], body.model_dump())
        except AppError as exc:  # the code is taken
            fields = exc.fields or {"code": exc.message}
        else:
            await audit.record(
                request.app,
                request,
                "billing.coupon_created",
                target_type="coupon",
                target_id=coupon.id,
            )
            return redirect(
                f"/admin/billing/coupons#coupon-{coupon.id}", f"Coupon {coupon.code} created."
            )
    return await coupons_page(
        request, status=422, error=_nothing_changed(fields), fields=fields, values=values
    )


@routes.post("/admin/billing/coupons/{id}/deactivate", name="admin_billing_coupon_deactivate")
@page(access="admin")
async def admin_coupon_deactivate(request: web.Request) -> web.Response:
    coupon = await billing.archive_coupon(request.app[DB], request.match_info["id"])
    await audit.record(
        request.app, request, "billing.coupon_archived", target_type="coupon", target_id=coupon.id
    )
    return redirect(
        f"/admin/billing/coupons#coupon-{coupon.id}",
        f"Coupon {coupon.code} deactivated: new quotes and checkouts refuse it.",
    )


# -- orders -------------------------------------------------------------------------------------


def _order_filters(request: web.Request) -> dict[str, str]:
    return {
        n: request.query.get(n, "").strip()
        for n in ORDER_FILTERS
        if request.query.get(n, "").strip()
    }


def _orders_query(request: web.Request, filters: dict[str, str], limit: int) -> OrdersQuery:
    before = request.query.get("before", "").strip() or None
    query: OrdersQuery = validate(OrdersQuery, {**filters, "before": before, "limit": limit})
    return query


def _order_row(row: reports.OrderRow) -> dict[str, Any]:
    order = row.order
    return {
        "id": order.id,
        "email": row.email,
        "user_id": order.user_id,
        "plan": row.plan_name,
        "coupon": row.coupon_code,
        "status": billing.shown_status(order),
        "subscription_status": order.subscription_status,
        "total": money(order.total, order.currency),
        "discount": money(order.discount, order.currency) if order.discount else "",
        "backend": order.backend,
        "created_at": order.created_at,
        "paid_at": order.paid_at,
    }


@routes.get("/admin/billing/orders", name="admin_billing_orders")
@page(access="admin")
async def admin_orders(request: web.Request) -> web.Response:
    filters = _order_filters(request)
    error = None
    rows: list[reports.OrderRow] = []
    cursor = None
    try:
        rows, cursor = await reports.search_orders(
            request.app[DB], _orders_query(request, filters, 50)
        )
    except Invalid as exc:
        error = "Some filters are invalid: " + "; ".join(
            f"{k}: {v}" for k, v in _field_errors(exc, {}).items()
        )
    plans = await billing.list_plans(request.app[DB], include_archived=True)
    return render(
        request,
        "admin/billing/orders.html",
        {
            **_tabs_context("orders"),
            "filters": filters,
            "orders": [_order_row(r) for r in rows],
            "statuses": ORDER_STATUSES,
            "plans": plans,
            "next_url": (
                f"/admin/billing/orders?{urlencode({**filters, 'before': cursor})}"
                if cursor
                else None
            ),
            "paged": bool(request.query.get("before")),
            "csv_url": "/admin/billing/orders.csv" + (f"?{urlencode(filters)}" if filters else ""),
            "error": error,
        },
        status=422 if error else 200,
    )


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (an email or a plan name can
    start with ``=``)."""
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


CSV_COLUMNS = (
    "order_id",
    "created_at",
    "paid_at",
    "status",
    "subscription_status",
    "user_id",
    "email",
    "plan",
    "coupon",
    "backend",
    "currency",
    "subtotal_minor",
    "discount_minor",
    "total_minor",
    "credits",
    "bonus_credits",
    "payment_reference",
)


@routes.get("/admin/billing/orders.csv", name="admin_billing_orders_csv")
@page(access="admin")
async def admin_orders_csv(request: web.Request) -> web.Response:
    """The filtered orders as CSV (amounts in the currency's minor unit, times in UTC)."""
    filters = _order_filters(request)
    rows = await reports.export_orders(
        request.app[DB], _orders_query(request, filters, 200)
    )  # a bad filter is the error page's 422
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        o = row.order
        writer.writerow(
            _cell(v)
            for v in (
                o.id,
                o.created_at,
                o.paid_at,
                billing.shown_status(o),
                o.subscription_status,
                o.user_id,
                row.email,
                row.plan_name,
                row.coupon_code,
                o.backend,
                o.currency,
                o.subtotal,
                o.discount,
                o.total,
                o.credits,
                o.bonus_credits,
                o.payment_reference,
            )
        )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="orders-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _pretty(raw: str) -> str:
    try:
        return json.dumps(json.loads(raw), indent=2, sort_keys=True)
    except ValueError:
        return raw


async def order_page(
    request: web.Request, order_id: str, *, status: int = 200, **extra: Any
) -> web.Response:
    detail = await reports.order_detail(request.app[DB], order_id)
    order = detail.row.order
    context: dict[str, Any] = {
        **_tabs_context("orders"),
        "order": order,
        "row": _order_row(detail.row),
        "subtotal": money(order.subtotal, order.currency),
        "ledger": detail.ledger,
        "events": [
            {
                "received_at": e.received_at,
                "type": e.type,
                "provider_type": e.provider_type,
                "event_id": e.event_id,
                "backend": e.backend,
                "outcome": e.outcome,
                "raw": _pretty(e.raw),
            }
            for e in detail.events
        ],
        "refundable": refundable(order),
        "payable": manual_payments.payable(
            order, await manual_payments.plan_of(request.app[DB], order)
        ),
        "total_amount": _major(order.total, order.currency),
        "refunds": [
            {
                "created_at": r.created_at,
                "amount": money(r.amount, r.currency),
                "credits_taken": r.credits_taken,
                "shortfall": r.shortfall,
                "reason": r.reason,
                "provider_refund_id": r.provider_refund_id,
            }
            for r in detail.refunds
        ],
        "refunded": money(detail.refunded, order.currency) if detail.refunds else "",
        "left": money(order.total - detail.refunded, order.currency),
        "left_amount": _major(order.total - detail.refunded, order.currency),
        "fields": {},
        "values": {},
        "paid_fields": {},
        "paid_values": {},
    }
    context.update(extra)
    return render(request, "admin/billing/order.html", context, status=status)


@routes.get("/admin/billing/orders/{id}", name="admin_billing_order")
@page(access="admin")
async def admin_order(request: web.Request) -> web.Response:
    return await order_page(request, request.match_info["id"])


@routes.post("/admin/billing/orders/{id}/refund", name="admin_billing_order_refund")
@page(access="admin")
async def admin_order_refund(request: web.Request) -> web.Response:
    """The order page's Refund button (after its confirmation): all that is left, or the amount
    typed, through the payment provider; then the same part of the order's credits is taken
    back as far as it is unspent."""
    order_id = request.match_info["id"]
    before = await reports.order_detail(request.app[DB], order_id)  # 404 before anything else
    currency = before.row.order.currency
    form = await request.post()
    values = {n: form_field(form, n) for n in ("reason", "amount")}
    data: dict[str, Any] = {"reason": values["reason"]}
    fields: dict[str, str] = {}
    if values["amount"]:
        try:
            data["amount"] = _minor_units(values["amount"], currency)
        except ValueError as exc:
            fields["amount"] = str(exc)
    try:
        body = validate(RefundIn, data)
        if fields:
            raise Invalid(fields=fields)
        order = await refund_through_backend(request, order_id, body.reason, body.amount)
    except AppError as exc:
        fields = {**fields, **{k: v for k, v in exc.fields.items() if k in values}}
        if "amount" in fields and "minor units" in fields["amount"]:
            left = before.row.order.total - before.refunded
            fields["amount"] = f"At most {money(left, currency)} is left to refund."
        message = "; ".join(fields.values()) if fields else exc.message
        return await order_page(
            request,
            order_id,
            status=exc.status,
            error=f"Not refunded: {message}",
            fields=fields,
            values=values,
        )
    after = await reports.order_detail(request.app[DB], order_id)
    newest = after.refunds[-1] if len(after.refunds) > len(before.refunds) else None
    if newest is None:  # the provider's webhook recorded it first: nothing new here
        return redirect(f"/admin/billing/orders/{order.id}", "Refunded.")
    spent = f" ({newest.shortfall:,} had been spent)" if newest.shortfall else ""
    return redirect(
        f"/admin/billing/orders/{order.id}",
        f"Refunded {money(newest.amount, currency)}; {newest.credits_taken:,} unspent credits "
        f"were taken back{spent}.",
    )


@routes.post("/admin/billing/orders/{id}/mark-paid", name="admin_billing_order_mark_paid")
@page(access="admin")
async def admin_order_mark_paid(request: web.Request) -> web.Response:
    """The order page's "Record a bank transfer" form (after its confirmation): the order is
    paid and its credits granted once, as a webhook would (``manual_payments``)."""
    order_id = request.match_info["id"]
    before = await reports.order_detail(request.app[DB], order_id)  # 404 before anything else
    currency = before.row.order.currency
    form = await request.post()
    values = {n: form_field(form, n) for n in ("amount", "reference", "note")}
    data: dict[str, Any] = {"reference": values["reference"], "note": values["note"]}
    fields: dict[str, str] = {}
    try:
        data["amount"] = _minor_units(values["amount"], currency)
        fields.update(manual_payments.amount_error(before.row.order, data["amount"]))
    except ValueError as exc:
        fields["amount"] = str(exc) if values["amount"] else "Enter the amount received."
    try:
        body = validate(ManualPaymentIn, {"amount": 1, **data} if fields else data)
        if fields:
            raise Invalid(fields=fields)
        outcome = await manual_payments.mark_paid(request, order_id, body)
    except AppError as exc:
        fields = {**fields, **{k: v for k, v in exc.fields.items() if k in values}}
        message = "; ".join(fields.values()) if fields else exc.message
        return await order_page(
            request,
            order_id,
            status=exc.status,
            paid_error=f"Not marked paid: {message}",
            paid_fields=fields,
            paid_values=values,
        )
    if outcome == "duplicate":
        return redirect(f"/admin/billing/orders/{order_id}", "This payment was already recorded.")
    return redirect(
        f"/admin/billing/orders/{order_id}",
        f"Marked paid: {money(before.row.order.total, currency)} by bank transfer "
        f"({body.reference}); the order's credits were granted.",
    )


# -- revenue ------------------------------------------------------------------------------------

CHART_WIDTH = 720
CHART_HEIGHT = 240
CHART_LEFT = 8
CHART_BOTTOM = 24


def _chart(figures: reports.Revenue) -> dict[str, Any]:
    """Bar geometry for the server-rendered SVG: each bucket's gross revenue and, beside it,
    its refunds, on one scale."""
    count = len(figures.buckets)
    top = max([b.gross for b in figures.buckets] + [b.refunds for b in figures.buckets] + [1])
    slot = (CHART_WIDTH - CHART_LEFT) / count
    plot = CHART_HEIGHT - CHART_BOTTOM - 8
    bars = []
    step = 5 if count > 12 else 1
    for i, bucket in enumerate(figures.buckets):
        x = CHART_LEFT + i * slot
        gross_h = round(plot * bucket.gross / top, 1)
        refund_h = round(plot * bucket.refunds / top, 1)
        bars.append(
            {
                "label": bucket.label,
                "x": round(x + slot * 0.1, 1),
                "width": round(slot * 0.55, 1),
                "height": gross_h,
                "y": round(CHART_HEIGHT - CHART_BOTTOM - gross_h, 1),
                "refund_x": round(x + slot * 0.65, 1),
                "refund_width": round(slot * 0.25, 1),
                "refund_height": refund_h,
                "refund_y": round(CHART_HEIGHT - CHART_BOTTOM - refund_h, 1),
                "gross": money(bucket.gross, figures.currency),
                "refunds": money(bucket.refunds, figures.currency),
                "tick": (i % step == 0 or i == count - 1),
                "tick_x": round(x + slot * 0.5, 1),
                # The last label ends at its bar, so it stays inside the picture.
                "tick_anchor": "end" if i == count - 1 else "middle",
                "tick_label": bucket.label[5:] if figures.by == "day" else bucket.label,
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "baseline": CHART_HEIGHT - CHART_BOTTOM,
        "top_label": money(top, figures.currency) if top > 1 else "",
        "bars": bars,
    }


@routes.get("/admin/billing/revenue", name="admin_billing_revenue")
@page(access="admin")
async def admin_revenue(request: web.Request) -> web.Response:
    db = request.app[DB]
    known = await reports.currencies(db)
    wanted = {n: request.query[n].strip() for n in ("currency", "by") if request.query.get(n)}
    error = None
    try:
        query: RevenueQuery = validate(RevenueQuery, wanted)
    except Invalid as exc:
        error = "Some choices are invalid: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        query = RevenueQuery()
    currency = (query.currency or known[0]).upper()
    figures = await reports.revenue(db, currency, query.by)
    cur = figures.currency
    return render(
        request,
        "admin/billing/revenue.html",
        {
            **_tabs_context("revenue"),
            "figures": figures,
            "currencies": sorted({*known, currency}),
            "currency": currency,
            "by": query.by,
            "chart": _chart(figures),
            "rows": [
                {
                    "label": b.label,
                    "gross": money(b.gross, cur),
                    "refunds": money(b.refunds, cur),
                    "net": money(b.net, cur),
                    "payments": b.payments,
                }
                for b in figures.buckets
            ],
            "today": money(figures.today, cur),
            "last_30_days": money(figures.last_30_days, cur),
            "refunds_30_days": money(figures.refunds_30_days, cur),
            "mrr": money(figures.mrr, cur),
            "total": money(figures.total, cur),
            "by_plan": [{**p, "revenue": money(p["revenue"], cur)} for p in figures.by_plan],
            "error": error,
        },
        status=422 if error else 200,
    )
