"""The console's abuse pages: ``/admin/abuse`` (the review queue with its filters and a form
per hit to dismiss, warn or block) and ``/admin/abuse/rules``. POST-redirect-GET forms."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes.abuse import rules, service
from multinotes.abuse.models import STATUSES
from multinotes.abuse.schemas import ActIn, HitQuery, RuleIn
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.keys import DB

routes = web.RouteTableDef()

#: What each rule's threshold counts, as its form asks for it.
THRESHOLD_LABELS = {
    "signup_burst": "Sign-ups allowed from one network (/24 or /64)",
    "credit_drain": "Credits one account may spend (1 credit = US$0.00001)",
    "moderation_flags": "Content-filter refusals of one account",
    "api_key_misuse": "Networks one API key may be used from",
}


async def _queue(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    filters = {
        name: request.query.get(name, "").strip()
        for name in ("rule", "status")
        if request.query.get(name, "").strip()
    }
    error = extra.pop("error", None)
    rows: list[Any] = []
    try:
        query = validate(HitQuery, filters)
        rows, _cursor = await service.list_hits(
            request.app[DB], rule=query.rule, status=query.status, limit=100
        )
    except Invalid as exc:
        error = "Some filters are invalid: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        status = 422
    return render(
        request,
        "admin/abuse.html",
        {
            "nav": "admin",
            "section": "abuse",
            "filters": filters,
            "rows": rows,
            "rules": {name: label for name, (label, _d) in rules.RULES.items()},
            "statuses": STATUSES,
            "error": error,
            **extra,
        },
        status=status,
    )


@routes.get("/admin/abuse", name="admin_abuse")
@page(access="admin")
async def queue(request: web.Request) -> web.Response:
    return await _queue(request)


@routes.post("/admin/abuse/{id}", name="admin_abuse_act")
@page(access="admin")
async def act(request: web.Request) -> web.Response:
    form = await request.post()
    data = {"action": str(form.get("action", "")), "note": str(form.get("note", ""))}
    try:
        body = validate(ActIn, data)
        hit = await service.act(request, request.match_info["id"], body.action, body.note)
    except AppError as exc:
        if exc.status == 404:
            raise
        return await _queue(request, exc.status, error=exc.message)
    done = {"dismissed": "dismissed", "warned": "warned", "blocked": "blocked"}[hit.status]
    return redirect("/admin/abuse", f"Report {done}.")


async def _rules(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    return render(
        request,
        "admin/abuse_rules.html",
        {
            "nav": "admin",
            "section": "abuse",
            "rules": await rules.all_settings(request.app[DB]),
            "labels": {name: label for name, (label, _d) in rules.RULES.items()},
            "threshold_labels": THRESHOLD_LABELS,
            "account_rules": rules.ACCOUNT_RULES,
            **extra,
        },
        status=status,
    )


@routes.get("/admin/abuse/rules", name="admin_abuse_rules")
@page(access="admin")
async def rules_page(request: web.Request) -> web.Response:
    return await _rules(request)


@routes.post("/admin/abuse/rules/{rule}", name="admin_abuse_rule_save")
@page(access="admin")
async def rule_save(request: web.Request) -> web.Response:
    rule = request.match_info["rule"]
    form = await request.post()
    domains = str(form.get("extra_domains", "")).replace(",", "\n").split("\n")
    data: dict[str, Any] = {
        "enabled": form.get("enabled") == "on",
        "action": str(form.get("action", "")),
        "threshold": str(form.get("threshold", "")),
        "window_minutes": str(form.get("window_minutes", "")),
        "extra_domains": [d.strip() for d in domains if d.strip()],
    }
    if str(form.get("refusal_threshold", "")).strip():
        data["refusal_threshold"] = str(form.get("refusal_threshold", "")).strip()
    try:
        body = validate(RuleIn, data)
        await service.save_rule(request, rule, body)
    except Invalid as exc:
        return await _rules(request, exc.status, error=exc.message, errors=exc.fields, failed=rule)
    return redirect("/admin/abuse/rules", "Rule saved.")
