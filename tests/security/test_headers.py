"""Security headers on every route (generated from the router), for anonymous visitors and a
logged-in admin, and on 404, 405, 413 and 500 answers, pages and API alike."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.identity import service as identity
from multinotes.keys import SETTINGS
from multinotes.testing import ApiClient
from tests.security.routes import ENDLESS_STREAMS, UNSAFE_METHODS, app_routes

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def problems(response: Any, production: bool, what: str) -> list[str]:
    found = []
    for name, value in HEADERS.items():
        if response.headers.get(name) != value:
            found.append(f"{what}: {name}={response.headers.get(name)!r}")
    csp = response.headers.get("Content-Security-Policy", "")
    if "frame-ancestors 'none'" not in csp or "'unsafe-inline'" in csp or "unsafe-eval" in csp:
        found.append(f"{what}: Content-Security-Policy={csp!r}")
    if "default-src 'self'" not in csp and "default-src 'none'" not in csp:
        found.append(f"{what}: Content-Security-Policy={csp!r}")
    if ("Strict-Transport-Security" in response.headers) is not production:
        found.append(f"{what}: Strict-Transport-Security")
    if not response.headers.get("X-Request-ID"):
        found.append(f"{what}: X-Request-ID")
    path = str(response.url.path)
    if path.startswith("/api/") and "no-store" not in response.headers.get("Cache-Control", ""):
        found.append(f"{what}: Cache-Control={response.headers.get('Cache-Control')!r}")
    return found


async def test_every_route_sends_the_security_headers(
    admin: ApiClient, make_client: Any, mode: str
):
    anonymous: ApiClient = await make_client()
    production = mode == "production"
    found: list[str] = []
    for route in app_routes(admin.app):
        for who, client in (("anonymous", anonymous), ("admin", admin)):
            # Unsafe methods without a CSRF token get 403: their answer needs headers too.
            response = await client.client.request(
                route.method,
                route.url(),
                json={} if route.method in UNSAFE_METHODS else None,
                allow_redirects=False,
            )
            if route.path in ENDLESS_STREAMS and response.status == 200:
                response.close()  # its headers are all there is to check; the body never ends
            else:
                await response.read()
            found += problems(response, production, f"{route} as {who} ({response.status})")
    static = await anonymous.get("/static/css/app.css")
    found += problems(static, production, "a static file")
    assert found == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no-such-page", 404),
        ("GET", "/api/no-such-endpoint", 404),
        ("GET", "/static/no-such-file.css", 404),
        ("PUT", "/api/me", 405),
        ("PUT", "/login", 405),
    ],
)
async def test_error_answers_send_the_security_headers(
    api: ApiClient, mode: str, method: str, path: str, status: int
):
    for accept in ("text/html", "application/json"):
        response = await api.request(method, path, headers={"Accept": accept})
        assert response.status == status
        assert problems(response, mode == "production", f"{method} {path}") == []


async def test_too_large_bodies_get_the_security_headers(api: ApiClient, mode: str):
    limit = api.app[SETTINGS].max_request_bytes
    response = await api.post("/api/auth/login", data=b"x" * (limit + 1))
    assert response.status == 413
    assert problems(response, mode == "production", "413") == []


async def test_unexpected_errors_send_the_security_headers(
    admin: ApiClient, mode: str, monkeypatch: pytest.MonkeyPatch
):
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(identity, "get_user", broken)
    for path, accept in (("/api/me", "application/json"), ("/account", "text/html")):
        response = await admin.get(path, headers={"Accept": accept})
        assert response.status == 500
        assert "boom" not in await response.text()
        assert problems(response, mode == "production", f"500 at {path}") == []
