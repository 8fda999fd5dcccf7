"""The app's routes as the security tests walk them: generated from the router, so a new
endpoint is covered (or makes a test fail until someone says how to cover it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from multinotes.http.endpoint import EndpointSpec, spec_of

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: A well-formed id of nothing (ids are 32 hex characters).
NO_SUCH_ID = "0" * 32
#: Values for path parameters that are not object ids (they must match the route's pattern).
PARAM_SAMPLES = {"doc": "terms", "provider": "google", "name": "demo"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # canonical: /api/conversations/{id}
    resource: web.AbstractResource
    spec: EndpointSpec

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)", self.path)

    @property
    def access(self) -> str:
        return self.spec.access

    def url(self, **values: str) -> str:
        filled = {p: values.get(p, PARAM_SAMPLES.get(p, NO_SUCH_ID)) for p in self.params}
        return str(self.resource.url_for(**filled))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


#: GET routes whose answer streams until the client leaves: a walk reads their status and
#: headers, then hangs up instead of waiting for a body that never ends.
ENDLESS_STREAMS = frozenset({"/api/live/sse"})


def app_routes(app: web.Application) -> list[Route]:
    """Every route with an access declaration (static files aside), HEAD folded into GET."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method == "HEAD":
            continue
        spec = spec_of(route.handler)
        assert spec is not None, f"{route.method} {resource.canonical} declares no access"
        found.append(Route(route.method, resource.canonical, resource, spec))
    return found


def error_code(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code"))
    return None
