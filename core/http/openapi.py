"""The OpenAPI 3.1 document, generated from the routes' endpoint declarations."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from multinotes import __version__
from multinotes.http.endpoint import EndpointSpec, spec_of
from multinotes.identity import scopes as key_scopes

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "request_id": {"type": "string"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
ERROR_TEXT = {
    400: "Malformed request",
    401: "Not authenticated",
    402: "Not enough credits",
    403: "Forbidden (including a missing CSRF token, or an API key without the scope)",
    404: "Not found (or not yours)",
    409: "Conflict",
    413: "Body too large",
    422: "Validation failed",
    429: "Rate limited",
}


#: The JSON schema of each annotation already rendered, and its ``$defs``, as JSON text:
#: pydantic's schema generation is most of the document's cost, and every app of a process (a
#: test suite builds hundreds) renders the same types. Each use parses its own copy (much
#: cheaper than a deep copy), so no two documents share a dict.
_SCHEMAS: dict[Any, tuple[str, str]] = {}


def _schema(annotation: Any, defs: dict[str, Any]) -> dict[str, Any]:
    try:
        cached = _SCHEMAS.get(annotation)
    except TypeError:  # an unhashable annotation: rendered every time
        cached = None
    if cached is None:
        schema = TypeAdapter(annotation).json_schema(ref_template="#/components/schemas/{model}")
        own_defs = schema.pop("$defs", {})
        cached = (json.dumps(schema), json.dumps(own_defs))
        with contextlib.suppress(TypeError):
            _SCHEMAS[annotation] = cached
    defs.update(json.loads(cached[1]))
    result: dict[str, Any] = json.loads(cached[0])
    return result


#: aiohttp's pattern for a plain ``{name}``: no constraint worth declaring.
DEFAULT_PART = "[^{}/]+"


def path_parameters(resource: web.AbstractResource) -> list[dict[str, Any]]:
    """The path's ``{name}`` and ``{name:regex}`` parts (anywhere in a segment, like
    ``/avatars/{avatar_id}.png``); a route's own regex becomes the schema's pattern."""
    info = resource.get_info()
    formatter = info.get("formatter") or info.get("path") or ""
    pattern = info.get("pattern")
    params = []
    for name in re.findall(r"\{(\w+)\}", formatter):
        schema: dict[str, Any] = {"type": "string"}
        regex = _group(pattern.pattern, name) if pattern is not None else None
        if regex and regex != DEFAULT_PART:
            schema["pattern"] = f"^{regex}$"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _group(pattern: str, name: str) -> str | None:
    """The body of the named group ``(?P<name>...)`` in ``pattern``."""
    opening = f"(?P<{name}>"
    start = pattern.find(opening)
    if start < 0:
        return None
    depth, index = 1, start + len(opening)
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return pattern[start + len(opening) : index]
        index += 1
    return None


def build_openapi(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    defs: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in app.router.routes():
        spec: EndpointSpec | None = spec_of(route.handler)
        resource = route.resource
        if spec is None or spec.kind == "page" or resource is None or route.method == "HEAD":
            continue
        path = resource.canonical
        operation: dict[str, Any] = {
            "summary": spec.summary,
            "operationId": resource.name or f"{route.method.lower()}_{path}",
            "tags": spec.tags or ["system"],
            "x-access": spec.access,
        }
        if spec.description and spec.description != spec.summary:
            operation["description"] = spec.description
        if spec.access != "public":
            operation["security"] = [{"session": []}, {"apiKey": []}]
            operation["x-api-key-scopes"] = key_scopes.ordered(
                key_scopes.required(route.method, path, spec.access)
            )
        params = path_parameters(resource)
        if spec.query is not None:
            query_schema = _schema(spec.query, defs)
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if params:
            operation["parameters"] = params
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(spec.body, defs)}},
            }
        elif spec.upload is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {spec.upload: {"type": "string", "format": "binary"}},
                            "required": [spec.upload],
                        }
                    }
                },
            }
        responses: dict[str, Any] = {}
        if spec.status == 204:
            responses["204"] = {"description": "Done"}
        elif spec.response is not None:
            responses[str(spec.status)] = {
                "description": "OK",
                "content": {
                    media: {"schema": _schema(spec.response, defs)}
                    for media in spec.content_type.split(", ")
                },
            }
        else:
            responses[str(spec.status)] = {
                "description": "OK",
                "content": {media: {"schema": {}} for media in spec.content_type.split(", ")},
            }
        codes = set(spec.errors)
        if spec.body is not None or spec.query is not None:
            codes |= {400, 422}
        if spec.access != "public":
            codes |= {401, 403}  # 403: an API key without the scope, or a missing CSRF token
        if spec.rate:
            codes |= {429}
        for code in sorted(codes):
            responses[str(code)] = {
                "description": ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        operation["responses"] = responses
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MultinotesAI API",
            "version": __version__,
            "description": "Authenticate with the session cookie (plus the X-CSRF-Token header on "
            "writes) or with `Authorization: Bearer <API key>`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API key. Its scopes limit what it may call: "
                    "read (every GET of your data), notes (writes to notes, folders, files, "
                    "shares, comments), chat (conversations and generation), admin (the admin "
                    "routes); account writes need read, notes and chat. Each operation lists "
                    "what it needs in x-api-key-scopes.",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "mn_session"},
            },
        },
    }
