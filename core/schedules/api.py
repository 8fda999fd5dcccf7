"""Scheduled runs' JSON API, ``/api/schedules``: list, create, read, change and delete your
schedules; pause, resume and run one now; its history of runs; and a preview of the next runs
of a cron expression (changes nothing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes.db import utcnow
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB, SETTINGS
from multinotes.schedules import cron, runner, service
from multinotes.schedules.schemas import (
    Preview,
    PreviewQuery,
    RunOut,
    RunPage,
    RunsQuery,
    ScheduleIn,
    ScheduleList,
    ScheduleOut,
    SchedulePatch,
    run_out,
    schedule_out,
    upcoming,
)

routes = web.RouteTableDef()
TAGS = ["schedules"]


async def _out(request: web.Request, user_id: str, schedule_id: str) -> dict[str, Any]:
    return schedule_out(await service.view(request.app[DB], user_id, schedule_id))


@routes.get("/api/schedules", name="api_schedules")
@endpoint(access="user", response=ScheduleList, tags=TAGS)
async def list_schedules(request: web.Request) -> dict[str, Any]:
    """Your schedules, newest first, each with its next runs and its latest run."""
    actor = require_user(request)
    found = await service.list_schedules(request.app[DB], actor.user_id)
    return {"schedules": [schedule_out(v) for v in found]}


@routes.get("/api/schedules/preview", name="api_schedule_preview")
@endpoint(access="user", query=PreviewQuery, response=Preview, tags=TAGS)
async def preview(request: web.Request, query: PreviewQuery) -> dict[str, Any]:
    """The next runs of a cron expression in a time zone (default: yours), as a schedule would
    make them; 422 on field `cron` for a malformed or too frequent expression."""
    actor = require_user(request)
    expression = cron.check(
        query.cron, min_interval_minutes=request.app[SETTINGS].schedule_min_interval_minutes
    )
    zone = service.check_timezone(
        query.timezone or await service.user_timezone(request.app[DB], actor.user_id)
    )
    return {
        "cron": expression,
        "timezone": zone,
        "upcoming": upcoming(expression, zone, utcnow(), query.count),
    }


@routes.post("/api/schedules", name="api_schedules_create")
@endpoint(access="user", body=ScheduleIn, response=ScheduleOut, status=201, tags=TAGS, errors=[409])
async def create_schedule(request: web.Request, body: ScheduleIn) -> dict[str, Any]:
    """Schedule a template. Field errors: `cron` (malformed, never runs, too frequent),
    `timezone`, `target_id` (no template you can use), `values.<name>` (a value the template
    needs or refuses), `models.<n>` (unknown model), `folder_id` (not your folder).
    409 `too_many_schedules` past the per-account limit."""
    actor = require_user(request)
    schedule = await service.create(request.app, actor.user_id, body.model_dump())
    return await _out(request, actor.user_id, schedule.id)


@routes.get("/api/schedules/{id}", name="api_schedule")
@endpoint(access="user", response=ScheduleOut, tags=TAGS, errors=[404])
async def get_schedule(request: web.Request) -> dict[str, Any]:
    """One of your schedules."""
    actor = require_user(request)
    return await _out(request, actor.user_id, request.match_info["id"])


@routes.patch("/api/schedules/{id}", name="api_schedule_update")
@endpoint(access="user", body=SchedulePatch, response=ScheduleOut, tags=TAGS, errors=[404])
async def update_schedule(request: web.Request, body: SchedulePatch) -> dict[str, Any]:
    """Change a schedule (the same field errors as creating one); a new expression or zone
    moves an active schedule's next run."""
    actor = require_user(request)
    schedule_id = request.match_info["id"]
    changes = body.model_dump(exclude_unset=True)
    await service.update(request.app, actor.user_id, schedule_id, changes)
    return await _out(request, actor.user_id, schedule_id)


@routes.delete("/api/schedules/{id}", name="api_schedule_delete")
@endpoint(access="user", status=204, tags=TAGS, errors=[404])
async def delete_schedule(request: web.Request) -> None:
    """Delete a schedule and its history (the notes its runs saved stay)."""
    actor = require_user(request)
    await service.remove(request.app[DB], actor.user_id, request.match_info["id"])


@routes.post("/api/schedules/{id}/pause", name="api_schedule_pause")
@endpoint(access="user", response=ScheduleOut, tags=TAGS, errors=[404])
async def pause_schedule(request: web.Request) -> dict[str, Any]:
    """Stop running it on schedule until resumed ("Run now" still works)."""
    actor = require_user(request)
    schedule_id = request.match_info["id"]
    await service.pause(request.app[DB], actor.user_id, schedule_id)
    return await _out(request, actor.user_id, schedule_id)


@routes.post("/api/schedules/{id}/resume", name="api_schedule_resume")
@endpoint(access="user", response=ScheduleOut, tags=TAGS, errors=[404])
async def resume_schedule(request: web.Request) -> dict[str, Any]:
    """Run it on schedule again, from its next slot (missed runs are not made up). 422 on
    `target_id` when its template is gone or its values no longer fit."""
    actor = require_user(request)
    schedule_id = request.match_info["id"]
    await service.resume(request.app, actor.user_id, schedule_id)
    return await _out(request, actor.user_id, schedule_id)


@routes.post("/api/schedules/{id}/run", name="api_schedule_run")
@endpoint(access="user", response=RunOut, status=202, tags=TAGS, errors=[404, 409])
async def run_now(request: web.Request) -> dict[str, Any]:
    """Run it now, in the background (paused or not); follow the run in its history.
    409 `run_in_progress` while a run of it is queued or running."""
    actor = require_user(request)
    run = await service.start_manual_run(request.app[DB], actor.user_id, request.match_info["id"])
    await runner.enqueue(request.app, run.id)
    return run_out(run)


@routes.get("/api/schedules/{id}/runs", name="api_schedule_runs")
@endpoint(access="user", query=RunsQuery, response=RunPage, tags=TAGS, errors=[404])
async def list_runs(request: web.Request, query: RunsQuery) -> dict[str, Any]:
    """The schedule's runs, newest first: status, cost, and the notes each saved."""
    actor = require_user(request)
    runs, total = await service.list_runs(
        request.app[DB],
        actor.user_id,
        request.match_info["id"],
        limit=query.limit,
        offset=query.offset,
    )
    return {"runs": [run_out(r) for r in runs], "total": total}
