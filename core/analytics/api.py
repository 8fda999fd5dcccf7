"""The operator's analytics API: ``/api/admin/analytics/...``, one route per dashboard (each
takes ``from`` and ``to``, UTC days, both included; default the last 30 days) and one to run
the rollup now. Admins only. Figures come from the rollup tables, rebuilt hourly."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes.analytics import rollup, service
from multinotes.analytics.schemas import (
    ActiveOut,
    FunnelOut,
    MarginOut,
    RangeQuery,
    RetentionOut,
    RollupStatusOut,
    StorageOut,
    UsageOut,
)
from multinotes.http.endpoint import endpoint
from multinotes.keys import DB

routes = web.RouteTableDef()
TAGS = ["analytics"]


@routes.get("/api/admin/analytics/active", name="api_admin_analytics_active")
@endpoint(access="admin", query=RangeQuery, response=ActiveOut, tags=TAGS)
async def active(request: web.Request, query: RangeQuery) -> dict[str, Any]:
    """Daily, weekly and monthly active users per day, and sign-ups. Active: started at
    least one generation that day (the response's `definition`)."""
    return await service.active(request.app[DB], query)


@routes.get("/api/admin/analytics/funnel", name="api_admin_analytics_funnel")
@endpoint(access="admin", query=RangeQuery, response=FunnelOut, tags=TAGS)
async def funnel(request: web.Request, query: RangeQuery) -> dict[str, Any]:
    """The activation funnel of the users who signed up in the range: verified their email,
    got a first answer, saved a first note, made a first payment (by now)."""
    return await service.funnel(request.app[DB], query)


@routes.get("/api/admin/analytics/retention", name="api_admin_analytics_retention")
@endpoint(access="admin", query=RangeQuery, response=RetentionOut, tags=TAGS)
async def retention(request: web.Request, query: RangeQuery) -> dict[str, Any]:
    """Cohorts by sign-up week (Monday, UTC) and the share of each active in every week
    after it, up to 12 weeks."""
    return await service.retention(request.app[DB], query)


@routes.get("/api/admin/analytics/usage", name="api_admin_analytics_usage")
@endpoint(access="admin", query=RangeQuery, response=UsageOut, tags=TAGS)
async def usage(request: web.Request, query: RangeQuery) -> dict[str, Any]:
    """Generations and tokens per model and per provider, and per day."""
    return await service.usage(request.app[DB], query)


@routes.get("/api/admin/analytics/margin", name="api_admin_analytics_margin")
@endpoint(access="admin", query=RangeQuery, response=MarginOut, tags=TAGS)
async def margin(request: web.Request, query: RangeQuery) -> dict[str, Any]:
    """AI cost against revenue, in credits: what users were charged, what the providers'
    list prices make of the same usage, the gross margin, per model and per plan (the plan
    of the user's latest payment at the time)."""
    return await service.margin(request.app[DB], query)


@routes.get("/api/admin/analytics/storage", name="api_admin_analytics_storage")
@endpoint(access="admin", query=RangeQuery, response=StorageOut, tags=TAGS)
async def storage(request: web.Request, query: RangeQuery) -> dict[str, Any]:
    """Files stored and their bytes at the end of each day."""
    return await service.storage(request.app[DB], query)


def _status(found: rollup.Status) -> dict[str, Any]:
    return {
        "running": found.running,
        "started_at": found.started_at,
        "rolled_up_at": found.rolled_up_at,
        "first_day": found.first_day,
        "last_day": found.last_day,
        "days": found.days,
        "failed_at": found.failed_at,
        "failure": found.failure,
    }


@routes.post("/api/admin/analytics/rollup", name="api_admin_analytics_rollup")
@endpoint(access="admin", response=RollupStatusOut, status=202, tags=TAGS, errors=[409])
async def run_rollup(request: web.Request) -> dict[str, Any]:
    """Run the rollup now (it also runs hourly), in the background: 202 with its status
    (`running`); poll `GET /api/admin/analytics/rollup` until `running` is false, then
    `rolled_up_at` says when the new figures were made, or `failed_at` and `failure` that
    (and why) the run failed (a new run may be started at once). It rebuilds the days since the last
    run and the per-user tables; running it again counts nothing twice. 409
    `rollup_running` while another run is under way."""
    claimed = await rollup.start(request.app)
    found = await rollup.status(request.app[DB])
    # Running when accepted, whatever the task has done since (it may finish in a blink).
    found.running, found.started_at = True, claimed.started_at
    return _status(found)


@routes.get("/api/admin/analytics/rollup", name="api_admin_analytics_rollup_status")
@endpoint(access="admin", response=RollupStatusOut, tags=TAGS)
async def rollup_status(request: web.Request) -> dict[str, Any]:
    """Where the rollup stands: whether a run is under way, when the last one finished and
    which days it rebuilt, and whether the last run to end failed (`failed_at`, `failure`:
    the step and the kind of error; no traceback)."""
    return _status(await rollup.status(request.app[DB]))
