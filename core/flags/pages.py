"""The console's pages for flags (``/admin/flags``) and experiments (``/admin/experiments``):
lists, forms that validate with the API's models (422 with the field's message beside it), and
an experiment's results per variant. Every change goes through ``actions``, as the API's do."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from multinotes.domain_events import EVENTS
from multinotes.errors import AppError
from multinotes.flags import actions, service
from multinotes.flags.models import Experiment, FeatureFlag
from multinotes.flags.schemas import ExperimentIn, ExperimentPatch, FlagIn, FlagPatch
from multinotes.http.endpoint import page, validate
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render
from multinotes.keys import DB
from multinotes.segments import choices

routes = web.RouteTableDef()

Form = MultiDictProxy[Any]


def _lines(text: str) -> list[str]:
    """One entry per line or comma (what a pasted list of emails looks like)."""
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def _flag_data(form: Form, *, with_name: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "description": form_field(form, "description"),
        "enabled": form_field(form, "enabled") == "on",
        "rollout": form_field(form, "rollout") or "100",
        "allow_list": _lines(form_field(form, "allow_list")),
        "segment": {
            "plans": [v for v in form.getall("plans", []) if isinstance(v, str)],
            "organisations": [v for v in form.getall("organisations", []) if isinstance(v, str)],
            "signed_up_after": form_field(form, "signed_up_after") or None,
            "signed_up_before": form_field(form, "signed_up_before") or None,
        },
    }
    if with_name:
        data["name"] = form_field(form, "name")
    return data


def _form_of_flag(row: FeatureFlag) -> dict[str, Any]:
    segment = row.segment or {}
    return {
        "name": row.name,
        "description": row.description,
        "enabled": row.enabled,
        "rollout": row.rollout,
        "allow_list": "\n".join(row.allow_list or ()),
        "segment": {
            **segment,
            "signed_up_after": (segment.get("signed_up_after") or "")[:10],
            "signed_up_before": (segment.get("signed_up_before") or "")[:10],
        },
    }


def _shown_form(data: dict[str, Any]) -> dict[str, Any]:
    """A refused form, as typed, to fill the fields again."""
    return {**data, "allow_list": "\n".join(data.get("allow_list", []))}


async def _flags_page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    db = request.app[DB]
    plans, organisations = await choices(db)
    context: dict[str, Any] = {
        "nav": "admin",
        "section": "flags",
        "flags": await service.list_flags(db),
        "plans": plans,
        "organisations": organisations,
        "form": {"rollout": 100, "segment": {}},
        "errors": {},
        **extra,
    }
    return render(request, "admin/flags.html", context, status=status)


@routes.get("/admin/flags", name="admin_flags")
@page(access="admin")
async def flags_page(request: web.Request) -> web.Response:
    return await _flags_page(request)


@routes.post("/admin/flags", name="admin_flags_create")
@page(access="admin")
async def create_flag(request: web.Request) -> web.Response:
    data = _flag_data(await request.post(), with_name=True)
    try:
        row = await actions.create_flag(request, validate(FlagIn, data))
    except AppError as exc:
        if not exc.fields:
            raise
        return await _flags_page(
            request, exc.status, form=_shown_form(data), errors=exc.fields, error=exc.message
        )
    return redirect("/admin/flags", f"Flag “{row.name}” created.")


async def _flag_page(
    request: web.Request, row: FeatureFlag, status: int = 200, **extra: Any
) -> web.Response:
    plans, organisations = await choices(request.app[DB])
    context: dict[str, Any] = {
        "nav": "admin",
        "section": "flags",
        "flag": row,
        "plans": plans,
        "organisations": organisations,
        "form": _form_of_flag(row),
        "errors": {},
        **extra,
    }
    return render(request, "admin/flag.html", context, status=status)


@routes.get("/admin/flags/{id}", name="admin_flag")
@page(access="admin")
async def flag_page(request: web.Request) -> web.Response:
    row = await service.get_flag(request.app[DB], request.match_info["id"])
    return await _flag_page(request, row)


@routes.post("/admin/flags/{id}", name="admin_flag_update")
@page(access="admin")
async def update_flag(request: web.Request) -> web.Response:
    row = await service.get_flag(request.app[DB], request.match_info["id"])
    data = _flag_data(await request.post(), with_name=False)
    try:
        row = await actions.update_flag(request, row.id, validate(FlagPatch, data))
    except AppError as exc:
        if not exc.fields:
            raise
        shown = {**_shown_form(data), "name": row.name}
        return await _flag_page(
            request, row, exc.status, form=shown, errors=exc.fields, error=exc.message
        )
    return redirect(f"/admin/flags/{row.id}", f"Flag “{row.name}” saved.")


@routes.post("/admin/flags/{id}/delete", name="admin_flag_delete")
@page(access="admin")
async def delete_flag(request: web.Request) -> web.Response:
    await actions.delete_flag(request, request.match_info["id"])
    return redirect("/admin/flags", "The flag was deleted.")


# -- experiments --------------------------------------------------------------------------------


def _variants(text: str) -> list[dict[str, Any]] | str:
    """``name weight`` per line (weight optional, 1); the raw text when a weight is no number,
    so the model's validation names the field."""
    variants: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            return text
        variants.append({"name": parts[0], "weight": int(parts[1]) if len(parts) == 2 else 1})
    return variants


