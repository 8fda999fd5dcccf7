"""Absolute links to this site, also for code that has no request at hand: an event subscriber
writing a mail runs inside the request that published the event, but is handed only the app.

The base is ``public_url`` when set (set it in production); else the address the server listens
on, read from the socket the current request arrived on (``current_request``, set by the
request middleware); else, outside any request, the configured listen address. Never from
request headers: a forged ``Host`` or ``X-Forwarded-Host`` would otherwise send a
password-reset token to another site.
"""

from __future__ import annotations

from contextvars import ContextVar

from aiohttp import web

from multinotes.keys import SETTINGS
from multinotes.settings import Settings

#: The request being handled in this task (the request middleware sets and resets it).
current_request: ContextVar[web.Request | None] = ContextVar(
    "multinotes_current_request", default=None
)


def _listen_address(settings: Settings, scheme: str = "http") -> str:
    host, port = settings.host, settings.port
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def request_base_url(request: web.Request) -> str:
    """Where links to this site point, for a request (see the module's docstring)."""
    settings = request.app[SETTINGS]
    if settings.public_url:
        return settings.public_url.rstrip("/")
    transport = request.transport
    scheme = "https" if transport is not None and transport.get_extra_info("sslcontext") else "http"
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = str(sockname[0]), int(sockname[1])
    else:  # a Unix socket, or a connection already gone: the configured listen address
        return _listen_address(settings, scheme)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def base_url(app: web.Application) -> str:
    """Where links to this site point, from anywhere: the current request's base when there is
    one, else ``public_url`` or the configured listen address."""
    request = current_request.get()
    if request is not None and request.app is app:
        return request_base_url(request)
    settings = app[SETTINGS]
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return _listen_address(settings)


def site_url(app: web.Application, path: str) -> str:
    """``path`` (starting with ``/``) as an absolute link to this site."""
    if not path.startswith("/"):
        raise ValueError("path must start with '/'")
    return base_url(app) + path
