"""HTTP basics: probes, metrics, the error format, security headers, hosts, proxies, CORS,
body limits, rate limits and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from multinotes import hookimpl
from multinotes.app import create_app
from multinotes.testing import ApiClient, app_client

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Exploding:
    """A plugin whose route fails in an unexpected way."""

    @hookimpl
    def register_routes(self, register: Any) -> None:
        async def boom(request: web.Request) -> web.Response:
            raise RuntimeError("database password is hunter2")

        register("GET", "/api/plugins/exploding/boom", boom, access="public")


@pytest.fixture
def plugins():
    return [("exploding", Exploding())]


def assert_security_headers(response: Any, production: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert ("Strict-Transport-Security" in response.headers) is production
    assert response.headers.get("X-Request-ID")


async def test_healthz(api: ApiClient):
    assert await api.get_json("/healthz") == {"status": "ok"}


async def test_readyz_checks_the_real_dependencies(make_settings, mode: str):
    # As served: embedded mode runs its scheduler in the web process (test settings turn it off).
    served = create_app(make_settings(embedded_scheduler=True), plugins=[])
    async with app_client(served) as api:
        response = await api.get("/readyz")
        body = await response.json()
    expected = {"database", "workers", "scheduler", "queue"}
    if mode == "embedded":  # the web process runs the tasks and the scheduler itself
        assert response.status == 200
        assert body["checks"] == dict.fromkeys(expected, "ok")
        return
    # Production: no `multinotes worker` or `scheduler` runs in this test (see
    # test_readiness_tasks.py for them), so only the workers and scheduler checks fail.
    assert response.status == 503
    assert set(body["checks"]) == expected | {"redis"}
    assert body["checks"]["database"] == body["checks"]["redis"] == "ok"
    assert body["checks"]["workers"] == "error: no worker is alive"
    assert body["checks"]["scheduler"] == "error: no scheduler is alive"


async def test_readyz_reports_a_broken_database(api: ApiClient, mode: str):
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from multinotes.db import create_engine
    from multinotes.keys import DB

    db = api.app[DB]
    url = db.engine.url
    unreachable = url.set(port=1) if mode == "production" else url.set(database="/no/such/x.db")
    working, working_sessions, working_reads = db.engine, db.sessions, db.read_sessions
    db.engine = create_engine(unreachable.render_as_string(hide_password=False))
    db.sessions = async_sessionmaker(db.engine, expire_on_commit=False)
    db.read_sessions = db.sessions  # the check reads (its own pool in production)
    try:
        response = await api.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"].startswith("error")
    finally:
        await db.engine.dispose()
        db.engine = working
        db.sessions, db.read_sessions = working_sessions, working_reads


async def test_metrics_count_requests_by_route(make_settings):
    app = create_app(make_settings(metrics_token="scrape-token-123"), plugins=[])
    async with app_client(app) as api:
        await api.get("/healthz")
        await api.get("/api/me")
        response = await api.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
        text = await response.text()
    assert response.status == 200
    assert 'multinotes_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/me",status="401"' in text
    assert "multinotes_http_request_duration_seconds_bucket" in text
    assert "multinotes_streams_in_flight" in text


async def test_metrics_token_guards_metrics_when_set(make_settings):
    app = create_app(make_settings(metrics_token="scrape-token-123"), plugins=[])
    async with app_client(app) as api:
        assert (await api.get("/metrics")).status == 401
        ok = await api.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
        assert ok.status == 200


async def test_every_route_sends_security_headers(api: ApiClient, mode: str):
    paths = [
        "/",
        "/login",
        "/register",
        "/healthz",
        "/api/openapi.json",
        "/api/docs",
        "/api/me",
        "/api/nope",
        "/nope",
        "/static/css/app.css",
        "/api/plugins/exploding/boom",
        "/admin/plugins",
    ]
    for path in paths:
        response = await api.get(path, allow_redirects=False)
        assert_security_headers(response, production=mode == "production")


async def test_api_errors_are_json_problems(api: ApiClient):
    missing = await api.get("/api/does-not-exist")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    wrong_method = await api.request("PUT", "/api/me")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["code"] == "method_not_allowed"


async def test_unexpected_errors_are_500_with_a_request_id_and_no_internals(api: ApiClient):
    response = await api.get("/api/plugins/exploding/boom")
    assert response.status == 500
    body = await response.json()
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    text = await response.text()
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text


async def test_browsers_get_html_error_pages(api: ApiClient):
    response = await api.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status == 404
    assert response.content_type == "text/html"
    assert "Page not found" in await response.text()


async def test_pages_for_users_redirect_anonymous_visitors_to_login(api: ApiClient):
    response = await api.get("/account", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/account"


async def test_unknown_hosts_are_refused_when_hosts_are_listed(make_settings):
    app = create_app(make_settings(allowed_hosts=["notes.example.com"]), plugins=[])
    async with app_client(app) as api:
        refused = await api.get("/healthz")
        assert refused.status == 400
        assert (await refused.json())["error"]["code"] == "bad_host"
        ok = await api.get("/healthz", headers={"Host": "notes.example.com"})
        assert ok.status == 200


async def test_forwarded_headers_are_trusted_only_from_configured_proxies(make_settings):
    # The rate limiter keys anonymous clients by address, so it shows which address was used.
    trusted = create_app(
        make_settings(trusted_proxies=["127.0.0.1/32"], rate_limit_api="2/minute"), plugins=[]
    )
    async with app_client(trusted) as api:
        spoofed = [
            await api.get("/api/me", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(3)
        ]
        assert [r.status for r in spoofed] == [401, 401, 401]  # three clients, none limited
    untrusted = create_app(make_settings(rate_limit_api="2/minute"), plugins=[])
    async with app_client(untrusted) as api:
        spoofed = [
            await api.get("/api/me", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(3)
        ]
        assert [r.status for r in spoofed] == [401, 401, 429]  # one client: the header ignored


async def test_cors_allows_only_listed_origins(make_settings):
    app = create_app(make_settings(cors_origins=["https://app.example.com"]), plugins=[])
    async with app_client(app) as api:
        preflight = await api.request(
            "OPTIONS",
            "/api/keys",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        other = await api.request(
            "OPTIONS",
            "/api/keys",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert "Access-Control-Allow-Origin" not in other.headers
        simple = await api.get("/healthz", headers={"Origin": "https://evil.example.com"})
        assert "Access-Control-Allow-Origin" not in simple.headers


async def test_oversized_bodies_are_refused(make_settings):
    app = create_app(make_settings(max_request_bytes=1024), plugins=[])
    async with app_client(app) as api:
        response = await api.post(
            "/api/auth/register", {"email": "a@example.com", "password": "x" * 5000, "name": "A"}
        )
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_auth_endpoints_are_rate_limited_with_retry_after(make_settings):
    app = create_app(make_settings(rate_limit_auth="3/minute"), plugins=[])
    async with app_client(app) as api:
        statuses = []
        for _ in range(4):
            response = await api.post(
                "/api/auth/login", {"email": "x@example.com", "password": "wrong-password"}
            )
            statuses.append(response.status)
        assert statuses == [401, 401, 401, 429]
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == "0"
        assert (await response.json())["error"]["code"] == "rate_limited"


async def test_openapi_describes_every_json_endpoint(api: ApiClient):
    document = await api.get_json("/api/openapi.json")
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    for route in api.app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD" or not resource.canonical.startswith("/api/"):
            continue
        if resource.canonical == "/api/docs":
            continue  # the HTML page that renders this document
        assert (resource.canonical, route.method) in documented, resource.canonical
    register = document["paths"]["/api/auth/register"]["post"]
    schema = register["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"email", "password", "name"}
    assert "201" in register["responses"] and "422" in register["responses"]
    assert document["paths"]["/api/admin/plugins"]["get"]["x-access"] == "admin"


async def test_swagger_ui_is_served_locally(api: ApiClient):
    page = await (await api.get("/api/docs")).text()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "https://" not in page.split("<body>")[1].split("</footer>")[0]
    bundle = await api.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status == 200
