"""The request pipeline, outermost first:

request context (id, logs, metrics) → errors → proxies → allowed hosts → CORS → body size →
auth + CSRF → rate limits → handler. Security headers are added on ``on_response_prepare``, so
every response gets them, errors and streams included.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import structlog
from aiohttp import BodyPartReader, ClientPayloadError, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from multinotes import links
from multinotes.errors import AppError, BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from multinotes.http.endpoint import spec_of
from multinotes.identity import scopes as key_scopes
from multinotes.identity import service as identity
from multinotes.identity.actor import ACTOR, Actor
from multinotes.keys import API_KEY_CACHE, DB, METRICS, RATE_LIMITS, SESSION_CACHE, SETTINGS
from multinotes.settings import Settings

log = structlog.get_logger("multinotes.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: Longer than any token we issue; a first part longer than this is not a token.
CSRF_TOKEN_MAX = 256
#: The rest of a streamed form (a route declared ``csrf_first_part``) whose first part, the
#: session's CSRF token, the CSRF check has read and verified; the handler reads on from it.
CHECKED_FORM: web.RequestKey[MultipartReader] = web.RequestKey("checked_form")


def session_cookie_name(settings: Settings) -> str:
    # The __Host- prefix pins the cookie to this exact host over HTTPS.
    return "__Host-mn_session" if settings.secure_cookies else "mn_session"


def wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/metrics"):
        return True
    accept = request.headers.get("Accept", "")
    return "text/html" not in accept and "application/json" in accept


def route_name(request: web.Request) -> str:
    info = request.match_info  # a dict of path variables: empty (falsy) for plain paths
    resource = info.route.resource if info is not None and info.route else None
    if resource is None or info.http_exception is not None:
        return "unmatched"
    return resource.canonical


# -- context ------------------------------------------------------------------------------------


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    # "client": the address the request came from (the proxy middleware puts the forwarded
    # one here), on every log line of the request; fail2ban's login filter reads it.
    structlog.contextvars.bind_contextvars(request_id=request_id, client=request.remote)
    started = time.perf_counter()
    status = 500
    # Code handed only the app (an event subscriber writing a mail) builds its links from it.
    current = links.current_request.set(request)
    try:
        response = await handler(request)
        status = response.status
        response.headers.setdefault("X-Request-ID", request_id)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        links.current_request.reset(current)
        elapsed = time.perf_counter() - started
        metrics = request.app[METRICS]
        route = route_name(request)
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(elapsed)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            ms=round(elapsed * 1000, 2),
            remote=request.remote,
        )


# -- errors -------------------------------------------------------------------------------------


def _render_error(
    request: web.Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    body["error"]["request_id"] = request.get(REQUEST_ID)
    if wants_json(request):
        return web.json_response(body, status=status, headers=headers)
    try:
        response = aiohttp_jinja2.render_template(
            "errors/error.html",
            request,
            {"status": status, "error": body["error"]},
            status=status,
        )
    except Exception:  # the error page itself must never fail
        response = web.Response(status=status, text=body["error"]["message"])
    if headers:
        response.headers.update(headers)
    return response


HTTP_CODES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorized", "Log in or send an API key to use this endpoint."),
    403: ("forbidden", "You are not allowed to do this."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("payload_too_large", "The request body is too large."),
}


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        if exc.status >= 500:
            log.error("app_error", code=exc.error_code, error=exc.message)
        return _render_error(request, exc.status, exc.to_dict(), exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like pass through untouched
            raise
        code, message = HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return _render_error(
            request, exc.status, {"error": {"code": code, "message": message}}, headers
        )
    except (ConnectionResetError, ClientPayloadError) as exc:
        if not _client_gone(request):  # an outgoing connection of ours broke: our 500
            return _internal_error(request, exc)
        # The client went away mid-request (an upload cancelled, a tab closed): its body is cut
        # off. Its doing, not ours, and logged as such; nobody is left to read the answer.
        return _render_error(
            request,
            400,
            {
                "error": {
                    "code": "incomplete_body",
                    "message": "The connection closed before the request body arrived.",
                }
            },
        )
    except Exception as exc:
        return _internal_error(request, exc)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _internal_error(request: web.Request, exc: Exception) -> web.Response:
    """Anything unexpected: log everything, tell the client nothing."""
    log.error(
        "unhandled_error",
        error=f"{type(exc).__name__}: {exc}",
        traceback="".join(traceback.format_exception(exc)),
    )
    return _render_error(
        request,
        500,
        {
            "error": {
                "code": "internal_error",
                "message": "Something went wrong on our side. Quote the request id when "
                "reporting it.",
            }
        },
    )


# -- proxies, hosts, CORS, size -----------------------------------------------------------------


def _trusted(remote: str | None, networks: list[Any]) -> bool:
    if not remote or not networks:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in net for net in networks)


def make_proxy_middleware(settings: Settings) -> Any:
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]

    @web.middleware
    async def proxies(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _trusted(request.remote, networks):
            return await handler(request)
        changes: dict[str, Any] = {}
        forwarded_for = request.headers.get("X-Forwarded-For")
        if forwarded_for:
            # Walk from the right: the first address that is not a trusted proxy is the client.
            hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
            client = hops[0] if hops else None
            for hop in reversed(hops):
                if not _trusted(hop, networks):
                    client = hop
                    break
            if client:
                changes["remote"] = client
                structlog.contextvars.bind_contextvars(client=client)
        proto = request.headers.get("X-Forwarded-Proto")
        if proto in ("http", "https"):
            changes["scheme"] = proto
        host = request.headers.get("X-Forwarded-Host")
        if host:
            changes["host"] = host.split(",")[0].strip()
        return await handler(request.clone(**changes) if changes else request)

    return proxies


def _host_allowed(host: str, allowed: list[str]) -> bool:
    if "*" in allowed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower()
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern.startswith(".") and (name.endswith(pattern) or name == pattern[1:]):
            return True
        if name == pattern:
            return True
    return False


def make_host_middleware(settings: Settings) -> Any:
    @web.middleware
    async def allowed_hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _host_allowed(request.host or "", settings.allowed_hosts):
            raise BadRequest("This host name is not served here.", code="bad_host")
        return await handler(request)

    return allowed_hosts


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def make_cors_middleware(settings: Settings) -> Any:
    allowed = {origin_of(o) for o in settings.cors_origins if o != "*"}

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not origin or not request.path.startswith("/api/") or origin.lower() not in allowed:
            return await handler(request)
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers.update(
                {
                    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-CSRF-Token",
                    "Access-Control-Max-Age": "600",
                }
            )
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        response.headers.update(headers)
        return response

    return cors


#: Room for multipart headers and boundaries on routes with their own body limit.
MULTIPART_SLACK = 64 * 1024


def streamed_body_spec(request: web.Request) -> Any:
    """The matched route's spec when it declares its own body limit, else None."""
    info = request.match_info
    spec = spec_of(info.handler) if info is not None and info.http_exception is None else None
    return spec if spec is not None and spec.body_limit else None


