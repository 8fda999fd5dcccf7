"""The operator's changes to flags and experiments: checked, stored, audited, and announced to
every process (``cache.changed``). The API and the console both call these."""

from __future__ import annotations

from aiohttp import web

from multinotes import audit
from multinotes.domain_events import EVENTS
from multinotes.errors import Invalid
from multinotes.flags import cache, service
from multinotes.flags.models import Experiment, FeatureFlag
from multinotes.flags.schemas import ExperimentIn, ExperimentPatch, FlagIn, FlagPatch
from multinotes.identity.actor import require_admin
from multinotes.keys import DB
from multinotes.segments import check_exists


def _check_event(request: web.Request, name: str | None) -> None:
    if name is not None and name not in request.app[EVENTS].catalogue:
        raise Invalid(
            fields={"conversion_event": f"no event {name!r} (see GET /api/events/catalog)"}
        )


async def _audit(
    request: web.Request, action: str, target_type: str, target_id: str, name: str
) -> None:
    await audit.record(
        request.app,
        request,
        action,
        target_type=target_type,
        target_id=target_id,
        details={"name": name},
    )


async def create_flag(request: web.Request, body: FlagIn) -> FeatureFlag:
    admin = require_admin(request)
    db = request.app[DB]
    await check_exists(db, body.segment)
    row = await service.create_flag(db, admin.user_id, body)
    await _audit(request, "flag.created", "flag", row.id, row.name)
    await cache.changed(request.app)
    return row


async def update_flag(request: web.Request, flag_id: str, patch: FlagPatch) -> FeatureFlag:
    db = request.app[DB]
    if patch.segment is not None:
        await check_exists(db, patch.segment)
    row = await service.update_flag(db, flag_id, patch)
    await audit.record(
        request.app,
        request,
        "flag.updated",
        target_type="flag",
        target_id=row.id,
        details={"name": row.name, "fields": sorted(patch.model_fields_set)},
    )
    await cache.changed(request.app)
    return row


async def delete_flag(request: web.Request, flag_id: str) -> None:
    row = await service.delete_flag(request.app[DB], flag_id)
    await _audit(request, "flag.deleted", "flag", row.id, row.name)
    await cache.changed(request.app)


async def create_experiment(request: web.Request, body: ExperimentIn) -> Experiment:
    admin = require_admin(request)
    _check_event(request, body.conversion_event)
    row = await service.create_experiment(request.app[DB], admin.user_id, body)
    await _audit(request, "experiment.created", "experiment", row.id, row.name)
    return row


async def update_experiment(
    request: web.Request, experiment_id: str, patch: ExperimentPatch
) -> Experiment:
    _check_event(request, patch.conversion_event)
    row = await service.update_experiment(request.app[DB], experiment_id, patch)
    await audit.record(
        request.app,
        request,
        "experiment.updated",
        target_type="experiment",
        target_id=row.id,
        details={"name": row.name, "fields": sorted(patch.model_fields_set)},
    )
    await cache.changed(request.app)
    return row


async def delete_experiment(request: web.Request, experiment_id: str) -> None:
    row = await service.delete_experiment(request.app[DB], experiment_id)
    await _audit(request, "experiment.deleted", "experiment", row.id, row.name)
    await cache.changed(request.app)


async def set_running(request: web.Request, experiment_id: str, running: bool) -> Experiment:
    row = await service.set_running(request.app[DB], experiment_id, running)
    action = "experiment.started" if running else "experiment.stopped"
    await _audit(request, action, "experiment", row.id, row.name)
    await cache.changed(request.app)
    return row
