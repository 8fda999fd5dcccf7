"""The ``/integrations`` page: a person's webhooks (an admin's: everyone's), a form to add one
(its secret shown once), and each endpoint's delivery log with "Send test" and "Retry". Plain
forms posted with the CSRF token, so it works without JavaScript; htmx reloads the delivery log
in place. Every form that changes something redirects (post/redirect/get), so a reload never
repeats it; a new secret crosses the redirect in an encrypted one-time cookie (``reveal``)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from multinotes.plugin import (
    COMMENT_CREATED,
    CREDITS_LOW,
    EXPORT_COMPLETED,
    FOLDER_CREATED,
    GENERATION_COMPLETED,
    GENERATION_FAILED,
    NOTE_CREATED,
    NOTE_DELETED,
    NOTE_SHARED,
    NOTE_UPDATED,
    ORDER_PAID,
    Invalid,
    NotFound,
    plugin_context,
)

from . import reveal, service
from .api import viewer_of
from .service import PLUGIN, TEST_EVENT

#: Fixed messages a redirect may ask the page to show (never text from the query string).
NOTICES = {
    "test": "A test event is on its way. Its delivery appears below within seconds.",
    "retry": "Sent again. The new attempt appears in the log within seconds.",
    "on": "The webhook is on.",
    "off": "The webhook is off: it receives nothing until switched on again.",
    "deleted": "The webhook and its delivery log were deleted.",
    "saved": "Saved.",
}
#: Suggestions for the events field: the core's catalogue (any dotted event name is accepted).
SUGGESTED_EVENTS = [
    event.name
    for event in (
        NOTE_CREATED,
        NOTE_UPDATED,
        NOTE_DELETED,
        NOTE_SHARED,
        COMMENT_CREATED,
        FOLDER_CREATED,
        GENERATION_COMPLETED,
        GENERATION_FAILED,
        EXPORT_COMPLETED,
        CREDITS_LOW,
        ORDER_PAID,
    )
]


async def form_of(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form; one that cannot be parsed (a multipart body without its boundary, a
    cut body) is the sender's mistake, not a server error."""
    try:
        return await request.post()
    except (ValueError, HttpProcessingError):
        raise Invalid("The form could not be read.", fields={"body": "Not a form."}) from None


def _events_from(text: str) -> list[str]:
    return [e for e in text.replace(",", " ").split() if e]


async def _page(request: web.Request, *, status: int = 200, **values: Any) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    viewer = viewer_of(request)
    mine = await service.list_endpoints(ctx, viewer)
    others = (
        [
            e
            for e in await service.list_endpoints(ctx, viewer, everyone=True)
            if e.user_id != viewer.user_id
        ]
        if viewer.is_admin
        else []
    )
    context = {
        "nav": "integrations",
        "mine": [service.endpoint_json(e) for e in mine],
        "others": [service.endpoint_json(e) for e in others],
        "suggested_events": SUGGESTED_EVENTS,
        "notice": NOTICES.get(request.query.get("done", "")),
        "form": {"url": "", "events": "note.created", "description": ""},
        "errors": {},
        "is_admin": viewer.is_admin,
        # Other integrations' sections (the Slack and Discord apps: install, your links).
        "plugin_panels": await ctx.panels(request, "integrations"),
        **values,
    }
    response = aiohttp_jinja2.render_template(
        "webhooks/integrations.html", request, context, status=status
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def integrations_page(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    new = reveal.take(ctx, request, user_id=viewer_of(request).user_id, kind="created")
    if new is None:
        return await _page(request)
    endpoint_id, secret = new
    response = await _page(request, created={"endpoint": {"id": endpoint_id}, "secret": secret})
    reveal.forget(response)
    return response


async def create_form(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    form = await form_of(request)
    values = {
        "url": str(form.get("url", "")),
        "events": str(form.get("events", "")),
        "description": str(form.get("description", "")),
    }
    scope = "instance" if form.get("scope") == "instance" else "user"
    try:
        endpoint, secret = await service.create_endpoint(
            ctx,
            viewer_of(request),
            url=values["url"],
            events=_events_from(values["events"]),
            description=values["description"][:500],
            scope=scope,
        )
    except Invalid as exc:
        return await _page(request, status=400, form=values, errors=exc.fields or {})
    # Redirected, so a reload does not add a second one; the next page shows the secret once.
    response = web.Response(status=303, headers={"Location": "/integrations#new-secret"})
    reveal.remember(
        ctx,
        request,
        response,
        user_id=endpoint.user_id,
        endpoint_id=endpoint.id,
        secret=secret,
        kind="created",
    )
    return response


async def endpoint_page(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    viewer = viewer_of(request)
    endpoint = await service.get_endpoint(ctx, viewer, request.match_info["id"])
    deliveries = await service.deliveries_of(ctx, viewer, endpoint.id)
    partial = request.headers.get("HX-Request") == "true"  # the log, reloaded in place
    rotated = (
        None
        if partial
        else reveal.take(
            ctx, request, user_id=viewer.user_id, kind="rotated", endpoint_id=endpoint.id
        )
    )
    context = {
        "nav": "integrations",
        "endpoint": service.endpoint_json(endpoint),
        "deliveries": deliveries,
        "notice": NOTICES.get(request.query.get("done", "")),
        "rotated": rotated[1] if rotated else None,
        "errors": {},
        "test_event": TEST_EVENT,
        "is_owner": endpoint.user_id == viewer.user_id,
    }
    template = "webhooks/_deliveries.html" if partial else "webhooks/endpoint.html"
    response = aiohttp_jinja2.render_template(template, request, context)
    response.headers["Cache-Control"] = "no-store"
    if rotated:
        reveal.forget(response)
    return response


def _back(endpoint_id: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/integrations/webhooks/{endpoint_id}?done={done}")


async def action_form(request: web.Request) -> web.Response:
    """The buttons of an endpoint: test, on, off, delete, rotate."""
    ctx = plugin_context(request.app, PLUGIN)
    viewer = viewer_of(request)
    endpoint_id = request.match_info["id"]
    action = request.path.rsplit("/", 1)[-1]
    if action == "test":
        await service.send_test(ctx, viewer, endpoint_id)
        raise _back(endpoint_id, "test")
    if action in ("on", "off"):
        await service.update_endpoint(ctx, viewer, endpoint_id, {"enabled": action == "on"})
        if (await form_of(request)).get("back") == "list":  # the admin's list of everyone's
            raise web.HTTPSeeOther(f"/integrations?done={action}")
        raise _back(endpoint_id, action)
    if action == "delete":
        await service.delete_endpoint(ctx, viewer, endpoint_id)
        raise web.HTTPSeeOther("/integrations?done=deleted")
    if action == "rotate":
        endpoint, secret = await service.rotate_secret(ctx, viewer, endpoint_id, 24.0)
        # Redirected like a new endpoint: a reload must not rotate again.
        response = web.Response(
            status=303, headers={"Location": f"/integrations/webhooks/{endpoint.id}#new-secret"}
        )
        reveal.remember(
            ctx,
            request,
            response,
            user_id=viewer.user_id,
            endpoint_id=endpoint.id,
            secret=secret,
            kind="rotated",
        )
        return response
    raise NotFound()


async def edit_form(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    viewer = viewer_of(request)
    endpoint_id = request.match_info["id"]
    form = await form_of(request)
    changes = {
        "url": str(form.get("url", "")),
        "events": _events_from(str(form.get("events", ""))),
        "description": str(form.get("description", ""))[:500],
    }
    try:
        await service.update_endpoint(ctx, viewer, endpoint_id, changes)
    except Invalid as exc:
        endpoint = await service.get_endpoint(ctx, viewer, endpoint_id)
        response = aiohttp_jinja2.render_template(
            "webhooks/endpoint.html",
            request,
            {
                "nav": "integrations",
                "endpoint": {**service.endpoint_json(endpoint), **changes},
                "deliveries": await service.deliveries_of(ctx, viewer, endpoint_id),
                "notice": None,
                "rotated": None,
                "errors": exc.fields or {},
                "test_event": TEST_EVENT,
                "is_owner": endpoint.user_id == viewer.user_id,
            },
            status=400,
        )
        return response
    raise _back(endpoint_id, "saved")


async def retry_form(request: web.Request) -> web.Response:
    ctx = plugin_context(request.app, PLUGIN)
    endpoint_id = request.match_info["id"]
    await service.retry_now(ctx, viewer_of(request), endpoint_id, request.match_info["delivery_id"])
    raise _back(endpoint_id, "retry")


ID = "{id:[0-9a-f]{32}}"
ACTIONS = ("test", "on", "off", "delete", "rotate")
ROUTES = [
    ("GET", "/integrations", integrations_page, "integrations_page"),
    ("POST", "/integrations/webhooks", create_form, "integrations_webhook_create"),
    ("GET", f"/integrations/webhooks/{ID}", endpoint_page, "integrations_webhook"),
    ("POST", f"/integrations/webhooks/{ID}/edit", edit_form, "integrations_webhook_edit"),
    *[
        ("POST", f"/integrations/webhooks/{ID}/{action}", action_form, f"integrations_{action}")
        for action in ACTIONS
    ],
    (
        "POST",
        f"/integrations/webhooks/{ID}/deliveries/{{delivery_id:[0-9a-f]{{32}}}}/retry",
        retry_form,
        "integrations_webhook_retry",
    ),
]
