"""A local fake of Slack for the Slack app's tests: the parts of the Web API it calls, the
``response_url`` endpoints, the OAuth v2 consent page, and Slack's side of the conversation:
it *signs and sends* slash commands, button presses and Events API callbacks to the app like
Slack does.

- ``GET /oauth/v2/authorize``: the consent page, approved at once: redirects to the
  ``redirect_uri`` with a one-time ``code`` and the ``state`` it was given.
- ``POST /api/oauth.v2.access``: the code (once, with the same ``redirect_uri``) and the app's
  credentials (HTTP Basic, as slack-sdk sends them, or form fields) for a bot token; Slack's
  ``{"ok": false, "error": "invalid_code"}`` otherwise.
- ``POST /api/chat.postMessage``: needs ``Authorization: Bearer <bot token>``
  (``not_authed``/``invalid_auth`` otherwise); kept in ``messages``.
- ``POST /response/<id>``: a command's or a button's ``response_url``; the JSON body is kept in
  ``responses``. ``expire_responses = True`` makes them answer 404 ``expired_url`` as Slack does
  after 30 minutes.

Requests to the app carry ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=<hex
HMAC-SHA256 of "v0:<timestamp>:<body>" under the signing secret>``, Slack's scheme.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web


def signature(signing_secret: str, timestamp: int, body: bytes) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Sent:
    """What the app answered to something the fake sent it."""

    status: int
    body: Any


@dataclass
class FakeSlack:
    client_id: str = "1111.2222"
    client_secret: str = "slack-client-secret"
    signing_secret: str = "8f742231b10e8888abcd99yyyzzz85a5"
    team_id: str = "T0TEAM1"
    team_name: str = "Acme"
    bot_user_id: str = "U0BOT"
    #: The Slack user who approves an install (linked to the installing account).
    installer: str = "U0INSTALL"
    url: str = ""
    bot_tokens: set[str] = field(default_factory=set)
    codes: dict[str, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    expire_responses: bool = False
    calls: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth/v2/authorize", self._authorize)
        app.router.add_post("/api/oauth.v2.access", self._oauth_access)
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post("/response/{id}", self._response_url)
        return app

    # -- the app calls Slack ---------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        self.calls.append("authorize")
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id")
        code = secrets.token_hex(8)
        self.codes[code] = query.get("redirect_uri", "")
        target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        raise web.HTTPFound(target)

    def _client_credentials(self, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user, password
        return form.get("client_id", ""), form.get("client_secret", "")

    async def _oauth_access(self, request: web.Request) -> web.Response:
        self.calls.append("oauth.v2.access")
        form = dict(parse_qsl(await request.text()))
        if self._client_credentials(request, form) != (self.client_id, self.client_secret):
            return web.json_response({"ok": False, "error": "invalid_client"})
        code = form.get("code", "")
        if code not in self.codes or self.codes.pop(code) != form.get("redirect_uri", ""):
            return web.json_response({"ok": False, "error": "invalid_code"})
        token = "xoxb-" + secrets.token_hex(12)
        self.bot_tokens.add(token)
        return web.json_response(
            {
                "ok": True,
                "access_token": token,
                "token_type": "bot",
                "scope": "commands,chat:write",
                "bot_user_id": self.bot_user_id,
                "app_id": "A0APP",
                "team": {"name": self.team_name, "id": self.team_id},
                "enterprise": None,
                "authed_user": {"id": self.installer},
                "is_enterprise_install": False,
            }
        )

    async def _post_message(self, request: web.Request) -> web.Response:
        self.calls.append("chat.postMessage")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return web.json_response({"ok": False, "error": "not_authed"})
        if auth[len("Bearer ") :] not in self.bot_tokens:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.content_type == "application/json":
            body = await request.json()
        else:
            body = dict(parse_qsl(await request.text()))
        if not body.get("channel"):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        self.messages.append(body)
        ts = f"{time.time():.6f}"
        return web.json_response({"ok": True, "channel": body["channel"], "ts": ts})

    async def _response_url(self, request: web.Request) -> web.Response:
        self.calls.append("response_url")
        if self.expire_responses:
            return web.Response(status=404, text="expired_url")
        body = await request.json()
        self.responses.append({"id": request.match_info["id"], **body})
        return web.Response(text="ok")

    # -- Slack calls the app ----------------------------------------------------------------------

    def response_url(self) -> str:
        return f"{self.url}/response/{secrets.token_hex(6)}"

    def headers(self, body: bytes, *, timestamp: int | None = None, secret: str | None = None):
        ts = int(time.time()) if timestamp is None else timestamp
        return {
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature(secret or self.signing_secret, ts, body),
        }

    async def _send(self, target: str, body: bytes, content_type: str, **signing: Any) -> Sent:
        headers = {"Content-Type": content_type, **self.headers(body, **signing)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=body, headers=headers) as response,
        ):
            text = await response.text()
            try:
                parsed: Any = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return Sent(response.status, parsed)

    def command_form(
        self,
        text: str,
        *,
        user_id: str = "U0ANN",
        user_name: str = "ann",
        trigger_id: str | None = None,
        channel_id: str = "C0GENERAL",
    ) -> dict[str, str]:
        return {
            "token": "deprecated-verification-token",
            "team_id": self.team_id,
            "team_domain": self.team_name.lower(),
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": user_name,
            "command": "/multinotes",
            "text": text,
            "api_app_id": "A0APP",
            "is_enterprise_install": "false",
            "response_url": self.response_url(),
            "trigger_id": trigger_id or f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
        }

    async def command(self, target: str, text: str, **kw: Any) -> Sent:
        """Run ``/multinotes <text>`` as a user: the signed form POST Slack makes."""
        signing = {k: kw.pop(k) for k in ("timestamp", "secret") if k in kw}
        return await self.send_form(target, self.command_form(text, **kw), **signing)

    async def send_form(self, target: str, form: dict[str, str], **signing: Any) -> Sent:
        body = urlencode(form).encode()
        return await self._send(target, body, "application/x-www-form-urlencoded", **signing)

    def button_payload(
        self, value: str, *, user_id: str = "U0ANN", action_id: str = "save_note.0"
    ) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": self.team_name.lower()},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": "A0APP",
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
            "channel": {"id": "C0GENERAL", "name": "general"},
            "response_url": self.response_url(),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": secrets.token_hex(3),
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    async def press(self, target: str, value: str, **kw: Any) -> Sent:
        """Press a message's button: Slack's signed interactivity POST (``payload=<json>``)."""
        form = {"payload": json.dumps(self.button_payload(value, **kw))}
        return await self.send_form(target, form)

    async def shortcut(
        self, target: str, text: str, *, user_id: str = "U0ANN", ts: str = "1700000000.000100"
    ) -> Sent:
        """Use the "Save to MultinotesAI" message shortcut on a message of the channel."""
        payload = {
            "type": "message_action",
            "callback_id": "save_to_multinotes",
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
            "team": {"id": self.team_id, "domain": self.team_name.lower()},
            "user": {"id": user_id, "name": user_id.lower()},
            "channel": {"id": "C0GENERAL", "name": "general"},
            "message": {"type": "message", "user": "U0OTHER", "ts": ts, "text": text},
            "response_url": self.response_url(),
        }
        return await self.send_form(target, {"payload": json.dumps(payload)})

    async def event(self, target: str, payload: dict[str, Any]) -> Sent:
        """An Events API callback (JSON), signed."""
        return await self._send(target, json.dumps(payload).encode(), "application/json")
