"""Declaring endpoints: who may call them, what they take and return.

``@endpoint(access="user", body=KeyIn, response=KeyOut, status=201)`` checks access, parses and
validates the JSON body (and query string) into pydantic models, serialises the result, and
records everything the OpenAPI document needs. ``@page(access=...)`` does the same for HTML pages
(anonymous visitors are sent to the login page instead of getting a 401).

Every route's handler must carry an access declaration; ``check_routes`` refuses to start the app
otherwise, so no endpoint ships without one.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import ClientPayloadError, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, TypeAdapter, ValidationError

from multinotes.errors import BadRequest, Invalid, UnsupportedMediaType
from multinotes.identity.actor import current_actor, require_admin, require_user
from multinotes.plugin_settings import field_errors

Access = Literal["public", "user", "admin"]
Handler = Callable[..., Awaitable[Any]]

SPEC_ATTR = "__endpoint__"


@dataclass
class EndpointSpec:
    access: Access
    kind: Literal["api", "page", "raw"]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    summary: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    rate: str | None = "api"
    errors: list[int] = field(default_factory=list)
    #: What a success answers; several, comma-separated, for a route whose answer depends on
    #: what it reads (``"image/png, application/json"``).
    content_type: str = "application/json"
    #: A settings field naming this route's own body limit (it streams its body itself, so the
    #: app-wide ``max_request_bytes`` and form parsing do not apply).
    body_limit: str | None = None
    #: A streamed multipart form (``body_limit``) posted by a plain HTML form, which cannot send
    #: the ``X-CSRF-Token`` header: its first part must be the ``csrf_token`` field, which the
    #: CSRF check reads before anything else of the body (see ``middleware._check_csrf``).
    csrf_first_part: bool = False
    #: The multipart/form-data field a file upload arrives in (``@endpoint(upload="file")``):
    #: any other body is refused before the handler runs, and a body error names this field.
    upload: str | None = None


#: The field name body-level errors (not JSON at all, not an object) are reported under.
BODY_FIELD = "body"


def spec_of(handler: Any) -> EndpointSpec | None:
    return getattr(handler, SPEC_ATTR, None)


def _check_access(request: web.Request, access: Access) -> None:
    if access == "user":
        require_user(request)
    elif access == "admin":
        require_admin(request)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json(request: web.Request) -> Any:
    """The JSON body (``{}`` when there is none). A body of another type, or one that is not
    JSON, is the client's 4xx with a field error under ``body``."""
    if not request.body_exists:
        return {}
    try:
        raw = await request.read()
    except (ConnectionResetError, ClientPayloadError, HttpProcessingError):
        # The body was cut off (the client went away mid-request) or its framing is broken.
        raise BadRequest(
            "The request body did not arrive whole.",
            code="incomplete_body",
            fields={BODY_FIELD: "The body ended early or its transfer encoding is broken."},
        ) from None
    if not raw.strip():
        return {}
    if not _is_json(request.content_type):
        raise UnsupportedMediaType(
            "Send the body as JSON with Content-Type: application/json.",
            fields={BODY_FIELD: f"Expected application/json, not {request.content_type}."},
        )
    try:
        return json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadRequest(
            "The body is not valid JSON.",
            code="malformed_json",
            fields={BODY_FIELD: f"Not valid JSON: {exc}"},
        ) from None


def _json_kind(data: Any) -> str:
    if isinstance(data, list):
        return "an array"
    if data is None:
        return "null"
    return (
        "a string"
        if isinstance(data, str)
        else "a number"
        if not isinstance(data, bool)
        else "a boolean"
    )


def check_upload(request: web.Request, field: str) -> None:
    """Refuse anything but a multipart/form-data body with a boundary, which an upload needs."""
    if request.content_type != "multipart/form-data" or not _boundary(request):
        raise BadRequest(
            f"Send the file as multipart/form-data (with a boundary) in the field {field!r}.",
            code="not_multipart",
            fields={field: "Send a multipart/form-data body with this field."},
        )


def _boundary(request: web.Request) -> str:
    from email.message import Message

    message = Message()
    message["Content-Type"] = request.headers.get("Content-Type", "")
    value = message.get_param("boundary")
    return value if isinstance(value, str) else ""


async def multipart(request: web.Request, field: str) -> MultipartReader:
    """The upload's form reader; broken framing is the client's 400 naming ``field``."""
    check_upload(request, field)
    try:
        return await request.multipart()
    except (ValueError, HttpProcessingError):
        raise BadRequest(
            "The form data is malformed.",
            code="bad_multipart",
            fields={field: "The multipart body could not be read."},
        ) from None


