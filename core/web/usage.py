"""The token usage page: wallet, a 30-day chart of credits spent per model (server-rendered
SVG: no chart library, nothing inline that the CSP would block), and the ledger with filters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from multinotes.http.endpoint import page
from multinotes.http.responses import render
from multinotes.identity.actor import require_user
from multinotes.keys import CATALOG, DB
from multinotes.wallet import service as wallet
from multinotes.wallet.models import LEDGER_KINDS

routes = web.RouteTableDef()

CHART_DAYS = 30
LEDGER_PAGE = 25
#: Distinct colours in app CSS (.series-0 ... .series-7); more models reuse them in turn.
SERIES_COLOURS = 8
#: The SVG is drawn in a 10-unit-per-day, 100-unit-high box and stretched to its CSS size.
DAY_WIDTH, BAR_WIDTH, CHART_HEIGHT = 10, 7, 100


@dataclass
class Segment:
    model: str
    series: int
    credits: int
    y: float
    height: float


@dataclass
class Bar:
    day: str
    label: str
    total: int
    x: float
    segments: list[Segment] = field(default_factory=list)


def nice_ceiling(value: int) -> int:
    """The axis top: a round number at least ``value`` (60 for 56, 250 for 201)."""
    if value <= 0:
        return 10
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * magnitude:
            return max(2, math.ceil(step * magnitude))
    return 10 * magnitude  # pragma: no cover - the loop always returns


def axis_label(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def short_day(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%b %-d")


def build_chart(usage: dict[str, Any], names: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Stacked bars (one per day, one segment per model) and the legend with totals."""
    models = list(usage["by_model"])
    series = {m: i % SERIES_COLOURS for i, m in enumerate(models)}
    top = nice_ceiling(max(usage["total"], default=0))
    bars = []
    for index, day in enumerate(usage["days"]):
        bar = Bar(
            day=day,
            label=short_day(day),
            total=usage["total"][index],
            x=index * DAY_WIDTH + (DAY_WIDTH - BAR_WIDTH) / 2,
        )
        y = float(CHART_HEIGHT)
        for model in models:
            credits = usage["by_model"][model][index]
            if credits <= 0:
                continue
            height = credits / top * CHART_HEIGHT
            y -= height
            bar.segments.append(
                Segment(_label(names, model), series[model], credits, round(y, 3), height)
            )
        bars.append(bar)
    total = sum(usage["total"])
    legend = [
        {
            "id": m,
            "name": names.get(m, {}).get("name", m),
            "provider": names.get(m, {}).get("provider", ""),
            "series": series[m],
            "credits": sum(usage["by_model"][m]),
            "share": (sum(usage["by_model"][m]) / total * 100) if total else 0.0,
        }
        for m in models
    ]
    legend.sort(key=lambda item: -item["credits"])
    ticks = [
        {"index": i, "label": bars[i].label}
        for i in range(0, len(bars), 5 if len(bars) > 10 else 1)
    ]
    return {
        "bars": bars,
        "legend": legend,
        "total": total,
        "top": axis_label(top),
        "half": axis_label(top / 2),
        "ticks": ticks,
        "width": len(bars) * DAY_WIDTH,
        "height": CHART_HEIGHT,
        "bar_width": BAR_WIDTH,
        "days": len(bars),
        "active_days": [b for b in bars if b.total],
    }


def _parse_day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@routes.get("/usage", name="usage")
@page(access="user")
async def usage_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    app = request.app
    query = request.query
    kind = query.get("kind", "")
    kind = kind if kind in LEDGER_KINDS else ""
    since_day, until_day = _parse_day(query.get("from")), _parse_day(query.get("to"))
    errors = {}
    if query.get("from") and since_day is None:
        errors["from"] = "Use a date like 2026-01-31."
    if query.get("to") and until_day is None:
        errors["to"] = "Use a date like 2026-01-31."
    if since_day and until_day and until_day < since_day:
        errors["to"] = "The end date is before the start date."
        until_day = None
    before = query.get("before", "")[:32] or None

    entries = await wallet.ledger(
        app[DB],
        actor.user_id,
        limit=LEDGER_PAGE + 1,
        before=before,
        kind=kind or None,
        since=_day_start(since_day) if since_day else None,
        until=_day_start(until_day + timedelta(days=1)) if until_day else None,
    )
    more = len(entries) > LEDGER_PAGE
    entries = entries[:LEDGER_PAGE]
    filters = {
        k: v
        for k, v in (
            ("kind", kind),
            ("from", since_day.isoformat() if since_day else ""),
            ("to", until_day.isoformat() if until_day else ""),
        )
        if v
    }
    older = (
        "/usage?" + urlencode({**filters, "before": entries[-1].id}) + "#ledger"
        if more and entries
        else None
    )
    newest = ("/usage?" + urlencode(filters) if filters else "/usage") + "#ledger"

    usage = await wallet.usage_by_day(app[DB], actor.user_id, CHART_DAYS)
    catalog = {e.id: e for e in await app[CATALOG].entries(include_disabled=True)}
    names = {m: _model_name(catalog.get(m), m) for m in [*usage["by_model"], *_ids(entries)]}
    return render(
        request,
        "usage.html",
        {
            "nav": "usage",
            "wallet": await wallet.summary(app[DB], actor.user_id),
            "chart": build_chart(usage, names),
            "entries": entries,
            "names": names,
            "kinds": LEDGER_KINDS,
            "filters": {"kind": kind, "from": query.get("from", ""), "to": query.get("to", "")},
            "filtered": bool(filters),
            "errors": errors,
            "older": older,
            "newest": newest if before else None,
        },
    )


def _ids(entries: list[Any]) -> list[str]:
    return [e.model_id for e in entries if e.model_id]


def _label(names: dict[str, dict[str, str]], model_id: str) -> str:
    name = names.get(model_id)
    if not name:
        return model_id
    return f"{name['name']} · {name['provider']}" if name["provider"] else name["name"]


def _model_name(entry: Any, model_id: str) -> dict[str, str]:
    if model_id == "other":
        return {"name": "Other", "provider": ""}
    if entry is None:
        return {"name": model_id, "provider": "no longer offered"}
    label = f" ({entry.model.label})" if entry.model.label else ""
    return {"name": f"{entry.model.name}{label}", "provider": entry.provider.name}
