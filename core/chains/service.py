"""Keeping chains and reading runs: create, change and delete a chain (its owner only), check
its steps (models, templates, variables), and every read through "chain or run X as seen by
user Y" (``NotFound`` for anyone else's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.chains.models import Chain, ChainRun, ChainRunStep
from multinotes.chains.steps import MAX_STEPS, Step, variable_problems
from multinotes.chat.models import Generation, Message
from multinotes.db import Database, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.keys import CATALOG, DB
from multinotes.prompts import service as templates
from multinotes.prompts import variables as vars_

MAX_CHAINS_LISTED = 200


async def check_steps(app: web.Application, user_id: str, steps: list[Step]) -> None:
    """Refuse steps that could not run: too many, a model that is not a usable text model, a
    template the user cannot see, a variable naming no earlier step, a template variable
    with no value. One ``Invalid`` names every field (``steps.N.model``, ...; N 0-based)."""
    if not steps:
        raise Invalid("A chain needs at least one step.", fields={"steps": "add a step"})
    if len(steps) > MAX_STEPS:
        raise Invalid(
            f"A chain has at most {MAX_STEPS} steps.",
            code="too_many_steps",
            fields={"steps": f"at most {MAX_STEPS} steps"},
        )
    models = {e.id: e for e in await app[CATALOG].entries() if "text" in e.model.capabilities}
    fields: dict[str, str] = {}
    code = None
    for index, step in enumerate(steps):
        where = f"steps.{index}"
        if step.model not in models:
            fields[f"{where}.model"] = f"unknown model {step.model!r}: pick a text model"
            code = code or "unknown_model"
        if step.template_id is None:
            for field, text in (("prompt", step.prompt), ("system_prompt", step.system_prompt)):
                problems = variable_problems([text or ""], index)
                if problems:
                    fields[f"{where}.{field}"] = "; ".join(problems)
                    code = code or "unknown_variable"
            continue
        try:
            view = await templates.get(app[DB], user_id, step.template_id)
        except NotFound:
            fields[f"{where}.template_id"] = "no such template"
            code = code or "template_not_found"
            continue
        declared = {v.name: v for v in view.variables}
        for name, value in step.values.items():
            variable = declared.get(name)
            if variable is None:
                fields[f"{where}.values.{name}"] = "not a variable of this template"
                code = code or "unknown_variable"
                continue
            problems = variable_problems([value], index)
            if problems:
                fields[f"{where}.values.{name}"] = "; ".join(problems)
                code = code or "unknown_variable"
            elif not vars_.placeholders(value) and value.strip():
                try:
                    vars_.check_value(variable, value, field=name)
                except ValueError as exc:
                    fields[f"{where}.values.{name}"] = str(exc)
        for name, variable in declared.items():
            given = step.values.get(name, "").strip()
            if not given and variable.default is None and variable.required:
                fields[f"{where}.values.{name}"] = f"{variable.title} is required"
    if fields:
        first = next(iter(fields))
        number = int(first.split(".")[1]) + 1
        raise Invalid(f"Step {number}: {fields[first]}.", code=code, fields=fields)


def steps_json(steps: list[Step]) -> list[dict[str, Any]]:
    return [s.model_dump(exclude_none=True) for s in steps]


async def create(
    app: web.Application, user_id: str, title: str, description: str, steps: list[Step]
) -> Chain:
    await check_steps(app, user_id, steps)
    chain = Chain(user_id=user_id, title=title, description=description, steps=steps_json(steps))
    async with app[DB].transaction() as session:
        session.add(chain)
    return chain


async def update(
    app: web.Application, user_id: str, chain_id: str, changes: dict[str, Any]
) -> Chain:
    chain = await get(app[DB], user_id, chain_id)
    if "steps" in changes:
        steps = [Step.model_validate(s) for s in changes["steps"]]
        await check_steps(app, user_id, steps)
        changes["steps"] = steps_json(steps)
    for field in ("title", "description"):
        if field in changes and changes[field] is None:
            raise Invalid(fields={field: "cannot be null"})
    async with app[DB].transaction() as session:
        row = await session.get(Chain, chain.id)
        if row is None:
            raise NotFound("No such chain.", code="chain_not_found")
        for field, value in changes.items():
            setattr(row, field, value)
        row.updated_at = utcnow()
    return await get(app[DB], user_id, chain_id)


async def remove(db: Database, user_id: str, chain_id: str) -> None:
    """Delete the chain and its runs (their conversations stay in the workspace)."""
    await get(db, user_id, chain_id)
    async with db.transaction() as session:
        await session.execute(delete(Chain).where(Chain.id == chain_id, Chain.user_id == user_id))


async def get(db: Database, user_id: str, chain_id: str) -> Chain:
    async with db.read() as session:
        chain = await session.scalar(
            select(Chain).where(Chain.id == chain_id, Chain.user_id == user_id)
        )
    if chain is None:
        raise NotFound("No such chain.", code="chain_not_found")
    return chain


@dataclass
class ChainListed:
    chain: Chain
    runs: int


async def list_chains(db: Database, user_id: str) -> list[ChainListed]:
    runs = (
        select(func.count())
        .where(ChainRun.chain_id == Chain.id)
        .correlate(Chain)
        .scalar_subquery()
        .label("runs")
    )
    async with db.read() as session:
        rows = await session.execute(
            select(Chain, runs)
            .where(Chain.user_id == user_id)
            .order_by(Chain.updated_at.desc(), Chain.id)
            .limit(MAX_CHAINS_LISTED)
        )
        return [ChainListed(chain, int(count or 0)) for chain, count in rows]


# -- runs as seen by their owner ------------------------------------------------------------------


@dataclass
class RunView:
    run: ChainRun
    chain_title: str
    steps: list[ChainRunStep]
    #: The answers of the steps (message id → message).
    answers: dict[str, Message]
    #: The generations of the answers this run made (message id → generation).
    generations: dict[str, Generation]

    @property
    def cost(self) -> int:
        made = {s.message_id for s in self.steps if s.status != "reused"}
        return sum(g.cost or 0 for m, g in self.generations.items() if m in made)


async def run_row(session: AsyncSession, user_id: str, run_id: str) -> ChainRun:
    run = await session.scalar(
        select(ChainRun).where(ChainRun.id == run_id, ChainRun.user_id == user_id)
    )
    if run is None:
        raise NotFound("No such run.", code="run_not_found")
    return run


async def get_run(db: Database, user_id: str, run_id: str) -> RunView:
    async with db.read() as session:
        run = await run_row(session, user_id, run_id)
        return await _view(session, run)


async def _view(session: AsyncSession, run: ChainRun) -> RunView:
    title = await session.scalar(select(Chain.title).where(Chain.id == run.chain_id))
    steps = list(
        await session.scalars(
            select(ChainRunStep)
            .where(ChainRunStep.run_id == run.id)
            .order_by(ChainRunStep.position)
        )
    )
    ids = [s.message_id for s in steps if s.message_id]
    answers: dict[str, Message] = {}
    generations: dict[str, Generation] = {}
    if ids:
        answers = {
            m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(ids)))
        }
        generations = {
            g.message_id: g
            for g in await session.scalars(select(Generation).where(Generation.message_id.in_(ids)))
        }
    return RunView(run, title or "", steps, answers, generations)


async def list_runs(db: Database, user_id: str, chain_id: str, limit: int = 50) -> list[RunView]:
    await get(db, user_id, chain_id)
    async with db.read() as session:
        runs = list(
            await session.scalars(
                select(ChainRun)
                .where(ChainRun.chain_id == chain_id, ChainRun.user_id == user_id)
                .order_by(ChainRun.created_at.desc(), ChainRun.id)
                .limit(limit)
            )
        )
        return [await _view(session, run) for run in runs]