def validate(model: type[BaseModel], data: Any, *, prefix: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(fields=field_errors(exc, prefix)) from None


async def read_body(request: web.Request, model: type[BaseModel]) -> Any:
    """The JSON body as ``model``, refused exactly as an ``@endpoint``'s body is (for routes that
    are not declared with ``@endpoint``, such as a plugin's): no body validates as ``{}``."""
    return validate(model, await read_json(request))


@functools.lru_cache(maxsize=256)
def _adapter(response: Any) -> TypeAdapter[Any]:
    return TypeAdapter(response)  # building one is costly; response types are few and fixed


def to_jsonable(value: Any, response: Any = None) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if response is not None:
        # Validating plain data against the declared model keeps the OpenAPI promise honest.
        adapter = _adapter(response)
        return adapter.dump_python(adapter.validate_python(value), mode="json")
    return value


def endpoint(
    *,
    access: Access,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    summary: str = "",
    tags: list[str] | tuple[str, ...] = (),
    rate: str | None = "api",
    errors: list[int] | tuple[int, ...] = (),
    content_type: str = "application/json",
    body_limit: str | None = None,
    upload: str | None = None,
) -> Callable[[Handler], Handler]:
    """Declare a JSON endpoint. The handler gets ``body=`` / ``query=`` models when declared and
    returns a pydantic model, plain data, or a ``web.StreamResponse`` it built itself.
    ``body_limit`` is as for ``raw``: a route that streams its own (non-JSON) body.
    ``upload`` names the multipart/form-data field a file arrives in: any other kind of body is
    a 400 before the handler runs, and a 400 the handler raises about the body names the field.
    """
    if upload is not None and body is not None:
        raise ValueError("an endpoint takes a JSON body or an upload, not both")

    def decorate(func: Handler) -> Handler:
        spec = EndpointSpec(
            access=access,
            kind="api",
            body=body,
            query=query,
            response=response,
            status=status,
            summary=summary or inspect.cleandoc(func.__doc__ or "").split("\n")[0],
            description=inspect.cleandoc(func.__doc__ or ""),
            tags=list(tags),
            rate=rate,
            errors=list(errors),
            content_type=content_type,
            body_limit=body_limit,
            upload=upload,
        )

        @functools.wraps(func)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            _check_access(request, access)
            kwargs: dict[str, Any] = {}
            if body is not None:
                data = await read_json(request)
                if not isinstance(data, dict):
                    raise BadRequest(
                        "The body must be a JSON object.",
                        code="malformed_json",
                        fields={BODY_FIELD: f"Expected a JSON object, not {_json_kind(data)}."},
                    )
                kwargs["body"] = validate(body, data)
            if query is not None:
                kwargs["query"] = validate(query, dict(request.query))
            if upload is not None:
                check_upload(request, upload)
                try:
                    result = await func(request, **kwargs)
                except BadRequest as exc:
                    if not exc.fields:
                        exc.fields = {upload: exc.message}
                    raise
            else:
                result = await func(request, **kwargs)
            if isinstance(result, web.StreamResponse):
                return result
            if result is None and status == 204:
                return web.Response(status=204)
            return web.json_response(to_jsonable(result, response), status=status)

        setattr(wrapper, SPEC_ATTR, spec)
        return wrapper

    return decorate


def page(
    *,
    access: Access,
    rate: str | None = None,
    body_limit: str | None = None,
    csrf_first_part: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare an HTML page. Anonymous visitors of non-public pages are redirected to log in.

    :param body_limit: as for ``raw``: a form that the handler streams itself (an upload form).
    :param csrf_first_part: with ``body_limit``, the form carries its CSRF token as its first
        part (a plain form cannot send the header); the CSRF check reads that part, and the
        handler reads the rest from ``middleware.CHECKED_FORM``."""
    if csrf_first_part and not body_limit:
        raise ValueError("csrf_first_part is for streamed forms: declare their body_limit")

    def decorate(func: Handler) -> Handler:
        @functools.wraps(func)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if access != "public" and current_actor(request) is None:
                target = request.rel_url.path_qs if request.method == "GET" else "/"
                raise web.HTTPSeeOther(f"/login?next={_quote(target)}")
            _check_access(request, access)
            result: web.StreamResponse = await func(request)
            return result

        setattr(
            wrapper,
            SPEC_ATTR,
            EndpointSpec(
                access=access,
                kind="page",
                rate=rate,
                body_limit=body_limit,
                csrf_first_part=csrf_first_part,
            ),
        )
        return wrapper

    return decorate


def raw(
    *,
    access: Access,
    summary: str = "",
    rate: str | None = None,
    content_type: str = "text/plain",
    body_limit: str | None = None,
) -> Callable[[Handler], Handler]:
    """Declare a non-JSON, non-page endpoint (health probes, metrics, files).

    :param body_limit: a settings field with this route's body limit, for routes that stream
        their body themselves (uploads); the size middleware honours it instead of
        ``max_request_bytes``."""

    def decorate(func: Handler) -> Handler:
        @functools.wraps(func)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            _check_access(request, access)
            result: web.StreamResponse = await func(request)
            return result

        setattr(
            wrapper,
            SPEC_ATTR,
            EndpointSpec(
                access=access,
                kind="raw",
                summary=summary,
                rate=rate,
                content_type=content_type,
                body_limit=body_limit,
            ),
        )
        return wrapper

    return decorate


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def check_routes(app: web.Application) -> None:
    """Every route must declare who may call it (static files are public by nature)."""
    missing = []
    for route in app.router.routes():
        if isinstance(route.resource, web.StaticResource):
            continue
        if spec_of(route.handler) is None:
            missing.append(f"{route.method} {route.resource.canonical if route.resource else '?'}")
    if missing:
        raise RuntimeError("Routes without an access declaration: " + ", ".join(missing))
