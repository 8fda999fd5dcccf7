"""Auto-reload over HTTP: ``GET``/``PUT /api/billing/auto-reload`` and the ``/billing`` page's
form (``POST /billing/auto-reload``), both through ``multinotes.billing.auto_reload``; and
``GET /billing/portal``, the page a failed-renewal mail links to (its button makes a fresh
portal session: a GET changes nothing, and the provider's own links expire in minutes)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from multinotes.billing import auto_reload
from multinotes.errors import AppError
from multinotes.http.endpoint import endpoint, page
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user

routes = web.RouteTableDef()


class AutoReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    threshold: int = Field(
        ge=1, le=10**12, description="Reload when available credits fall below this."
    )
    plan_id: str = Field(
        min_length=1, max_length=32, description="A one-time credits plan, bought at list price."
    )


class AutoReloadOut(BaseModel):
    enabled: bool
    threshold: int | None
    plan_id: str | None
    disabled_reason: str | None = Field(
        description="Why auto-reload switched itself off (a declined payment), if it did."
    )
    has_payment_method: bool = Field(
        description="Whether a first payment saved a method auto-reload can charge."
    )
    reloads_last_24h: int
    max_per_day: int


@routes.get("/api/billing/auto-reload", name="api_billing_auto_reload")
@endpoint(access="user", response=AutoReloadOut, tags=["billing"])
async def get_auto_reload(request: web.Request) -> dict[str, Any]:
    """Your auto-reload: the threshold, the plan it buys, and whether it is on."""
    actor = require_user(request)
    return asdict(await auto_reload.state(request.app, actor.user_id))


@routes.put("/api/billing/auto-reload", name="api_billing_auto_reload_put")
@endpoint(
    access="user", body=AutoReloadIn, response=AutoReloadOut, tags=["billing"], errors=[409, 422]
)
async def put_auto_reload(request: web.Request, body: AutoReloadIn) -> dict[str, Any]:
    """Switch auto-reload on or off: when your available credits fall below ``threshold``, the
    plan is bought with the payment method your first payment saved (at most a few times a
    day; a declined payment switches it off and you get a mail). Switching it on needs a
    saved payment method (409 ``no_saved_payment_method``)."""
    actor = require_user(request)
    saved = await auto_reload.configure(
        request.app,
        actor.user_id,
        enabled=body.enabled,
        threshold=body.threshold,
        plan_id=body.plan_id,
    )
    return asdict(saved)


@routes.post("/billing/auto-reload", name="billing_auto_reload_form")
@page(access="user")
async def auto_reload_form(request: web.Request) -> web.StreamResponse:
    """The /billing page's auto-reload form."""
    actor = require_user(request)
    form = await request.post()
    try:
        body = AutoReloadIn(
            enabled=form.get("enabled") == "on",
            threshold=str(form.get("threshold", "")).replace(",", "").strip() or 0,
            plan_id=str(form.get("plan_id", ""))[:32],
        )
    except ValidationError:
        return redirect(
            "/billing#auto-reload", "Give a threshold of at least 1 credit and a plan.", "error"
        )
    try:
        saved = await auto_reload.configure(
            request.app,
            actor.user_id,
            enabled=body.enabled,
            threshold=body.threshold,
            plan_id=body.plan_id,
        )
    except AppError as exc:
        message = next(iter(exc.fields.values())) if exc.fields else exc.message
        return redirect("/billing#auto-reload", message, "error")
    return redirect(
        "/billing#auto-reload", "Auto-reload is on." if saved.enabled else "Auto-reload is off."
    )


@routes.get("/billing/portal", name="billing_portal_page")
@page(access="user")
async def portal_page(request: web.Request) -> web.Response:
    """A button on to the payment provider's customer portal (cards, invoices)."""
    require_user(request)
    return render(request, "billing/portal.html", {"nav": "billing"})
