"""Probes and metrics for operators and load balancers."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy import text

from multinotes.errors import Forbidden, Unauthorized
from multinotes.http.endpoint import raw
from multinotes.keys import DB, METRICS, REDIS, SETTINGS, TASKS
from multinotes.tasks import TaskStatus, task_status

routes = web.RouteTableDef()


@routes.get("/healthz", name="healthz")
@raw(access="public", summary="Liveness: the process answers.", content_type="application/json")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz", name="readyz")
@raw(
    access="public",
    summary="Readiness: database and Redis reachable, a worker and the scheduler alive, no task "
    "waiting too long (`?scope=web`: database and Redis only).",
    content_type="application/json",
)
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
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
    status = None
    # ?scope=web: only what this web process needs to serve (a load balancer's or the upgrade
    # gate's question, asked before the workers of a new release are started).
    if request.query.get("scope") != "web":
        status = await _task_status(app)
        checks.update(_task_checks(status, settings.ready_max_task_wait_seconds))
    ok = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ok" if ok else "unavailable", "checks": checks}
    if status is not None:
        body["tasks"] = dataclasses.asdict(status)
    return web.json_response(body, status=200 if ok else 503)


def _task_checks(status: TaskStatus | None, max_wait: float) -> dict[str, str]:
    if status is None:
        return {"tasks": "error: the task status cannot be read (Redis)"}
    waited = status.oldest_waiting_seconds
    return {
        "workers": "ok" if status.workers else "error: no worker is alive",
        "scheduler": "ok" if status.scheduler else "error: no scheduler is alive",
        "queue": "ok" if waited <= max_wait else f"error: a task has waited {waited:.0f} s",
    }


async def _task_status(app: web.Application) -> TaskStatus | None:
    """Workers, scheduler and queue: from heartbeats and the stream in Redis (production), or
    the web process itself (embedded: its in-process worker and scheduler). None when Redis
    cannot be read."""
    redis = app[REDIS]
    if redis is None:
        running = getattr(app[TASKS].broker, "_running_tasks", ())
        return TaskStatus(1, app[SETTINGS].embedded_scheduler, 0, 0.0, len(running))
    try:
        return await asyncio.wait_for(task_status(redis, app[SETTINGS]), timeout=2.0)
    except (RedisError, TimeoutError):
        return None


@routes.get("/metrics", name="metrics")
@raw(
    access="public",
    summary="Prometheus metrics; needs the metrics token (always in production mode).",
)
async def metrics(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    token = settings.metrics_token
    if token is None and settings.is_production:
        raise Forbidden("Set MULTINOTES_METRICS_TOKEN to scrape metrics in production mode.")
    if token is not None:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(sent, token.get_secret_value()):
            raise Unauthorized("This needs the metrics token.")
    status = await _task_status(request.app)
    tasks: dict[str, float] = {"multinotes_task_status_up": 0.0 if status is None else 1.0}
    if status is not None:
        tasks.update(
            multinotes_task_workers=status.workers,
            multinotes_task_scheduler_up=1.0 if status.scheduler else 0.0,
            multinotes_tasks_waiting=status.waiting,
            multinotes_task_oldest_waiting_seconds=status.oldest_waiting_seconds,
            multinotes_tasks_in_progress=status.in_progress,
        )
    return web.Response(
        body=request.app[METRICS].render(tasks),
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
