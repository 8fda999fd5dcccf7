"""``/api/webhooks``: endpoints, their secrets, test events and the delivery log (JSON)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.plugin import Invalid, plugin_context, read_body

from . import service
from .service import PLUGIN, Viewer


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=service.MAX_URL, description="https (or http) URL to POST to.")
    events: list[str] = Field(min_length=1, max_length=100, description="Event types wanted.")
    description: str = Field(default="", max_length=500)
    scope: Literal["user", "instance"] = Field(
        default="user",
        description='"instance" (admins only): every event of the instance, not only yours.',
    )


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=service.MAX_URL)
    events: list[str] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_hours: float = Field(
        default=24.0, ge=0, le=168, description="How long the old secret keeps signing too."
    )


def viewer_of(request: web.Request) -> Viewer:
    caller = plugin_context(request.app, PLUGIN).caller(request)
    return Viewer(caller.user_id, caller.is_admin)


async def create(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    body: EndpointIn = await read_body(request, EndpointIn)
    endpoint, secret = await service.create_endpoint(
        ctx,
        viewer_of(request),
        url=body.url,
        events=body.events,
        description=body.description,
        scope=body.scope,
    )
    # The secret is shown this once; it is stored encrypted and never returned again.
    return web.json_response(
        {**service.endpoint_json(endpoint), "secret": secret},
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def list_all(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    everyone = request.query.get("all", "") in ("1", "true")
    endpoints = await service.list_endpoints(ctx, viewer_of(request), everyone=everyone)
    return web.json_response({"webhooks": [service.endpoint_json(e) for e in endpoints]})


async def get_one(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    endpoint = await service.get_endpoint(ctx, viewer_of(request), request.match_info["id"])
    return web.json_response(service.endpoint_json(endpoint))


async def patch(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    await service.get_endpoint(ctx, viewer_of(request), request.match_info["id"])  # 404 first
    body: EndpointPatch = await read_body(request, EndpointPatch)
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise Invalid(fields={name: "May not be null."})
    endpoint = await service.update_endpoint(
        ctx, viewer_of(request), request.match_info["id"], changes
    )
    return web.json_response(service.endpoint_json(endpoint))


async def disable(request: web.Request) -> web.Response:
    return await _switch(request, False)


async def enable(request: web.Request) -> web.Response:
    return await _switch(request, True)


async def _switch(request: web.Request, enabled: bool) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    endpoint = await service.update_endpoint(
        ctx, viewer_of(request), request.match_info["id"], {"enabled": enabled}
    )
    return web.json_response(service.endpoint_json(endpoint))


async def remove(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    await service.delete_endpoint(ctx, viewer_of(request), request.match_info["id"])
    return web.Response(status=204)


async def rotate(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    await service.get_endpoint(ctx, viewer_of(request), request.match_info["id"])  # 404 first
    body: RotateIn = await read_body(request, RotateIn)
    endpoint, secret = await service.rotate_secret(
        ctx, viewer_of(request), request.match_info["id"], body.grace_hours
    )
    return web.json_response(
        {**service.endpoint_json(endpoint), "secret": secret}, headers={"Cache-Control": "no-store"}
    )


async def test(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    delivery_id = await service.send_test(ctx, viewer_of(request), request.match_info["id"])
    return web.json_response({"delivery_id": delivery_id}, status=202)


async def deliveries(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    rows = await service.deliveries_of(ctx, viewer_of(request), request.match_info["id"])
    return web.json_response({"deliveries": rows})


async def retry(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    delivery_id = await service.retry_now(
        ctx, viewer_of(request), request.match_info["id"], request.match_info["delivery_id"]
    )
    return web.json_response({"delivery_id": delivery_id}, status=202)


ID = "{id:[0-9a-f]{32}}"
ROUTES = [
    ("POST", "/api/webhooks", create, "webhooks_create"),
    ("GET", "/api/webhooks", list_all, "webhooks_list"),
    ("GET", f"/api/webhooks/{ID}", get_one, "webhooks_get"),
    ("PATCH", f"/api/webhooks/{ID}", patch, "webhooks_patch"),
    ("DELETE", f"/api/webhooks/{ID}", remove, "webhooks_delete"),
    ("POST", f"/api/webhooks/{ID}/disable", disable, "webhooks_disable"),
    ("POST", f"/api/webhooks/{ID}/enable", enable, "webhooks_enable"),
    ("POST", f"/api/webhooks/{ID}/rotate-secret", rotate, "webhooks_rotate"),
    ("POST", f"/api/webhooks/{ID}/test", test, "webhooks_test"),
    ("GET", f"/api/webhooks/{ID}/deliveries", deliveries, "webhooks_deliveries"),
    (
        "POST",
        f"/api/webhooks/{ID}/deliveries/{{delivery_id:[0-9a-f]{{32}}}}/retry",
        retry,
        "webhooks_retry",
    ),
]
