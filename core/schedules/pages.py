"""Scheduled runs' pages: ``/schedules`` (your schedules), ``/schedules/new`` and
``/schedules/{id}/edit`` (the form: pick a template or a chain, then the template's values and
models or the chain's input, the folder, the cron expression with a preview of its next runs,
mail), ``/schedules/{id}`` (its settings, actions and history of runs). Plain forms with
POST-redirect-GET that work without JavaScript; htmx only refreshes the preview of the next runs
while the expression is typed (``/schedules/preview``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from multinotes.chains import service as chain_service
from multinotes.db import utcnow
from multinotes.errors import AppError, Invalid, NotFound
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.identity import profile
from multinotes.identity.actor import require_user
from multinotes.keys import CATALOG, DB, SETTINGS
from multinotes.notes.service import list_folders
from multinotes.prompts import service as prompts
from multinotes.schedules import cron, runner, service
from multinotes.schedules.schemas import ScheduleIn, run_out, schedule_out, upcoming

routes = web.RouteTableDef()

STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "succeeded": "Succeeded",
    "partial": "Partly answered",
    "failed": "Failed",
}
PAUSED_LABELS = {
    "user": "Paused",
    "out_of_credits": "Paused: out of credits",
    "target_missing": "Paused: template gone",
    "target_changed": "Paused: template changed",
}
#: Expressions the form offers as examples.
EXAMPLES = [
    ("0 9 * * *", "every day at 09:00"),
    ("0 9 * * 1-5", "weekdays at 09:00"),
    ("30 7 * * 1", "Mondays at 07:30"),
    ("0 */6 * * *", "every six hours"),
    ("0 8 1 * *", "the 1st of each month at 08:00"),
]


def _text(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def form_fields(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The schedule the form describes: variable values come from ``var-<name>`` fields (an
    empty one is left out, so the template's default applies)."""
    values = {
        key[4:]: str(value)
        for key, value in form.items()
        if key.startswith("var-") and isinstance(value, str) and value.strip()
    }
    return {
        "name": _text(form, "name"),
        "target_type": "chain" if _text(form, "target_type") == "chain" else "template",
        "target_id": _text(form, "target_id"),
        "values": values,
        "models": [str(m) for m in form.getall("models", []) if isinstance(m, str)],
        "cron": _text(form, "cron"),
        "timezone": _text(form, "timezone") or None,
        "folder_id": _text(form, "folder_id") or None,
        "email_results": "email_results" in form,
    }


async def _preview(request: web.Request, expression: str, zone: str) -> dict[str, Any]:
    """The next runs of ``expression`` for the form, or the problem with it."""
    try:
        checked = cron.check(
            expression, min_interval_minutes=request.app[SETTINGS].schedule_min_interval_minutes
        )
        service.check_timezone(zone)
    except Invalid as exc:
        return {"error": exc.message, "upcoming": []}
    return {"error": None, "upcoming": upcoming(checked, zone, utcnow(), 5), "timezone": zone}


async def _form_page(
    request: web.Request,
    values: dict[str, Any],
    *,
    schedule_id: str | None,
    error: AppError | None = None,
) -> web.StreamResponse:
    actor = require_user(request)
    db = request.app[DB]
    templates = (await prompts.list_templates(db, actor.user_id, sort="title", limit=100)).templates
    chains = [listed.chain for listed in await chain_service.list_chains(db, actor.user_id)]
    template = chain = None
    if values.get("target_id"):
        try:
            if values.get("target_type") == "chain":
                chain = await chain_service.get(db, actor.user_id, values["target_id"])
            else:
                template = await prompts.get(db, actor.user_id, values["target_id"])
        except NotFound:
            template = chain = None
    zone = values.get("timezone") or await service.user_timezone(db, actor.user_id)
    entries = [
        e
        for e in await request.app[CATALOG].entries()
        if e.available or e.id in values.get("models", [])
    ]
    return render(
        request,
        "schedules/form.html",
        {
            "nav": "schedules",
            "values": values,
            "schedule_id": schedule_id,
            "templates": templates,
            "template": template,
            "chains": chains,
            "chain": chain,
            "models": entries,
            "folders": await list_folders(db, actor.user_id),
            "timezones": sorted(profile.timezones()),
            "timezone": zone,
            "examples": EXAMPLES,
            "min_interval": request.app[SETTINGS].schedule_min_interval_minutes,
            "preview": await _preview(request, values["cron"], zone)
            if values.get("cron")
            else None,
            "error": error,
            "fields": error.fields if error else {},
        },
        status=422 if error else 200,
    )


