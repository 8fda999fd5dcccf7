"""Error tracking with Sentry (or anything that speaks its protocol), when a DSN is set.

What is sent, on purpose: the exception with its stack (code, no local variables), the request
id and the user id (never the email), the route, the method and path, a few harmless headers,
the release (``multinotes@<version>``) and the environment. What is never sent: cookies, the
Authorization header, query strings (links carry tokens), request bodies (prompts), local
variables (they hold prompts, passwords and keys), breadcrumbs (log lines and outgoing URLs),
and anything that looks like an email address or one of our credentials in a message.

Sentry's client is process-wide by nature: the app that set it up closes it at cleanup.
``sentry_sdk`` (with urllib3, ~4 MB) is imported only when a DSN is set (issue #17: idle memory).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from multinotes import __version__
from multinotes.errors import AppError
from multinotes.identity.actor import ACTOR
from multinotes.keys import SETTINGS
from multinotes.logs import REDACTED, SENSITIVE_VALUES
from multinotes.settings import Settings

if TYPE_CHECKING:
    import sentry_sdk

log = structlog.get_logger(__name__)

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
#: Request headers worth having on an error report; every other one is dropped.
KEPT_HEADERS = {"accept", "content-type", "content-length", "user-agent", "host", "x-request-id"}


def scrub_text(text: str) -> str:
    return EMAIL.sub("[email]", SENSITIVE_VALUES.sub(REDACTED, text))


def scrub_event(event: Any, _hint: Any = None) -> Any:
    """``before_send``: keep what identifies the failure, drop what identifies or quotes a
    person."""
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {
            "method": request.get("method"),
            "url": str(request.get("url", "")).split("?", 1)[0],
            "headers": {
                k: v
                for k, v in (request.get("headers") or {}).items()
                if str(k).lower() in KEPT_HEADERS
            },
        }
    user = event.get("user")
    event["user"] = {"id": user["id"]} if isinstance(user, dict) and user.get("id") else {}
    event.pop("breadcrumbs", None)
    event.pop("extra", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = scrub_text(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = scrub_text(logentry[key])
        logentry.pop("params", None)
    if isinstance(event.get("message"), str):
        event["message"] = scrub_text(event["message"])
    return event


def init_sentry(settings: Settings) -> sentry_sdk.Client | None:
    if settings.sentry_dsn is None:
        return None
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=f"multinotes@{__version__}",
        environment=settings.sentry_environment or settings.mode,
        # sentry-sdk 3 collects most request data unless told otherwise: nothing personal
        # leaves (no user, cookies, headers, bodies, query strings, frame variables, SQL
        # parameters or model prompts); scrub_event still cleans what remains.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "off"}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "stack_frame_variables": False,
            "database_query_data": False,
            "gen_ai": {"inputs": False, "outputs": False},
            "mcp": {"inputs": False, "outputs": False},
            "graphql": {"document": False, "variables": False},
            "queues": False,
        },
        max_request_body_size="never",
        max_breadcrumbs=0,
        before_send=scrub_event,
        traces_sample_rate=settings.sentry_traces_sample_rate or None,
        integrations=[AioHttpIntegration()],
    )
    client = sentry_sdk.get_client()
    return client if isinstance(client, sentry_sdk.Client) else None


def _reportable(exc: BaseException) -> bool:
    """Bugs, not outcomes: a user's mistake (4xx) or a client gone is not an error to track."""
    if isinstance(exc, AppError):
        return exc.status >= 500 and exc.status not in (502, 503, 504)
    return not isinstance(exc, web.HTTPException | ConnectionResetError)


@web.middleware
async def report_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Right inside the error middleware (which turns every exception into a response), so
    it sees what any later middleware or handler raises: report the unexpected ones with this
    request's id and, once authentication has run, the user id."""
    import sentry_sdk

    from multinotes.http.middleware import REQUEST_ID

    scope = sentry_sdk.get_isolation_scope()  # per request (the aiohttp integration forks it)
    request_id = request.get(REQUEST_ID)
    if request_id:
        scope.set_tag("request_id", request_id)
    try:
        return await handler(request)
    except Exception as exc:
        if _reportable(exc):
            actor = request.get(ACTOR)
            if actor is not None:
                scope.set_user({"id": actor.user_id})
            sentry_sdk.capture_exception(exc)
        raise


def setup_error_tracking(app: web.Application) -> None:
    """Report unexpected exceptions to Sentry when ``MULTINOTES_SENTRY_DSN`` is set."""
    settings = app[SETTINGS]
    if settings.sentry_dsn is None:
        return
    from multinotes.http.middleware import errors

    middlewares = list(app.middlewares)
    position = middlewares.index(errors) + 1 if errors in middlewares else len(middlewares)
    app.middlewares.insert(position, report_errors)

    async def sentry_client(app: web.Application) -> AsyncIterator[None]:
        import sentry_sdk

        client = init_sentry(settings)
        log.info("error_tracking_on", environment=settings.sentry_environment or settings.mode)
        yield
        if client is not None and sentry_sdk.get_client() is client:
            # Sends what is queued; in a thread, since the transport is blocking.
            await asyncio.to_thread(client.close, 5)
            sentry_sdk.get_global_scope().set_client(None)

    app.cleanup_ctx.append(sentry_client)
