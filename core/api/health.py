"""Probes and metrics for operators and load balancers."""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web
from sqlalchemy import text

from multinotes.errors import Unauthorized
from multinotes.keys import DB, METRICS, REDIS, SETTINGS, TASKS
from multinotes.web.endpoint import raw

routes = web.RouteTableDef()


@routes.get("/healthz", name="healthz")
@raw(access="public", summary="Liveness: the process answers.", content_type="application/json")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz", name="readyz")
@raw(
    access="public",
    summary="Readiness: database, Redis and task broker reachable.",
    content_type="application/json",
)
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, str] = {}

    async def check(name: str, probe: object) -> None:
        try:
            await asyncio.wait_for(probe, timeout=2.0)  # type: ignore[arg-type]
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"

    async def database() -> None:
        async with app[DB].read() as session:
            await session.execute(text("SELECT 1"))

    await check("database", database())
    redis = app[REDIS]
    if redis is not None:
        await check("redis", redis.ping())
    broker = app[TASKS].broker
    checks["broker"] = "ok" if broker is not None else "error: missing"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


@routes.get("/metrics", name="metrics")
@raw(access="public", summary="Prometheus metrics (needs the metrics token when one is set).")
async def metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(sent, token.get_secret_value()):
            raise Unauthorized("This needs the metrics token.")
    return web.Response(
        body=request.app[METRICS].render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
