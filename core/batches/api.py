"""The batch API: start a batch (JSON rows or CSV text, or a CSV file upload), list, read with
its progress, read its rows and answers, cancel, download the results as CSV or XLSX."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import FileField
from pydantic import ValidationError

from multinotes.batches import download, inputs, service
from multinotes.batches.schemas import (
    BatchIn,
    BatchList,
    BatchOut,
    DownloadQuery,
    ListQuery,
    RowsOut,
    RowsQuery,
)
from multinotes.errors import BadRequest, Invalid
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import DB
from multinotes.plugin_settings import field_errors

routes = web.RouteTableDef()
TAGS = ["batches"]


async def batch_out(request: web.Request, batch: Any) -> dict[str, Any]:
    return service.batch_out(batch, await service.progress(request.app[DB], batch))


@routes.post("/api/batches", name="api_batches_create")
@endpoint(access="user", body=BatchIn, response=BatchOut, status=201, tags=TAGS, errors=[403, 404])
async def create_batch(request: web.Request, body: BatchIn) -> dict[str, Any]:
    """Start a batch: a prompt template run over rows of values (`rows`, or `csv` text whose
    first line names the columns) on 1-4 models, `concurrency` rows at a time, in the
    background. Each column fills the variable of its name (other columns are kept for the
    download). 422 names what is wrong: `columns.<name>` for a required variable without its
    column, `rows.<n>` for a row over the size limit, `rows.<n>.<name>` for a value the
    variable refuses, `models.<i>` for a model that cannot be used. Credits are held per row
    when it is sent; when they run out the rows left are skipped and nothing is overdrawn."""
    actor = require_verified(request)
    if body.csv is not None:
        columns, rows = inputs.read_csv(body.csv)
    else:
        columns, rows = inputs.json_rows(body.rows or [])
    batch = await service.create(
        request.app,
        actor.user_id,
        template_id=body.template_id,
        models=body.models,
        columns=columns,
        rows=rows,
        concurrency=body.concurrency,
    )
    return await batch_out(request, batch)


@routes.post("/api/batches/upload", name="api_batches_upload")
@endpoint(
    access="user",
    response=BatchOut,
    status=201,
    tags=TAGS,
    errors=[403, 404, 422],
    upload="file",
)
async def upload_batch(request: web.Request) -> dict[str, Any]:
    """Start a batch from a CSV file: multipart/form-data with `template_id`, `models` (once
    per model), optional `concurrency` and the CSV in `file` (UTF-8). Otherwise as
    `POST /api/batches`. Cookie sessions send `X-CSRF-Token`."""
    actor = require_verified(request)
    try:
        form = await request.post()
    except (ValueError, HttpProcessingError):
        raise BadRequest(
            "The form data is malformed.",
            code="bad_multipart",
            fields={"file": "The multipart body could not be read."},
        ) from None
    upload = form.get("file")
    if not isinstance(upload, FileField):
        raise Invalid("Send the CSV as a file.", fields={"file": "A CSV file is required."})
    text = await asyncio.to_thread(upload.file.read)
    try:
        csv_text = text.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(
            "The CSV is not UTF-8 text.", code="csv_malformed", fields={"file": "Save as UTF-8."}
        ) from None
    try:
        body = BatchIn.model_validate(
            {
                "template_id": form.get("template_id", ""),
                "models": [m for m in form.getall("models", []) if isinstance(m, str)],
                "concurrency": form.get("concurrency") or 2,
                "csv": csv_text,
            }
        )
    except ValidationError as exc:
        raise Invalid(fields=field_errors(exc, "")) from None
    columns, rows = inputs.read_csv(body.csv or "", field="file")
    batch = await service.create(
        request.app,
        actor.user_id,
        template_id=body.template_id,
        models=body.models,
        columns=columns,
        rows=rows,
        concurrency=body.concurrency,
    )
    return await batch_out(request, batch)


@routes.get("/api/batches", name="api_batches")
@endpoint(access="user", query=ListQuery, response=BatchList, tags=TAGS)
async def list_batches(request: web.Request, query: ListQuery) -> dict[str, Any]:
    """Your batches, newest first, each with its progress."""
    actor = require_user(request)
    batches = await service.list_batches(request.app[DB], actor.user_id, query.limit, query.offset)
    return {"batches": [await batch_out(request, b) for b in batches]}


@routes.get("/api/batches/{id}", name="api_batch")
@endpoint(access="user", response=BatchOut, tags=TAGS, errors=[404])
async def get_batch(request: web.Request) -> dict[str, Any]:
    """One of your batches with its progress: rows done, failed, skipped, cancelled and
    remaining, and the credits spent so far. Poll it while the batch runs (or listen for
    `batch.progress` on the live channel)."""
    actor = require_user(request)
    batch = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    return await batch_out(request, batch)


@routes.get("/api/batches/{id}/rows", name="api_batch_rows")
@endpoint(access="user", query=RowsQuery, response=RowsOut, tags=TAGS, errors=[404])
async def batch_rows(request: web.Request, query: RowsQuery) -> dict[str, Any]:
    """A batch's rows in order, each with its inputs, status and one answer per model (its
    text, status and cost)."""
    actor = require_user(request)
    batch = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    results = await service.results(request.app[DB], batch, offset=query.offset, limit=query.limit)
    models = list(batch.models)
    return {"total": batch.total_rows, "rows": [service.row_out(r, models) for r in results]}


@routes.post("/api/batches/{id}/cancel", name="api_batch_cancel")
@endpoint(access="user", response=BatchOut, tags=TAGS, errors=[404])
async def cancel_batch(request: web.Request) -> dict[str, Any]:
    """Cancel a batch: rows not sent yet are cancelled (nothing was held for them) and the
    answers streaming now stop, each settled to what it used. A batch that already ended is
    returned unchanged."""
    actor = require_user(request)
    batch = await service.cancel(request.app, actor.user_id, request.match_info["id"])
    return await batch_out(request, batch)


@routes.get("/api/batches/{id}/download", name="api_batch_download")
@endpoint(
    access="user",
    query=DownloadQuery,
    tags=TAGS,
    errors=[404],
    content_type="application/octet-stream",
)
async def download_batch(request: web.Request, query: DownloadQuery) -> web.Response:
    """The results as a file (`format=csv` or `xlsx`): one line per row with its columns,
    status and, per model, the answer, its status and cost. Available at any time (rows not
    finished yet show their status)."""
    actor = require_user(request)
    return await results_file(request, actor.user_id, request.match_info["id"], query.format)


async def results_file(request: web.Request, user_id: str, batch_id: str, fmt: str) -> web.Response:
    """The download, for the API and the page's link alike."""
    db = request.app[DB]
    batch = await service.get(db, user_id, batch_id)
    lines = download.table(batch, await service.results(db, batch))
    if fmt == "xlsx":
        data = await asyncio.to_thread(download.to_xlsx, lines, batch.title)
    else:
        data = download.to_csv(lines)
    name = f"batch-{batch.id}.{fmt}"
    return web.Response(
        body=data,
        headers={
            "Content-Type": download.MEDIA_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )
