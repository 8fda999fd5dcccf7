"""Responses every page builds: rendered templates, redirects that carry a one-time flash
message (POST-redirect-GET), and the same-site check for ``?next=``. The JSON API uses them too
where a browser is sent back to a page (the sign-in callbacks)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

import aiohttp_jinja2
from aiohttp import web

FLASH_COOKIE = "mn_flash"
#: Browsers keep a cookie of about 4 KB at most (name and attributes included).
FLASH_MAX_BYTES = 3500


def _flash_value(message: str, kind: str) -> str:
    return quote(json.dumps({"message": message, "kind": kind}))


def flash_fits(message: str, kind: str = "success") -> bool:
    """Whether the message is short enough for the flash cookie (for messages that list things)."""
    return len(_flash_value(message, kind)) <= FLASH_MAX_BYTES


def flash(response: web.StreamResponse, message: str, kind: str = "success") -> None:
    """A one-time message for the next page (POST-redirect-GET)."""
    response.set_cookie(
        FLASH_COOKIE,
        _flash_value(message, kind),
        max_age=60,
        httponly=True,
        samesite="Lax",
        path="/",
    )


def take_flash(request: web.Request, response: web.StreamResponse) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    response.del_cookie(FLASH_COOKIE, path="/")
    try:
        data = json.loads(unquote(raw))
        return {
            "message": str(data["message"]),
            "kind": "error" if data.get("kind") == "error" else "success",
        }
    except (ValueError, KeyError, TypeError):
        return None


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    context_flash = take_flash(request, response)
    if context_flash is not None:
        # Render again with the message; pages are cheap and this keeps templates simple.
        response = aiohttp_jinja2.render_template(
            template, request, {**context, "flash": context_flash}, status=status
        )
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(location: str, message: str | None = None, kind: str = "success") -> web.Response:
    # A plain response, not a raised HTTPSeeOther: cookies are set on it before it is sent.
    response = web.Response(status=303, headers={"Location": location})
    if message:
        flash(response, message, kind)
    return response


def safe_next(value: str | None) -> str:
    """Only same-site relative paths, so ``?next=`` cannot send people elsewhere."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