@routes.get("/schedules", name="schedules")
@page(access="user")
async def index(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    found = await service.list_schedules(request.app[DB], actor.user_id)
    return render(
        request,
        "schedules/index.html",
        {
            "nav": "schedules",
            "schedules": [schedule_out(v) for v in found],
            "status_labels": STATUS_LABELS,
            "paused_labels": PAUSED_LABELS,
        },
    )


@routes.get("/schedules/preview", name="schedule_preview_partial")
@page(access="user")
async def preview_partial(request: web.Request) -> web.StreamResponse:
    """The next runs of the typed expression (a partial the form's htmx loads)."""
    actor = require_user(request)
    expression = request.query.get("cron", "")[:120]
    zone = request.query.get("timezone", "")[:64] or await service.user_timezone(
        request.app[DB], actor.user_id
    )
    return render(
        request, "schedules/_preview.html", {"preview": await _preview(request, expression, zone)}
    )


@routes.get("/schedules/new", name="schedule_new")
@page(access="user")
async def new_form(request: web.Request) -> web.StreamResponse:
    """Step one picks what to run (``?target=template:<id>`` or ``chain:<id>``); then the
    whole form."""
    require_user(request)
    kind, _, target = request.query.get("target", "").partition(":")
    values: dict[str, Any] = {
        "name": "",
        "target_type": "chain" if kind == "chain" else "template",
        "target_id": target[:32],
        "values": {},
        "models": [],
        "cron": "0 9 * * *",
    }
    return await _form_page(request, values, schedule_id=None)


@routes.post("/schedules/new", name="schedule_create")
@page(access="user")
async def create(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    values = form_fields(await request.post())
    try:
        data = validate(ScheduleIn, values).model_dump()
        schedule = await service.create(request.app, actor.user_id, data)
    except Invalid as exc:
        return await _form_page(request, values, schedule_id=None, error=exc)
    return redirect(f"/schedules/{schedule.id}", "Schedule saved.")


@routes.get("/schedules/{id}", name="schedule")
@page(access="user")
async def detail(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    db = request.app[DB]
    view = await service.view(db, actor.user_id, request.match_info["id"])
    runs, total = await service.list_runs(db, actor.user_id, view.schedule.id, limit=50)
    return render(
        request,
        "schedules/detail.html",
        {
            "nav": "schedules",
            "s": schedule_out(view),
            "runs": [run_out(r) for r in runs],
            "total": total,
            "status_labels": STATUS_LABELS,
            "paused_labels": PAUSED_LABELS,
        },
    )


@routes.get("/schedules/{id}/edit", name="schedule_edit")
@page(access="user")
async def edit_form(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    s = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    values = {
        "target_type": s.target_type,
        "name": s.name,
        "target_id": s.target_id,
        "values": dict(s.values or {}),
        "models": list(s.models or []),
        "cron": s.cron,
        "timezone": s.timezone,
        "folder_id": s.folder_id,
        "email_results": s.email_results,
    }
    return await _form_page(request, values, schedule_id=s.id)


@routes.post("/schedules/{id}/edit", name="schedule_update")
@page(access="user")
async def update(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    schedule_id = request.match_info["id"]
    # Whose it is before what the form says: someone else's schedule is a 404.
    await service.get(request.app[DB], actor.user_id, schedule_id)
    values = form_fields(await request.post())
    try:
        data = validate(ScheduleIn, values).model_dump()
        await service.update(request.app, actor.user_id, schedule_id, data)
    except Invalid as exc:
        return await _form_page(request, values, schedule_id=schedule_id, error=exc)
    return redirect(f"/schedules/{schedule_id}", "Schedule saved.")


@routes.post("/schedules/{id}/pause", name="schedule_pause")
@page(access="user")
async def pause(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    schedule_id = request.match_info["id"]
    await service.pause(request.app[DB], actor.user_id, schedule_id)
    return redirect(f"/schedules/{schedule_id}", "Schedule paused.")


@routes.post("/schedules/{id}/resume", name="schedule_resume")
@page(access="user")
async def resume(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    schedule_id = request.match_info["id"]
    try:
        await service.resume(request.app, actor.user_id, schedule_id)
    except Invalid as exc:
        return redirect(f"/schedules/{schedule_id}", exc.message, "error")
    return redirect(f"/schedules/{schedule_id}", "Schedule resumed.")


@routes.post("/schedules/{id}/run", name="schedule_run")
@page(access="user")
async def run_now(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    schedule_id = request.match_info["id"]
    try:
        run = await service.start_manual_run(request.app[DB], actor.user_id, schedule_id)
    except AppError as exc:
        if isinstance(exc, NotFound):
            raise
        return redirect(f"/schedules/{schedule_id}", exc.message, "error")
    await runner.enqueue(request.app, run.id)
    return redirect(f"/schedules/{schedule_id}", "Running now: the result shows in the history.")


@routes.post("/schedules/{id}/delete", name="schedule_delete")
@page(access="user")
async def delete(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    await service.remove(request.app[DB], actor.user_id, request.match_info["id"])
    return redirect("/schedules", "Schedule deleted.")