def make_size_middleware(settings: Settings) -> Any:
    @web.middleware
    async def body_size(request: web.Request, handler: Handler) -> web.StreamResponse:
        limit = settings.max_request_bytes
        spec = streamed_body_spec(request)
        if spec is not None and spec.body_limit:
            # The route streams its body and enforces its own limit; allow the multipart framing.
            limit = int(getattr(settings, spec.body_limit)) + MULTIPART_SLACK
        length = request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        return await handler(request)

    return body_size


# -- auth, CSRF, rate limits --------------------------------------------------------------------


def _same_origin(request: web.Request, origin: str, settings: Settings) -> bool:
    origin = origin.lower()
    own = {f"{request.scheme}://{request.host}".lower()}
    if settings.public_url:
        own.add(origin_of(settings.public_url))
    own.update(origin_of(o) for o in settings.cors_origins if o != "*")
    return origin in own


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    db = request.app[DB]
    actor: Actor | None = None
    authorization = request.headers.get("Authorization", "")
    if request.path == "/metrics":
        authorization = ""  # the metrics endpoint checks its own scrape token
    if authorization.lower().startswith("bearer "):
        cache = request.app.get(API_KEY_CACHE)
        key = authorization[7:].strip()
        actor = await (
            cache.actor(db, key) if cache is not None else identity.actor_from_api_key(db, key)
        )
        if actor is None:
            raise Unauthorized("The API key is invalid or revoked.", code="invalid_api_key")
    else:
        token = request.cookies.get(session_cookie_name(settings))
        if token:
            idle = timedelta(minutes=settings.session_idle_minutes)
            sessions = request.app.get(SESSION_CACHE)
            actor = await (
                sessions.actor(db, token, idle_timeout=idle)
                if sessions is not None
                else identity.actor_from_session(db, token, idle_timeout=idle)
            )
    request[ACTOR] = actor
    if actor is not None and actor.scopes is not None:
        _check_scopes(request, actor.scopes)
    if request.method not in SAFE_METHODS and (actor is None or actor.via == "session"):
        await _check_csrf(request, actor, settings)
    return await handler(request)


