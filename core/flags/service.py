"""Flags and experiments in the database: the console's CRUD, the rules every process caches,
exposures and conversions, and the results per variant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, utcnow
from multinotes.errors import Conflict, NotFound
from multinotes.flags import stats
from multinotes.flags.models import Experiment, ExperimentExposure, FeatureFlag
from multinotes.flags.rules import ExperimentRule, FlagRule
from multinotes.flags.schemas import ExperimentIn, ExperimentPatch, FlagIn, FlagPatch
from multinotes.segments import Segment

# -- flags ------------------------------------------------------------------------------------


async def _flag_in(session: AsyncSession, flag_id: str) -> FeatureFlag:
    """The flag ``flag_id``, or the 404 every flag route gives."""
    row = await session.get(FeatureFlag, flag_id)
    if row is None:
        raise NotFound("No such flag.")
    return row


async def _experiment_in(
    session: AsyncSession, experiment_id: str, *, lock: bool = False
) -> Experiment:
    """The experiment ``experiment_id`` (its row locked with ``lock``), or the 404 every
    experiment route gives."""
    row = await session.get(Experiment, experiment_id, with_for_update=lock)
    if row is None:
        raise NotFound("No such experiment.")
    return row


async def list_flags(db: Database) -> list[FeatureFlag]:
    async with db.read() as session:
        return list(await session.scalars(select(FeatureFlag).order_by(FeatureFlag.name)))


async def get_flag(db: Database, flag_id: str) -> FeatureFlag:
    async with db.read() as session:
        row = await _flag_in(session, flag_id)
    return row


def _name_taken(kind: str) -> Conflict:
    return Conflict(
        f"A {kind} with this name exists already.",
        code="name_taken",
        fields={"name": f"a {kind} with this name exists already"},
    )


async def create_flag(db: Database, author_id: str, body: FlagIn) -> FeatureFlag:
    now = utcnow()
    row = FeatureFlag(
        name=body.name,
        description=body.description,
        enabled=body.enabled,
        rollout=body.rollout,
        allow_list=body.allow_list,
        segment=body.segment.model_dump(mode="json", exclude_defaults=True),
        created_by=author_id,
        created_at=now,
        updated_at=now,
    )
    try:
        async with db.transaction() as session:
            if await session.scalar(select(FeatureFlag.id).where(FeatureFlag.name == body.name)):
                raise _name_taken("flag")
            session.add(row)
    except IntegrityError:  # the same name created at the same moment
        raise _name_taken("flag") from None
    return row


async def update_flag(db: Database, flag_id: str, patch: FlagPatch) -> FeatureFlag:
    # A field sent as null changes nothing (as one left out).
    changes = patch.model_dump(exclude_unset=True, exclude_none=True)
    async with db.transaction() as session:
        row = await _flag_in(session, flag_id)
        for name, value in changes.items():
            if name == "segment":
                value = Segment.model_validate(value).model_dump(mode="json", exclude_defaults=True)
            setattr(row, name, value)
        row.updated_at = utcnow()
    return row


async def delete_flag(db: Database, flag_id: str) -> FeatureFlag:
    async with db.transaction() as session:
        row = await _flag_in(session, flag_id)
        await session.delete(row)
    return row


def flag_rule(row: FeatureFlag) -> FlagRule:
    return FlagRule(
        name=row.name,
        enabled=row.enabled,
        rollout=row.rollout,
        allow_list=frozenset(row.allow_list or ()),
        segment=Segment.model_validate(row.segment or {}),
    )


# -- experiments ------------------------------------------------------------------------------


async def list_experiments(db: Database) -> list[Experiment]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(Experiment).order_by(Experiment.created_at.desc(), Experiment.id.desc())
            )
        )


async def get_experiment(db: Database, experiment_id: str) -> Experiment:
    async with db.read() as session:
        row = await _experiment_in(session, experiment_id)
    return row


async def create_experiment(db: Database, author_id: str, body: ExperimentIn) -> Experiment:
    now = utcnow()
    row = Experiment(
        name=body.name,
        description=body.description,
        variants=[v.model_dump() for v in body.variants],
        conversion_event=body.conversion_event,
        status="draft",
        created_by=author_id,
        created_at=now,
        updated_at=now,
    )
    try:
        async with db.transaction() as session:
            if await session.scalar(select(Experiment.id).where(Experiment.name == body.name)):
                raise _name_taken("experiment")
            session.add(row)
    except IntegrityError:
        raise _name_taken("experiment") from None
    return row


async def update_experiment(db: Database, experiment_id: str, patch: ExperimentPatch) -> Experiment:
    changes = patch.model_dump(exclude_unset=True, exclude_none=True)
    async with db.transaction() as session:
        row = await _experiment_in(session, experiment_id, lock=True)
        fixed = sorted({"variants", "conversion_event"} & changes.keys())
        if fixed and row.started_at is not None:
            # Users already saw a variant and were counted against this goal: changing either
            # would mix two experiments in one set of results.
            raise Conflict(
                "Variants and the conversion event are fixed once the experiment has started.",
                code="experiment_started",
                fields={name: "fixed once the experiment has started" for name in fixed},
            )
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
    return row


async def delete_experiment(db: Database, experiment_id: str) -> Experiment:
    async with db.transaction() as session:
        row = await _experiment_in(session, experiment_id)
        await session.delete(row)
    return row


async def set_running(db: Database, experiment_id: str, running: bool) -> Experiment:
    """Start (a draft, or resume a stopped one) or stop; doing it twice is a 409."""
    now = utcnow()
    async with db.transaction() as session:
        row = await _experiment_in(session, experiment_id, lock=True)
        if running == (row.status == "running"):
            state = "running" if running else "not running"
            raise Conflict(f"The experiment is {state} already.", code="experiment_" + row.status)
        row.status = "running" if running else "stopped"
        if running:
            row.started_at = row.started_at or now
            row.stopped_at = None
        else:
            row.stopped_at = now
        row.updated_at = now
    return row


def experiment_rule(row: Experiment) -> ExperimentRule:
    return ExperimentRule(
        id=row.id,
        name=row.name,
        variants=tuple((v["name"], int(v["weight"])) for v in row.variants),
        conversion_event=row.conversion_event,
    )


async def load_rules(db: Database) -> tuple[dict[str, FlagRule], dict[str, ExperimentRule]]:
    """Every flag, and the running experiments: what each process keeps in memory."""
    async with db.read() as session:
        flags = list(await session.scalars(select(FeatureFlag)))
        running = list(
            await session.scalars(select(Experiment).where(Experiment.status == "running"))
        )
    return (
        {row.name: flag_rule(row) for row in flags},
        {row.name: experiment_rule(row) for row in running},
    )


async def expose(db: Database, experiment_id: str, user_id: str, variant: str) -> str:
    """Record that ``user_id`` was shown ``variant`` (once; the first one recorded stays, so a
    later change of weights never moves someone who saw a variant already). Returns the variant
    on record."""
    async with db.read() as session:
        stored = await session.scalar(
            select(ExperimentExposure.variant).where(
                ExperimentExposure.experiment_id == experiment_id,
                ExperimentExposure.user_id == user_id,
            )
        )
    if stored is not None:
        return stored
    try:
        async with db.transaction() as session:
            session.add(
                ExperimentExposure(
                    experiment_id=experiment_id,
                    user_id=user_id,
                    variant=variant,
                    exposed_at=utcnow(),
                )
            )
    except IntegrityError:
        # Two requests of the same user at once (the other one's row is there now), or the
        # experiment or the user was deleted meanwhile (nothing to record).
        async with db.read() as session:
            stored = await session.scalar(
                select(ExperimentExposure.variant).where(
                    ExperimentExposure.experiment_id == experiment_id,
                    ExperimentExposure.user_id == user_id,
                )
            )
        return stored or variant
    return variant


async def convert(db: Database, experiment_ids: list[str], user_id: str) -> int:
    """Count ``user_id`` as converted in these experiments, where they were exposed and had not
    converted yet (a conditional UPDATE: the first event counts, the rest change nothing)."""
    async with db.transaction() as session:
        result = await session.execute(
            update(ExperimentExposure)
            .where(
                ExperimentExposure.experiment_id.in_(experiment_ids),
                ExperimentExposure.user_id == user_id,
                ExperimentExposure.converted_at.is_(None),
            )
            .values(converted_at=utcnow())
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def results(db: Database, experiment: Experiment) -> list[dict[str, Any]]:
    """Per variant, in the experiment's order: exposed, converted, rate with its 95% Wilson
    interval, and the difference from the control with its 95% interval."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(
                    ExperimentExposure.variant,
                    func.count(),
                    func.count(ExperimentExposure.converted_at),
                )
                .where(ExperimentExposure.experiment_id == experiment.id)
                .group_by(ExperimentExposure.variant)
            )
        ).all()
    counts = {name: (int(exposed), int(converted)) for name, exposed, converted in rows}
    names = [v["name"] for v in experiment.variants]
    control_exposed, control_converted = counts.get(names[0], (0, 0))
    control_rate = control_converted / control_exposed if control_exposed else 0.0
    out: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        exposed, converted = counts.get(name, (0, 0))
        rate = converted / exposed if exposed else 0.0
        low, high = stats.wilson(converted, exposed)
        entry: dict[str, Any] = {
            "name": name,
            "control": index == 0,
            "exposed": exposed,
            "converted": converted,
            "rate": rate,
            "interval": {"low": low, "high": high},
            "difference": None,
            "difference_interval": None,
        }
        if index and exposed and control_exposed:  # no difference to tell without both
            d_low, d_high = stats.difference_interval(
                converted, exposed, control_converted, control_exposed
            )
            entry["difference"] = rate - control_rate
            entry["difference_interval"] = {"low": d_low, "high": d_high}
        out.append(entry)
    return out


async def exposures_of(db: Database, user_id: str) -> list[dict[str, Any]]:
    """The experiments ``user_id`` took part in (their data export)."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(ExperimentExposure, Experiment.name)
                .join(Experiment, Experiment.id == ExperimentExposure.experiment_id)
                .where(ExperimentExposure.user_id == user_id)
                .order_by(ExperimentExposure.exposed_at)
            )
        ).all()
    return [
        {
            "experiment": name,
            "variant": exposure.variant,
            "exposed_at": exposure.exposed_at.isoformat(),
            "converted_at": exposure.converted_at.isoformat() if exposure.converted_at else None,
        }
        for exposure, name in rows
    ]
