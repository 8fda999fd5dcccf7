"""Admin console pages for the AI workspace: models (switches, prices, markup, connection test),
global pricing, tools on the home screen, and credit grants. Plain forms with
POST-redirect-GET; htmx swaps a row or a test result in place when it is there."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from multinotes import audit, catalog_admin, tools
from multinotes.app_settings import set_setting
from multinotes.catalog import PRICE_FIELDS, ModelSetting
from multinotes.catalog_admin import SETTING_KEYS, ModelPatch, PricingSettings, apply_model_patch
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_admin
from multinotes.identity.models import User
from multinotes.identity.service import normalize_email
from multinotes.keys import CATALOG, DB
from multinotes.tools import ToolPatch
from multinotes.wallet import service as wallet

routes = web.RouteTableDef()

MAX_ADJUSTMENT = 10**12

PRICE_LABELS = {
    "input_per_million": "Input, per million tokens",
    "output_per_million": "Output, per million tokens",
    "per_image": "Per image",
    "per_audio_minute": "Per audio minute",
}


def htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def slug(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", model_id)


def model_url(model_id: str) -> str:
    return "/admin/models/" + quote(model_id, safe="/")


def _decorate(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "slug": slug(item["id"]), "url": model_url(item["id"])}


async def _model_item(app: web.Application, model_id: str) -> dict[str, Any]:
    await app[CATALOG].get(model_id, include_disabled=True)  # 404 if unknown
    return _decorate(next(m for m in await catalog_admin.admin_models(app) if m["id"] == model_id))


# -- models -------------------------------------------------------------------------------------


async def models_page(
    request: web.Request, *, status: int = 200, pricing: Any = None, **extra: Any
) -> web.Response:
    models = [_decorate(m) for m in await catalog_admin.admin_models(request.app)]
    return render(
        request,
        "admin/models.html",
        {
            "nav": "admin",
            "section": "models",
            "models": models,
            "pricing": pricing or await catalog_admin.pricing_settings(request.app),
            "pricing_fields": {},
            **extra,
        },
        status=status,
    )


@routes.get("/admin/models", name="admin_models")
@page(access="admin")
async def admin_models(request: web.Request) -> web.Response:
    return await models_page(request)


@routes.post("/admin/models/toggle", name="admin_model_toggle")
@page(access="admin")
async def admin_model_toggle(request: web.Request) -> web.Response:
    form = await request.post()
    model_id = form_field(form, "model")
    enabled = form_field(form, "enabled").lower() == "true"
    await apply_model_patch(request.app, model_id, ModelPatch(enabled=enabled))
    await audit.record(
        request.app,
        request,
        "model.updated",
        target_type="model",
        target_id=model_id,
        details={"enabled": enabled},
    )
    item = await _model_item(request.app, model_id)
    if htmx(request):
        return aiohttp_jinja2.render_template("admin/_model_row.html", request, {"model": item})
    state = "enabled" if item["enabled"] else "disabled"
    return redirect(
        _back(form, "/admin/models") + f"#model-{item['slug']}",
        f"{item['name']} is now {state}.",
    )


@routes.post("/admin/models/test", name="admin_model_test")
@page(access="admin")
async def admin_model_test(request: web.Request) -> web.Response:
    form = await request.post()
    model_id = form_field(form, "model")
    result = await request.app[CATALOG].check(model_id)
    if htmx(request):
        return aiohttp_jinja2.render_template(
            "admin/_model_test.html", request, {"result": result, "slug": slug(model_id)}
        )
    outcome = "Connection ok" if result["ok"] else "Connection failed"
    return redirect(
        _back(form, model_url(model_id)),
        f"{outcome} ({result['latency_ms']} ms): {result['result']}",
        "success" if result["ok"] else "error",
    )


def _back(form: Any, default: str) -> str:
    back = form_field(form, "back")
    return back if back.startswith("/admin/") and not back.startswith("//") else default


@routes.get(r"/admin/models/{id:.+}", name="admin_model")
@page(access="admin")
async def admin_model(request: web.Request) -> web.Response:
    return await model_page(request, request.match_info["id"])


async def model_page(
    request: web.Request, model_id: str, *, status: int = 200, **extra: Any
) -> web.Response:
    app = request.app
    item = await _model_item(app, model_id)
    entry = await app[CATALOG].get(model_id, include_disabled=True)
    async with app[DB].read() as session:
        override = await session.get(ModelSetting, model_id)
    provider_prices = {n: getattr(entry.model.pricing, n) for n in PRICE_FIELDS}
    overrides = {n: getattr(override, n) if override else None for n in PRICE_FIELDS}
    pricing = await catalog_admin.pricing_settings(app)
    return render(
        request,
        "admin/model.html",
        {
            "nav": "admin",
            "section": "models",
            "model": item,
            "price_fields": [
                {
                    "name": n,
                    "label": PRICE_LABELS[n],
                    "provider": provider_prices[n],
                    "override": overrides[n],
                    "effective": item["pricing"][n],
                }
                for n in PRICE_FIELDS
            ],
            "markup_override": override.markup_percent if override else None,
            "global_markup": pricing["markup_percent"],
            "fields": {},
            "values": {},
            **extra,
        },
        status=status,
    )


@routes.post("/admin/models/prices", name="admin_model_prices")
@page(access="admin")
async def admin_model_prices(request: web.Request) -> web.Response:
    form = await request.post()
    model_id = form_field(form, "model")
    app = request.app
    current = await _model_item(app, model_id)
    if form_field(form, "action") == "reset":
        await apply_model_patch(
            app, model_id, ModelPatch(reset=True, enabled=bool(current["enabled"]))
        )
        await audit.record(
            app,
            request,
            "model.updated",
            target_type="model",
            target_id=model_id,
            details={"reset": True},
        )
        return redirect(model_url(model_id), f"{current['name']} uses the provider's prices again.")
    raw = {n: form_field(form, n) for n in (*PRICE_FIELDS, "markup_percent")}
    data: dict[str, Any] = {
        "pricing": {n: raw[n] or None for n in PRICE_FIELDS},
        "markup_percent": raw["markup_percent"] or None,
    }
    try:
        body = validate(ModelPatch, data)
    except Invalid as exc:
        fields = {k.removeprefix("pricing."): v for k, v in exc.fields.items()}
        return await model_page(
            request,
            model_id,
            status=exc.status,
            error="Nothing was saved: check the highlighted prices.",
            fields=fields,
            values=raw,
        )
    await apply_model_patch(app, model_id, body)
    await audit.record(
        app,
        request,
        "model.updated",
        target_type="model",
        target_id=model_id,
        details=body.model_dump(mode="json", exclude_unset=True),
    )
    return redirect(model_url(model_id), f"Prices of {current['name']} saved.")


@routes.post("/admin/pricing", name="admin_pricing")
@page(access="admin")
async def admin_pricing(request: web.Request) -> web.Response:
    form = await request.post()
    raw = {name: form_field(form, name) for name in SETTING_KEYS}
    try:
        body = validate(PricingSettings, {k: v for k, v in raw.items() if v != ""})
    except Invalid as exc:
        return await models_page(
            request,
            status=exc.status,
            pricing=raw,
            pricing_error="Nothing was saved: check the highlighted fields.",
            pricing_fields=exc.fields,
        )
    for name in body.model_fields_set:
        await set_setting(request.app[DB], SETTING_KEYS[name], getattr(body, name))
    request.app[CATALOG].invalidate()
    await audit.record(
        request.app, request, "pricing.updated", details=body.model_dump(exclude_unset=True)
    )
    return redirect("/admin/models#pricing", "Pricing settings saved.")


# -- tools --------------------------------------------------------------------------------------


async def tools_page(request: web.Request, *, status: int = 200, **extra: Any) -> web.Response:
    return render(
        request,
        "admin/tools.html",
        {
            "nav": "admin",
            "section": "tools",
            "tools": await tools.admin_tools(request.app),
            "errors": {},
            **extra,
        },
        status=status,
    )


@routes.get("/admin/tools", name="admin_tools")
@page(access="admin")
async def admin_tools(request: web.Request) -> web.Response:
    return await tools_page(request)


@routes.post("/admin/tools/{id}/move", name="admin_tool_move")
@page(access="admin")
async def admin_tool_move(request: web.Request) -> web.Response:
    form = await request.post()
    tool_id = request.match_info["id"]
    step = -1 if form_field(form, "direction") == "up" else 1
    await tools.move_tool(request.app, tool_id, step)
    if htmx(request):
        return await tools_page(request)
    return redirect(f"/admin/tools#tool-{tool_id}")


@routes.post("/admin/tools/{id}/visibility", name="admin_tool_visibility")
@page(access="admin")
async def admin_tool_visibility(request: web.Request) -> web.Response:
    form = await request.post()
    tool_id = request.match_info["id"]
    hidden = form_field(form, "hidden") == "true"
    await tools.update_tool(request.app, tool_id, {"hidden": hidden})
    tool = await tools.admin_tool(request.app, tool_id)
    state = "hidden from" if hidden else "shown on"
    return redirect(
        f"/admin/tools#tool-{tool_id}", f"{tool['name']} is now {state} the home screen."
    )


@routes.post("/admin/tools/{id}", name="admin_tool_update")
@page(access="admin")
async def admin_tool_update(request: web.Request) -> web.Response:
    require_admin(request)
    tool_id = request.match_info["id"]
    current = await tools.admin_tool(request.app, tool_id)
    form = await request.post()
    data: dict[str, Any] = {
        "name": form_field(form, "name"),
        "description": form_field(form, "description"),
        "hidden": "hidden" in form,
        "model_ids": (
            None
            if form_field(form, "models") != "chosen"
            else [str(v) for v in form.getall("model_ids", [])]
        ),
    }
    if current["accepts_system_prompt"]:
        data["system_prompt"] = form_field(form, "system_prompt") or None
    try:
        body = validate(ToolPatch, data)
        await tools.update_tool(
            request.app, tool_id, {n: getattr(body, n) for n in body.model_fields_set}
        )
    except Invalid as exc:
        return await tools_page(
            request,
            status=exc.status,
            error=f"{current['name']} was not changed: {_first(exc)}",
            errors={tool_id: exc.fields},
            values={tool_id: data},
        )
    return redirect(f"/admin/tools#tool-{tool_id}", f"{data['name']} saved.")


def _first(exc: Invalid) -> str:
    return next(iter(exc.fields.values()), exc.message)


# -- credits ------------------------------------------------------------------------------------


async def _user_by_email(app: web.Application, email: str) -> User | None:
    async with app[DB].read() as session:
        user: User | None = await session.scalar(
            select(User).where(User.email == normalize_email(email))
        )
        return user


async def credits_page(
    request: web.Request, email: str, *, status: int = 200, **extra: Any
) -> web.Response:
    app = request.app
    user = await _user_by_email(app, email) if email else None
    context: dict[str, Any] = {
        "nav": "admin",
        "section": "credits",
        "email": email,
        "found": user,
        "fields": {},
        "values": {},
    }
    if email and user is None and "error" not in extra:
        context["lookup_error"] = f"No user has the email address {email}."
    if user is not None:
        context["wallet"] = await wallet.summary(app[DB], user.id)
        context["entries"] = await wallet.ledger(app[DB], user.id, limit=10)
    context.update(extra)
    return render(request, "admin/credits.html", context, status=status)


@routes.get("/admin/credits", name="admin_credits")
@page(access="admin")
async def admin_credits(request: web.Request) -> web.Response:
    return await credits_page(request, request.query.get("email", "").strip()[:320])


@routes.post("/admin/credits", name="admin_credits_adjust")
@page(access="admin")
async def admin_credits_adjust(request: web.Request) -> web.Response:
    admin = require_admin(request)
    app = request.app
    form = await request.post()
    values = {n: form_field(form, n) for n in ("email", "amount", "reason")}
    fields: dict[str, str] = {}
    user = await _user_by_email(app, values["email"]) if values["email"] else None
    if not values["email"]:
        fields["email"] = "Enter the user's email address."
    elif user is None:
        fields["email"] = f"No user has the email address {values['email']}."
    try:
        amount = int(values["amount"].replace(",", "").replace("_", ""))
        if amount == 0:
            fields["amount"] = "Enter a positive number to grant or a negative one to deduct."
        elif abs(amount) > MAX_ADJUSTMENT:
            fields["amount"] = f"At most {MAX_ADJUSTMENT:,} credits at a time."
    except ValueError:
        amount = 0
        fields["amount"] = "Enter a whole number of credits, e.g. 5000 or -2000."
    if not values["reason"]:
        fields["reason"] = "Say why; the user sees it in their ledger."
    elif len(values["reason"]) > 500:
        fields["reason"] = "Keep the reason under 500 characters."
    if fields or user is None:
        return await credits_page(
            request,
            values["email"] if user else "",
            status=422,
            error="Nothing changed: check the highlighted fields.",
            fields=fields,
            values=values,
        )
    try:
        await wallet.adjust(app[DB], user.id, amount, values["reason"], by=admin.user_id)
    except AppError as exc:
        current = await wallet.summary(app[DB], user.id)
        return await credits_page(
            request,
            user.email,
            status=exc.status,
            error=(
                f"Nothing changed: deducting {abs(amount):,} credits would take {user.email} "
                f"below zero (available: {current['available']:,})."
            ),
            fields={"amount": f"at most {current['available']:,} can be deducted"},
            values=values,
        )
    await audit.record(
        app,
        request,
        "wallet.adjusted",
        target_type="user",
        target_id=user.id,
        details={"amount": amount, "reason": values["reason"]},
    )
    done = "Granted" if amount > 0 else "Deducted"
    preposition = "to" if amount > 0 else "from"
    balance = (await wallet.summary(app[DB], user.id))["balance"]
    return redirect(
        "/admin/credits?email=" + quote(user.email),
        f"{done} {abs(amount):,} credits {preposition} {user.email}. Balance: {balance:,}.",
    )