def _check_scopes(request: web.Request, held: frozenset[str]) -> None:
    """An API key calls only the routes its scopes allow (the table in ``identity.scopes``)."""
    info = request.match_info
    spec = spec_of(info.handler) if info is not None and info.http_exception is None else None
    resource = info.route.resource if spec is not None else None
    if spec is None or resource is None:
        return  # nothing matched: the 404 or 405 follows
    missing = key_scopes.required(request.method, resource.canonical, spec.access) - held
    if missing:
        names = " and ".join(f"'{s}'" for s in key_scopes.ordered(missing))
        raise Forbidden(
            f"This API key lacks the {names} scope{'s' if len(missing) > 1 else ''} this needs. "
            "Use a key with it, or create one on your account page.",
            code="insufficient_scope",
            fields={"scopes": f"Needs {', '.join(key_scopes.ordered(missing))}."},
        )


async def _check_csrf(request: web.Request, actor: Actor | None, settings: Settings) -> None:
    """Cookie-authenticated writes need the session's token (header or form field; for a
    streamed upload form, its first part) and, when the browser says where it comes from, a
    same-origin request. Bearer clients are unaffected."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not _same_origin(request, origin, settings):
        raise Forbidden("Cross-site request refused.", code="csrf_failed")
    if origin == "null":
        raise Forbidden("Cross-site request refused.", code="csrf_failed")
    if actor is None:
        return  # no ambient credentials to abuse; Origin and SameSite guard login forms
    sent = request.headers.get(CSRF_HEADER)
    streamed = streamed_body_spec(request)
    form: MultipartReader | None = None
    if sent is None and streamed is not None:
        # Routes that stream their body (uploads) need the header: parsing the form here would
        # read the whole body into memory. The one exception, a plain upload form, sends the
        # token as its first part: that part is read here, and nothing after it.
        if streamed.csrf_first_part and request.content_type == "multipart/form-data":
            sent, form = await _token_from_first_part(request)
    elif sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        try:
            value = (await request.post()).get(CSRF_FIELD)
        except (ValueError, HttpProcessingError):  # a form that cannot be parsed has no token
            value = None
        sent = value if isinstance(value, str) else None
    if not sent or not actor.csrf_token or not secrets.compare_digest(sent, actor.csrf_token):
        raise Forbidden(
            "Missing or wrong CSRF token. Reload the page and try again.", code="csrf_failed"
        )
    if form is not None:
        request[CHECKED_FORM] = form


async def _token_from_first_part(
    request: web.Request,
) -> tuple[str | None, MultipartReader | None]:
    """The ``csrf_token`` field when it is the form's first part, with the reader positioned
    after it; (None, None) otherwise. No other part is read: a token that comes after a file is
    refused before the file's bytes are read."""
    try:
        reader = await request.multipart()
        part = await reader.next()
    except (ValueError, HttpProcessingError):  # not multipart after all, or broken headers
        return None, None
    if not isinstance(part, BodyPartReader) or part.name != CSRF_FIELD or part.filename:
        return None, None
    data = b""
    try:
        while chunk := await part.read_chunk(CSRF_TOKEN_MAX):
            data += chunk
            if len(data) > CSRF_TOKEN_MAX:
                return None, None
    except ValueError:  # the body ends inside the token's part
        return None, None
    if not part.at_eof():  # ... or without the boundary after it
        return None, None
    try:
        return data.decode("ascii"), reader
    except UnicodeDecodeError:
        return None, None


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    spec = spec_of(request.match_info.handler) if request.match_info is not None else None
    klass = spec.rate if spec else None
    if not klass:
        return await handler(request)
    actor: Actor | None = request.get(ACTOR)
    identity_key = f"user:{actor.user_id}" if actor else f"ip:{request.remote}"
    tier = actor.rate_limit_tier if actor else "default"  # set per user by an admin
    limits = request.app[RATE_LIMITS]
    if spec is not None and spec.content_type == "text/event-stream":
        # A stream sends its headers before it ends, without these: the window is read (a
        # round trip in production, before the first token) only when the hit is refused,
        # or when the handler answered with a response that can still carry them.
        await limits.hit(klass, identity_key, tier, headers=False)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(await limits.window_headers(klass, identity_key, tier))
        return response
    headers = await limits.hit(klass, identity_key, tier)
    response = await handler(request)
    if headers and not response.prepared:
        response.headers.update(headers)
    return response


# -- security headers ---------------------------------------------------------------------------

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def csp_with_form_actions(origins: list[str]) -> str:
    """The page policy, widened so a form may post or redirect to ``origins`` too."""
    if not origins:
        return CSP
    return CSP.replace("form-action 'self'", "form-action 'self' " + " ".join(origins))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), geolocation=(), payment=()"
    if request.app[SETTINGS].is_production:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if request.path.startswith("/api/") and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    if REQUEST_ID in request:
        headers.setdefault("X-Request-ID", request[REQUEST_ID])
