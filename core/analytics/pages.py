"""The console's analytics page, ``/admin/analytics``: every dashboard for one date range,
each as an inline SVG chart with its data table, a CSV download per table
(``/admin/analytics/{table}.csv``) and a button to run the rollup now."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from multinotes.analytics import charts, rollup, service
from multinotes.analytics.schemas import RangeQuery
from multinotes.db import utcnow
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.keys import DB
from multinotes.providers import CREDITS_PER_USD

routes = web.RouteTableDef()


def usd(credits: float) -> str:
    value = credits / CREDITS_PER_USD
    places = 2 if abs(value) >= 10 or value == 0 else 4  # small sums keep their cents' parts
    return f"{'-' if value < 0 else ''}US${abs(value):,.{places}f}"


def size(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TB"


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _range(request: web.Request) -> tuple[RangeQuery, dict[str, str], str | None]:
    filters = {
        name: request.query.get(name, "").strip()
        for name in ("from", "to")
        if request.query.get(name, "").strip()
    }
    try:
        return validate(RangeQuery, filters), filters, None
    except Invalid as exc:
        error = "The range is invalid: " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        return validate(RangeQuery, {}), {}, error


async def _figures(request: web.Request, query: RangeQuery) -> dict[str, Any]:
    db = request.app[DB]
    return {
        "active": await service.active(db, query),
        "funnel": await service.funnel(db, query),
        "retention": await service.retention(db, query),
        "usage": await service.usage(db, query),
        "margin": await service.margin(db, query),
        "storage": await service.storage(db, query),
    }


@routes.get("/admin/analytics", name="admin_analytics")
@page(access="admin")
async def dashboards(request: web.Request) -> web.Response:
    query, filters, error = _range(request)
    figures = await _figures(request, query)
    active, usage, margin, storage = (
        figures["active"],
        figures["usage"],
        figures["margin"],
        figures["storage"],
    )
    charts_ = {
        "active": charts.columns(
            [(str(d["day"]), (d["dau"], d["wau"], d["mau"])) for d in active["days"]], series=3
        ),
        "funnel": charts.rows([(s["label"], (s["users"],)) for s in figures["funnel"]["steps"]]),
        "usage": charts.columns([(str(d["day"]), (d["generations"],)) for d in usage["days"]]),
        "models": charts.rows(
            [(f"{m['model_id']}", (m["generations"],)) for m in usage["by_model"][:12]]
        ),
        "margin": charts.rows(
            [(m["model_id"], (m["revenue"], m["cost"])) for m in margin["by_model"][:12]],
            series=2,
        ),
        "storage": charts.columns([(str(d["day"]), (d["bytes"],)) for d in storage["days"]]),
    }
    return render(
        request,
        "admin/analytics.html",
        {
            "nav": "admin",
            "section": "analytics",
            "query": query,
            "error": error,
            "qs": urlencode(filters),
            "figures": figures,
            "charts": charts_,
            "heat": charts.heat,
            "usd": usd,
            "size": size,
            "percent": percent,
            "default_from": (utcnow().date() - timedelta(days=29)).isoformat(),
            "rollup": await rollup.status(request.app[DB]),
        },
        status=422 if error else 200,
    )


@routes.post("/admin/analytics/rollup", name="admin_analytics_rollup")
@page(access="admin")
async def run_rollup(request: web.Request) -> web.Response:
    """Start a run in the background; the page then shows it running and polls its status."""
    try:
        await rollup.start(request.app)
    except Conflict as exc:
        return redirect("/admin/analytics", exc.message, "error")
    return redirect(
        "/admin/analytics", "The rollup is running: the new figures appear when it finishes."
    )


@routes.get("/admin/analytics/rollup", name="admin_analytics_rollup_status")
@page(access="admin")
async def rollup_status(request: web.Request) -> web.Response:
    """The rollup's status line (what the page polls while a run is under way)."""
    _, filters, _ = _range(request)
    return render(
        request,
        "admin/_rollup_status.html",
        {
            "rollup": await rollup.status(request.app[DB]),
            "watching": request.query.get("watching") == "1",
            "qs": urlencode(filters),
        },
    )


def _safe(value: Any) -> Any:
    """A cell a spreadsheet would not run as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _tables(figures: dict[str, Any]) -> dict[str, tuple[Sequence[str], Iterable[Sequence[Any]]]]:
    margin = figures["margin"]
    return {
        "active": (
            ("day", "dau", "wau", "mau", "signups"),
            (
                (d["day"], d["dau"], d["wau"], d["mau"], d["signups"])
                for d in figures["active"]["days"]
            ),
        ),
        "funnel": (
            ("step", "users", "of_signups", "of_previous"),
            (
                (s["step"], s["users"], s["of_signups"], s["of_previous"])
                for s in figures["funnel"]["steps"]
            ),
        ),
        "retention": (
            ("cohort", "users", "week", "active", "rate"),
            (
                (c["cohort"], c["users"], w["week"], w["users"], w["rate"])
                for c in figures["retention"]["cohorts"]
                for w in c["weeks"]
            ),
        ),
        "usage": (
            ("model_id", "provider_id", "generations", "input_tokens", "output_tokens"),
            (
                (
                    m["model_id"],
                    m["provider_id"],
                    m["generations"],
                    m["input_tokens"],
                    m["output_tokens"],
                )
                for m in figures["usage"]["by_model"]
            ),
        ),
        "margin-models": (
            (
                "model_id",
                "provider_id",
                "generations",
                "revenue_credits",
                "cost_credits",
                "margin_credits",
                "margin_percent",
            ),
            (
                (
                    m["model_id"],
                    m["provider_id"],
                    m["generations"],
                    m["revenue"],
                    m["cost"],
                    m["margin"],
                    m["margin_percent"],
                )
                for m in margin["by_model"]
            ),
        ),
        "margin-plans": (
            (
                "plan",
                "generations",
                "revenue_credits",
                "cost_credits",
                "margin_credits",
                "margin_percent",
            ),
            (
                (
                    p["plan_name"],
                    p["generations"],
                    p["revenue"],
                    p["cost"],
                    p["margin"],
                    p["margin_percent"],
                )
                for p in margin["by_plan"]
            ),
        ),
        "storage": (
            ("day", "files", "bytes"),
            ((d["day"], d["files"], d["bytes"]) for d in figures["storage"]["days"]),
        ),
    }


TABLES = ("active", "funnel", "retention", "usage", "margin-models", "margin-plans", "storage")


@routes.get("/admin/analytics/{table}.csv", name="admin_analytics_csv")
@page(access="admin")
async def download(request: web.Request) -> web.Response:
    table = request.match_info["table"]
    if table not in TABLES:
        raise NotFound("There is no such analytics table.")
    query, _filters, error = _range(request)
    if error:
        raise Invalid(error)
    header, rows = _tables(await _figures(request, query))[table]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_safe(v) for v in row] for row in rows)
    name = f"analytics-{table}-{query.first}-{query.last}.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