def _variants_text(variants: list[dict[str, Any]]) -> str:
    return "\n".join(f"{v['name']} {v['weight']}" for v in variants)


def _experiment_data(form: Form, *, draft: bool, with_name: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"description": form_field(form, "description")}
    if draft:
        data["variants"] = _variants(form_field(form, "variants"))
        data["conversion_event"] = form_field(form, "conversion_event")
    if with_name:
        data["name"] = form_field(form, "name")
    return data


def _shown_experiment(data: dict[str, Any]) -> dict[str, Any]:
    variants = data.get("variants", [])
    return {**data, "variants": variants if isinstance(variants, str) else _variants_text(variants)}


def _events(request: web.Request) -> list[str]:
    return sorted(entry.event.name for entry in request.app[EVENTS].catalogue.entries())


async def _experiments_page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    context: dict[str, Any] = {
        "nav": "admin",
        "section": "experiments",
        "experiments": await service.list_experiments(request.app[DB]),
        "events": _events(request),
        "form": {"variants": "control 1\nvariant 1"},
        "errors": {},
        **extra,
    }
    return render(request, "admin/experiments.html", context, status=status)


@routes.get("/admin/experiments", name="admin_experiments")
@page(access="admin")
async def experiments_page(request: web.Request) -> web.Response:
    return await _experiments_page(request)


@routes.post("/admin/experiments", name="admin_experiments_create")
@page(access="admin")
async def create_experiment(request: web.Request) -> web.Response:
    data = _experiment_data(await request.post(), draft=True, with_name=True)
    try:
        row = await actions.create_experiment(request, validate(ExperimentIn, data))
    except AppError as exc:
        if not exc.fields:
            raise
        return await _experiments_page(
            request, exc.status, form=_shown_experiment(data), errors=exc.fields, error=exc.message
        )
    return redirect(f"/admin/experiments/{row.id}", f"Experiment “{row.name}” created.")


async def _experiment_page(
    request: web.Request, row: Experiment, status: int = 200, **extra: Any
) -> web.Response:
    context: dict[str, Any] = {
        "nav": "admin",
        "section": "experiments",
        "experiment": row,
        "results": await service.results(request.app[DB], row),
        "events": _events(request),
        "form": {
            "description": row.description,
            "variants": _variants_text(row.variants),
            "conversion_event": row.conversion_event,
        },
        "errors": {},
        **extra,
    }
    return render(request, "admin/experiment.html", context, status=status)


@routes.get("/admin/experiments/{id}", name="admin_experiment")
@page(access="admin")
async def experiment_page(request: web.Request) -> web.Response:
    row = await service.get_experiment(request.app[DB], request.match_info["id"])
    return await _experiment_page(request, row)


@routes.post("/admin/experiments/{id}", name="admin_experiment_update")
@page(access="admin")
async def update_experiment(request: web.Request) -> web.Response:
    row = await service.get_experiment(request.app[DB], request.match_info["id"])
    draft = row.started_at is None
    data = _experiment_data(await request.post(), draft=draft, with_name=False)
    try:
        row = await actions.update_experiment(request, row.id, validate(ExperimentPatch, data))
    except AppError as exc:
        if not exc.fields:
            raise
        shown = {**_shown_experiment(data)}
        return await _experiment_page(
            request, row, exc.status, form=shown, errors=exc.fields, error=exc.message
        )
    return redirect(f"/admin/experiments/{row.id}", f"Experiment “{row.name}” saved.")


@routes.post("/admin/experiments/{id}/start", name="admin_experiment_start")
@page(access="admin")
async def start_experiment(request: web.Request) -> web.Response:
    row = await actions.set_running(request, request.match_info["id"], True)
    return redirect(f"/admin/experiments/{row.id}", f"Experiment “{row.name}” is running.")


@routes.post("/admin/experiments/{id}/stop", name="admin_experiment_stop")
@page(access="admin")
async def stop_experiment(request: web.Request) -> web.Response:
    row = await actions.set_running(request, request.match_info["id"], False)
    return redirect(f"/admin/experiments/{row.id}", f"Experiment “{row.name}” stopped.")


@routes.post("/admin/experiments/{id}/delete", name="admin_experiment_delete")
@page(access="admin")
async def delete_experiment(request: web.Request) -> web.Response:
    await actions.delete_experiment(request, request.match_info["id"])
    return redirect("/admin/experiments", "The experiment was deleted.")
