"""The chains' pages: ``/chains`` (your chains), the step editor (new and edit; works without
JavaScript, ``chains.js`` adds steps and uploads a document in place), a chain's page (run it
on text or on one of your files, its runs) and a run's page, which follows the run live
(``chains.js`` over ``/api/chains/runs/{id}/stream``) with Stop and "Re-run from here"."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from multinotes.chains import runner, service
from multinotes.chains.documents import TEXT_KINDS
from multinotes.chains.schemas import ChainIn
from multinotes.chains.steps import MAX_STEPS, Step
from multinotes.chains.views import chain_out, run_out
from multinotes.errors import AppError, Invalid
from multinotes.files import service as files
from multinotes.files.sniff import KINDS
from multinotes.http.endpoint import page, validate
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import CATALOG, DB
from multinotes.prompts import service as templates

routes = web.RouteTableDef()

#: Blank step rows the editor offers below the chain's steps (more with "Add a step").
BLANK_ROWS = 1
#: How many of the user's files the run form offers as a document.
FILES_OFFERED = 50


def _values_text(values: dict[str, str]) -> str:
    return "\n".join(f"{name} = {value}" for name, value in values.items())


def _parse_values(raw: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in raw.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            values[name.strip()] = value.strip()
    return values


def form_steps(form: MultiDictProxy[Any]) -> list[dict[str, Any]]:
    """The steps the editor's rows describe (``step-<n>-<field>``); a row with neither a
    prompt nor a template is left out."""
    steps = []
    for n in range(MAX_STEPS + BLANK_ROWS + 5):
        prompt = form_field(form, f"step-{n}-prompt")
        template_id = form_field(form, f"step-{n}-template")
        if not prompt and not template_id:
            continue
        step: dict[str, Any] = {
            "title": form_field(form, f"step-{n}-title"),
            "model": form_field(form, f"step-{n}-model"),
        }
        if template_id:
            step["template_id"] = template_id
            step["values"] = _parse_values(str(form.get(f"step-{n}-values", "")))
        else:
            step["prompt"] = prompt
            system = form_field(form, f"step-{n}-system")
            if system:
                step["system_prompt"] = system
        steps.append(step)
    return steps


async def _editor(
    request: web.Request,
    user_id: str,
    values: dict[str, Any],
    *,
    chain_id: str | None,
    error: AppError | None,
) -> web.StreamResponse:
    rows = [dict(s) for s in values.get("steps") or []]
    for row in rows:
        row["values_text"] = _values_text(row.get("values") or {})
    rows += [{"model": "", "prompt": "", "values_text": ""}] * BLANK_ROWS
    models = [e for e in await request.app[CATALOG].entries() if "text" in e.model.capabilities]
    library = await templates.list_templates(request.app[DB], user_id, sort="title", limit=100)
    return render(
        request,
        "chains/form.html",
        {
            "nav": "chains",
            "values": values,
            "rows": rows,
            "chain_id": chain_id,
            "models": models,
            "templates": library.templates,
            "max_steps": MAX_STEPS,
            "error": error,
            "fields": error.fields if error else {},
        },
        status=422 if error else 200,
    )


@routes.get("/chains", name="chains")
@page(access="user")
async def index(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    found = await service.list_chains(request.app[DB], actor.user_id)
    return render(request, "chains/index.html", {"nav": "chains", "chains": found})


@routes.get("/chains/new", name="chain_new")
@page(access="user")
async def new_form(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    empty = {"title": "", "description": "", "steps": []}
    return await _editor(request, actor.user_id, empty, chain_id=None, error=None)


def _checked(values: dict[str, Any]) -> tuple[str, str, list[Step]]:
    """The form's chain, validated as the API validates it (``Invalid`` naming the field)."""
    if not values["steps"]:
        raise Invalid("Add at least one step.", fields={"steps": "add a step"})
    checked = validate(ChainIn, values)
    return checked.title, checked.description, checked.steps


def _form_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    return {
        "title": form_field(form, "title")[:200],
        "description": form_field(form, "description")[:500],
        "steps": form_steps(form),
    }


