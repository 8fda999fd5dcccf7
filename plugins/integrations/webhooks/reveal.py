"""Showing a new signing secret once across a redirect (post/redirect/get).

The page that creates an endpoint (or rotates its secret) redirects, so reloading the next page
neither creates a second endpoint nor rotates again. The secret must still be shown once, on that
next page: it travels in a short-lived cookie, encrypted and authenticated under the instance's
master keys (never in the clear, in a URL or in a log), bound to the person and the endpoint,
and the page that shows it deletes it, so a reload shows it no more.
"""

from __future__ import annotations

import json
import time
from typing import Literal

from aiohttp import web

from multinotes.plugin import PluginContext

COOKIE = "mn_webhook_secret"
#: Long enough to follow a redirect on a slow connection; a secret not shown by then is lost
#: (rotate it again).
SECONDS = 300
Kind = Literal["created", "rotated"]


def remember(
    ctx: PluginContext,
    request: web.Request,
    response: web.StreamResponse,
    *,
    user_id: str,
    endpoint_id: str,
    secret: str,
    kind: Kind,
) -> None:
    payload = {
        "user": user_id,
        "endpoint": endpoint_id,
        "secret": secret,
        "kind": kind,
        "until": int(time.time()) + SECONDS,
    }
    response.set_cookie(
        COOKIE,
        ctx.encrypt(json.dumps(payload)),
        max_age=SECONDS,
        path="/integrations",
        httponly=True,
        secure=request.secure,
        samesite="Strict",
    )


def take(
    ctx: PluginContext,
    request: web.Request,
    *,
    user_id: str,
    kind: Kind,
    endpoint_id: str | None = None,
) -> tuple[str, str] | None:
    """``(endpoint_id, secret)`` when the request carries a secret for this person, of this
    kind (and endpoint), still fresh; the page that shows it then calls ``forget``. Anything
    else (none, someone else's, tampered with, expired) shows nothing."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        payload = json.loads(ctx.decrypt(token))
        mine = payload["user"] == user_id and payload["kind"] == kind
        fresh = int(payload["until"]) >= time.time()
        found = (str(payload["endpoint"]), str(payload["secret"]))
    except Exception:  # not ours, tampered with, or encrypted under a retired key
        return None
    if not (mine and fresh) or (endpoint_id is not None and found[0] != endpoint_id):
        return None
    return found


def forget(response: web.StreamResponse) -> None:
    """Shown once: the response that shows the secret deletes the cookie."""
    response.del_cookie(COOKIE, path="/integrations")
