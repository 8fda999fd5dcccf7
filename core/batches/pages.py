"""The batch pages: ``/batches`` (your batches and the form starting one from a CSV file or
pasted rows), ``/batches/{id}`` (its progress bar, cancel, downloads and results table) and the
part of it that refreshes itself while the batch runs (``/batches/{id}/status``: htmx polling,
and at once on the live channel's ``batch.progress``). Everything works without JavaScript:
the page then shows where the batch stood when it was loaded."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.web_request import FileField

from multinotes.batches import inputs, service
from multinotes.batches.models import Batch
from multinotes.errors import AppError, Invalid
from multinotes.http.endpoint import page
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import CATALOG, DB
from multinotes.prompts import service as prompts

routes = web.RouteTableDef()
#: Rows of the results table per page.
PER_PAGE = 50
#: Characters of an answer shown in the table before "show all".
PREVIEW = 280


async def _form_context(request: web.Request, user_id: str) -> dict[str, Any]:
    listing = await prompts.list_templates(
        request.app[DB], user_id, sort="title", limit=200, scope="all"
    )
    models = [
        {"id": e.id, "name": e.model.name, "provider": e.provider.name}
        for e in await request.app[CATALOG].entries()
        if e.available and "text" in e.model.capabilities
    ]
    return {
        "templates": [
            {
                "id": v.template.id,
                "title": v.template.title,
                "columns": [var.name for var in v.variables],
                "required": [
                    var.name for var in v.variables if var.required and var.default is None
                ],
            }
            for v in listing.templates
        ],
        "models": models,
        "max_models": service.MAX_MODELS,
        "max_concurrency": service.MAX_CONCURRENCY,
        "max_rows": inputs.MAX_ROWS,
        "max_row_chars": inputs.MAX_ROW_CHARS,
    }


@routes.get("/batches", name="batches")
@page(access="user")
async def batches_page(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    return await _index(request, actor.user_id, {}, {})


async def _index(
    request: web.Request,
    user_id: str,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> web.StreamResponse:
    db = request.app[DB]
    recent = [
        {"batch": b, "progress": (await service.progress(db, b)).out()}
        for b in await service.list_batches(db, user_id, 50, 0)
    ]
    context = await _form_context(request, user_id)
    chosen = values.get("template_id") or request.query.get("template", "")
    return render(
        request,
        "batches/index.html",
        {
            "nav": "batches",
            "recent": recent,
            "values": {"template_id": chosen, "concurrency": 2, "models": [], **values},
            "errors": errors,
            **context,
        },
        status=status,
    )


@routes.post("/batches", name="batches_start")
@page(access="user", rate="api")
async def start_batch(request: web.Request) -> web.StreamResponse:
    """The new-batch form (multipart: a CSV file, or rows pasted as CSV text)."""
    actor = require_user(request)
    form = await request.post()
    pasted = form_field(form, "rows")
    upload = form.get("file")
    values: dict[str, Any] = {
        "template_id": form_field(form, "template_id"),
        "models": [m for m in form.getall("models", []) if isinstance(m, str)],
        "concurrency": form_field(form, "concurrency") or "2",
        "rows": pasted,
    }
    try:
        require_verified(request)
        try:
            concurrency = int(values["concurrency"])
        except ValueError:
            raise Invalid(fields={"concurrency": "A whole number."}) from None
        if isinstance(upload, FileField) and upload.filename:
            try:
                text = upload.file.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise Invalid(
                    "The CSV is not UTF-8 text.", fields={"file": "Save the file as UTF-8."}
                ) from None
            field = "file"
        elif pasted:
            text, field = pasted, "rows"
        else:
            raise Invalid("Upload a CSV file or paste rows.", fields={"file": "Required."})
        if not values["template_id"]:
            raise Invalid(fields={"template_id": "Choose a template."})
        if not values["models"]:
            raise Invalid(fields={"models": "Choose at least one model."})
        columns, rows = inputs.read_csv(text, field=field)
        batch = await service.create(
            request.app,
            actor.user_id,
            template_id=values["template_id"],
            models=values["models"],
            columns=columns,
            rows=rows,
            concurrency=concurrency,
        )
    except AppError as exc:
        errors = dict(exc.fields) or {"form": exc.message}
        errors.setdefault("form", exc.message)
        return await _index(request, actor.user_id, values, errors, status=exc.status)
    return redirect(f"/batches/{batch.id}", "The batch started.")


async def _status_context(request: web.Request, batch: Batch) -> dict[str, Any]:
    db = request.app[DB]
    shown = (await service.progress(db, batch)).out()
    try:
        page_number = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page_number = 1
    pages = max(1, -(-batch.total_rows // PER_PAGE))
    page_number = min(page_number, pages)
    results = await service.results(db, batch, offset=(page_number - 1) * PER_PAGE, limit=PER_PAGE)
    return {
        "batch": batch,
        "progress": shown,
        "running": service.is_open(batch),
        "results": [service.row_out(r, list(batch.models)) for r in results],
        "page": page_number,
        "pages": pages,
        "preview": PREVIEW,
    }


@routes.get("/batches/{id}", name="batch_page")
@page(access="user")
async def batch_page(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    batch = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    context = await _status_context(request, batch)
    return render(request, "batches/batch.html", {"nav": "batches", **context})


@routes.get("/batches/{id}/status", name="batch_status")
@page(access="user")
async def batch_status(request: web.Request) -> web.StreamResponse:
    """The progress and results part of the batch page, which asks for itself again while
    the batch runs (reading only)."""
    actor = require_user(request)
    batch = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    context = await _status_context(request, batch)
    return aiohttp_jinja2.render_template("batches/_status.html", request, context)


@routes.post("/batches/{id}/cancel", name="batch_cancel_form")
@page(access="user", rate="api")
async def cancel_form(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    batch = await service.cancel(request.app, actor.user_id, request.match_info["id"])
    message = "The batch was cancelled." if batch.status == "cancelled" else "It had ended."
    return redirect(f"/batches/{batch.id}", message)