@routes.post("/chains/new", name="chain_create")
@page(access="user")
async def create(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    values = _form_values(await request.post())
    try:
        title, description, steps = _checked(values)
        chain = await service.create(request.app, actor.user_id, title, description, steps)
    except Invalid as exc:
        return await _editor(request, actor.user_id, values, chain_id=None, error=exc)
    return redirect(f"/chains/{chain.id}", "Chain saved.")


@routes.get("/chains/{id}/edit", name="chain_edit")
@page(access="user")
async def edit_form(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    chain = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    values = {"title": chain.title, "description": chain.description, "steps": chain.steps}
    return await _editor(request, actor.user_id, values, chain_id=chain.id, error=None)


@routes.post("/chains/{id}/edit", name="chain_update")
@page(access="user")
async def update(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    chain = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    values = _form_values(await request.post())
    try:
        title, description, steps = _checked(values)
        await service.update(
            request.app,
            actor.user_id,
            chain.id,
            {
                "title": title,
                "description": description,
                "steps": [s.model_dump(exclude_none=True) for s in steps],
            },
        )
    except Invalid as exc:
        return await _editor(request, actor.user_id, values, chain_id=chain.id, error=exc)
    return redirect(f"/chains/{chain.id}", "Chain saved.")


@routes.post("/chains/{id}/delete", name="chain_delete")
@page(access="user")
async def delete(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    await service.remove(request.app[DB], actor.user_id, request.match_info["id"])
    return redirect("/chains", "Chain deleted.")


async def _chain_page(
    request: web.Request,
    user_id: str,
    chain_id: str,
    *,
    error: AppError | None = None,
    given: dict[str, str] | None = None,
) -> web.StreamResponse:
    db = request.app[DB]
    chain = await service.get(db, user_id, chain_id)
    runs = await service.list_runs(db, user_id, chain_id, limit=20)
    rows, _more = await files.list_files(db, user_id, limit=FILES_OFFERED)
    documents = [
        f
        for f in rows
        if f.kind in TEXT_KINDS or (f.kind in KINDS and KINDS[f.kind].family == "audio")
    ]
    return render(
        request,
        "chains/chain.html",
        {
            "nav": "chains",
            "chain": chain_out(chain),
            "runs": [run_out(v) for v in runs],
            "documents": documents,
            "given": given or {},
            "error": error,
            "fields": error.fields if error else {},
        },
        status=error.status if error else 200,
    )


@routes.get("/chains/{id}", name="chain_page")
@page(access="user")
async def chain_page(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    return await _chain_page(request, actor.user_id, request.match_info["id"])


@routes.post("/chains/{id}/run", name="chain_run_form")
@page(access="user", rate="generation")
async def run(request: web.Request) -> web.StreamResponse:
    """Start a run from the chain page's form (``input`` or ``file_id``), then its page."""
    actor = require_verified(request)
    chain_id = request.match_info["id"]
    await service.get(request.app[DB], actor.user_id, chain_id)
    form = await request.post()
    text = str(form.get("input", "")) if isinstance(form.get("input"), str) else ""
    file_id = form_field(form, "file_id") or None
    try:
        view = await runner.start_run(
            request.app,
            actor.user_id,
            chain_id,
            text=None if file_id and not text.strip() else text,
            file_id=file_id,
        )
    except (Invalid, AppError) as exc:
        if exc.status not in (402, 422):
            raise
        given = {"input": text, "file_id": file_id or ""}
        return await _chain_page(request, actor.user_id, chain_id, error=exc, given=given)
    return redirect(f"/chains/runs/{view.run.id}")


@routes.get("/chains/runs/{id}", name="chain_run_page")
@page(access="user")
async def run_page(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    view = await service.get_run(request.app[DB], actor.user_id, request.match_info["id"])
    return render(request, "chains/run.html", {"nav": "chains", "run": run_out(view)})


@routes.post("/chains/runs/{id}/cancel", name="chain_run_stop")
@page(access="user")
async def stop(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    view = await runner.stop(request.app, actor.user_id, request.match_info["id"])
    return redirect(f"/chains/runs/{view.run.id}", "Stopping the run.")


@routes.post("/chains/runs/{id}/rerun", name="chain_run_again")
@page(access="user", rate="generation")
async def rerun(request: web.Request) -> web.StreamResponse:
    actor = require_verified(request)
    run_id = request.match_info["id"]
    await service.get_run(request.app[DB], actor.user_id, run_id)
    form = await request.post()
    try:
        from_step = int(form_field(form, "from_step") or "0")
    except ValueError:
        from_step = 0
    try:
        view = await runner.rerun(request.app, actor.user_id, run_id, from_step)
    except AppError as exc:
        if exc.status not in (402, 409, 422):
            raise
        return redirect(f"/chains/runs/{run_id}", exc.message, "error")
    return redirect(f"/chains/runs/{view.run.id}")
