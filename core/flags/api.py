"""Flags and experiments' JSON API: the console's ``/api/admin/flags`` and
``/api/admin/experiments`` (CRUD, start/stop, results), and ``GET /api/me/flags`` (the flags on
for you, for scripts and front-end code)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes import flags
from multinotes.flags import actions, service
from multinotes.flags.models import Experiment, FeatureFlag
from multinotes.flags.schemas import (
    ExperimentIn,
    ExperimentList,
    ExperimentOut,
    ExperimentPatch,
    ExperimentResults,
    FlagIn,
    FlagList,
    FlagOut,
    FlagPatch,
    MyFlags,
    MyVariant,
)
from multinotes.http.endpoint import endpoint
from multinotes.keys import DB

routes = web.RouteTableDef()
TAGS = ["flags"]


def flag_out(row: FeatureFlag) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "enabled": row.enabled,
        "rollout": row.rollout,
        "allow_list": list(row.allow_list or ()),
        "segment": row.segment or {},
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def experiment_out(row: Experiment) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "variants": row.variants,
        "conversion_event": row.conversion_event,
        "status": row.status,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "stopped_at": row.stopped_at.isoformat() if row.stopped_at else None,
        "created_at": row.created_at.isoformat(),
    }


@routes.get("/api/me/flags", name="api_my_flags")
@endpoint(access="user", response=MyFlags, tags=TAGS)
async def my_flags(request: web.Request) -> dict[str, Any]:
    """The names of the feature flags that are on for you."""
    return {"flags": sorted(await flags.enabled_names(request))}


@routes.post("/api/me/experiments/{name}", name="api_my_experiment_variant")
@endpoint(access="user", response=MyVariant, tags=TAGS)
async def my_variant(request: web.Request) -> dict[str, Any]:
    """Your variant of a running experiment, for front-end code; the first call records that
    you saw it (a POST for that reason). `variant` is null when no such experiment is running:
    show the default."""
    name = request.match_info["name"]
    return {"experiment": name, "variant": await flags.variant(request, name)}


@routes.get("/api/admin/flags", name="api_admin_flags")
@endpoint(access="admin", response=FlagList, tags=TAGS)
async def list_flags(request: web.Request) -> dict[str, Any]:
    """Every feature flag, by name."""
    return {"flags": [flag_out(r) for r in await service.list_flags(request.app[DB])]}


@routes.post("/api/admin/flags", name="api_admin_flags_create")
@endpoint(access="admin", body=FlagIn, response=FlagOut, status=201, tags=TAGS, errors=[409, 422])
async def create_flag(request: web.Request, body: FlagIn) -> dict[str, Any]:
    """Create a flag (off unless `enabled`); every process sees it within a second."""
    return flag_out(await actions.create_flag(request, body))


@routes.get("/api/admin/flags/{id}", name="api_admin_flag")
@endpoint(access="admin", response=FlagOut, tags=TAGS, errors=[404])
async def get_flag(request: web.Request) -> dict[str, Any]:
    """One flag."""
    return flag_out(await service.get_flag(request.app[DB], request.match_info["id"]))


@routes.patch("/api/admin/flags/{id}", name="api_admin_flag_update")
@endpoint(access="admin", body=FlagPatch, response=FlagOut, tags=TAGS, errors=[404, 422])
async def update_flag(request: web.Request, body: FlagPatch) -> dict[str, Any]:
    """Change a flag: switch it, change its rollout, allow-list or segment."""
    return flag_out(await actions.update_flag(request, request.match_info["id"], body))


@routes.delete("/api/admin/flags/{id}", name="api_admin_flag_delete")
@endpoint(access="admin", status=204, tags=TAGS, errors=[404])
async def delete_flag(request: web.Request) -> None:
    """Delete a flag: code asking for it gets off."""
    await actions.delete_flag(request, request.match_info["id"])


@routes.get("/api/admin/experiments", name="api_admin_experiments")
@endpoint(access="admin", response=ExperimentList, tags=TAGS)
async def list_experiments(request: web.Request) -> dict[str, Any]:
    """Every experiment, the newest first."""
    rows = await service.list_experiments(request.app[DB])
    return {"experiments": [experiment_out(r) for r in rows]}


@routes.post("/api/admin/experiments", name="api_admin_experiments_create")
@endpoint(
    access="admin",
    body=ExperimentIn,
    response=ExperimentOut,
    status=201,
    tags=TAGS,
    errors=[409, 422],
)
async def create_experiment(request: web.Request, body: ExperimentIn) -> dict[str, Any]:
    """Create an experiment (a draft: start it to assign variants)."""
    return experiment_out(await actions.create_experiment(request, body))


@routes.get("/api/admin/experiments/{id}", name="api_admin_experiment")
@endpoint(access="admin", response=ExperimentOut, tags=TAGS, errors=[404])
async def get_experiment(request: web.Request) -> dict[str, Any]:
    """One experiment."""
    return experiment_out(await service.get_experiment(request.app[DB], request.match_info["id"]))


@routes.patch("/api/admin/experiments/{id}", name="api_admin_experiment_update")
@endpoint(
    access="admin",
    body=ExperimentPatch,
    response=ExperimentOut,
    tags=TAGS,
    errors=[404, 409, 422],
)
async def update_experiment(request: web.Request, body: ExperimentPatch) -> dict[str, Any]:
    """Change the description; variants and the conversion event only before it first starts
    (409 `experiment_started` after)."""
    return experiment_out(await actions.update_experiment(request, request.match_info["id"], body))


@routes.delete("/api/admin/experiments/{id}", name="api_admin_experiment_delete")
@endpoint(access="admin", status=204, tags=TAGS, errors=[404])
async def delete_experiment(request: web.Request) -> None:
    """Delete an experiment with its exposures and conversions."""
    await actions.delete_experiment(request, request.match_info["id"])


@routes.post("/api/admin/experiments/{id}/start", name="api_admin_experiment_start")
@endpoint(access="admin", response=ExperimentOut, tags=TAGS, errors=[404, 409])
async def start_experiment(request: web.Request) -> dict[str, Any]:
    """Start (or resume) assigning variants; 409 when it runs already."""
    return experiment_out(await actions.set_running(request, request.match_info["id"], True))


@routes.post("/api/admin/experiments/{id}/stop", name="api_admin_experiment_stop")
@endpoint(access="admin", response=ExperimentOut, tags=TAGS, errors=[404, 409])
async def stop_experiment(request: web.Request) -> dict[str, Any]:
    """Stop: code gets no variant (its default), no exposure or conversion is counted."""
    return experiment_out(await actions.set_running(request, request.match_info["id"], False))


@routes.get("/api/admin/experiments/{id}/results", name="api_admin_experiment_results")
@endpoint(access="admin", response=ExperimentResults, tags=TAGS, errors=[404])
async def experiment_results(request: web.Request) -> dict[str, Any]:
    """Per variant: users exposed, converted, conversion rate with its 95% Wilson interval,
    and the difference from the control with its 95% interval."""
    row = await service.get_experiment(request.app[DB], request.match_info["id"])
    return {
        "experiment": experiment_out(row),
        "variants": await service.results(request.app[DB], row),
    }
