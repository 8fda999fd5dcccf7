"""The OpenAPI document and the Swagger UI page that reads it (served locally, no CDN)."""

from __future__ import annotations

from aiohttp import web

from multinotes.http.endpoint import page, raw
from multinotes.http.openapi import build_openapi
from multinotes.http.responses import render

routes = web.RouteTableDef()
OPENAPI = web.AppKey("openapi", dict)


@routes.get("/api/openapi.json", name="openapi")
@raw(access="public", summary="This API's OpenAPI 3.1 document.", content_type="application/json")
async def openapi(request: web.Request) -> web.Response:
    document = request.app[OPENAPI]
    if not document:  # the first request since the start builds it
        document.update(build_openapi(request.app))
    return web.json_response(document)


async def build_on_startup(app: web.Application) -> None:
    """Routes are final once the app starts, so the document is built once, after it: on the
    first request for it. (Building it at every start cost each app ~0.1 s of CPU, a third of
    a test's app start-up, though few apps are ever asked for it.)"""
    app[OPENAPI] = {}


@routes.get("/api/docs", name="api_docs")
@page(access="public")
async def api_docs(request: web.Request) -> web.Response:
    return render(request, "docs.html", {"nav": "docs"})
