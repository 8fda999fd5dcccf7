"""A local fake of Discord for the Discord app's tests: the parts of the HTTP API the app calls,
and Discord's side: it *signs and sends* interactions (PING, the ``/ask`` application command,
button presses) to the app's Interactions Endpoint like Discord does, with an Ed25519 key of its
own (``public_key`` is what the app is configured with).

- ``PATCH /api/v10/webhooks/<application>/<token>/messages/@original``: edits the deferred reply
  of an interaction this fake sent (Discord's 404 ``Unknown Webhook``, code 10015, for another
  token); kept in ``edits``.
- ``PUT /api/v10/applications/<application>/commands``: the bulk overwrite of global commands,
  with ``Authorization: Bot <token>`` (401 otherwise); kept in ``commands``.

Interactions carry ``X-Signature-Ed25519`` (hex signature of timestamp + body) and
``X-Signature-Timestamp``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

API = "/api/v10"


def snowflake() -> str:
    return str(secrets.randbelow(10**18) + 10**18)


@dataclass
class Sent:
    status: int
    body: Any


@dataclass
class FakeDiscord:
    application_id: str = "1100000000000000001"
    bot_token: str = "discord-bot-token"
    guild_id: str = "1200000000000000001"
    url: str = ""
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    tokens: set[str] = field(default_factory=set)
    edits: list[dict[str, Any]] = field(default_factory=list)
    commands: list[Any] = field(default_factory=list)

    @property
    def public_key(self) -> str:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    @property
    def api_base(self) -> str:
        return self.url + API

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_patch(
            API + "/webhooks/{application}/{token}/messages/@original", self._edit_original
        )
        app.router.add_put(API + "/applications/{application}/commands", self._put_commands)
        return app

    # -- the app calls Discord --------------------------------------------------------------------

    async def _edit_original(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if request.match_info["application"] != self.application_id or token not in self.tokens:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        body = await request.json()
        self.edits.append({"token": token, **body})
        return web.json_response({"id": snowflake(), "content": body.get("content", "")})

    async def _put_commands(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bot {self.bot_token}":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        if request.match_info["application"] != self.application_id:
            return web.json_response({"message": "Unknown Application", "code": 10002}, status=404)
        body = await request.json()
        self.commands.append(body)
        return web.json_response(
            [{**c, "id": snowflake(), "application_id": self.application_id} for c in body]
        )

    # -- Discord calls the app --------------------------------------------------------------------

    def headers(
        self, body: bytes, *, timestamp: int | None = None, key: Ed25519PrivateKey | None = None
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = (key or self.key).sign(ts.encode() + body).hex()
        return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": ts}

    async def send(self, target: str, payload: dict[str, Any], **signing: Any) -> Sent:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **self.headers(body, **signing)}
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

    def _base(self, kind: int, user_id: str, username: str) -> dict[str, Any]:
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return {
            "id": snowflake(),
            "application_id": self.application_id,
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": self.guild_id,
            "channel_id": "1300000000000000001",
            "member": {"user": {"id": user_id, "username": username}, "roles": []},
        }

    def ask_payload(
        self,
        prompt: str,
        *,
        model: str | None = None,
        user_id: str = "1400000000000000001",
        username: str = "ann",
    ) -> dict[str, Any]:
        options = [{"name": "prompt", "type": 3, "value": prompt}]
        if model is not None:
            options.append({"name": "model", "type": 3, "value": model})
        return {
            **self._base(2, user_id, username),
            "data": {"id": snowflake(), "name": "ask", "type": 1, "options": options},
        }

    async def ping(self, target: str, **signing: Any) -> Sent:
        return await self.send(
            target,
            {
                "id": snowflake(),
                "application_id": self.application_id,
                "type": 1,
                "token": "ping",
                "version": 1,
            },
            **signing,
        )

    async def ask(self, target: str, prompt: str, **kw: Any) -> Sent:
        """``/ask prompt:<prompt> [model:<model>]`` from a member of the server."""
        signing = {k: kw.pop(k) for k in ("timestamp", "key") if k in kw}
        return await self.send(target, self.ask_payload(prompt, **kw), **signing)

    async def press(
        self, target: str, custom_id: str, *, user_id: str = "1400000000000000001"
    ) -> Sent:
        """A press of a button (a message component) on the app's reply."""
        payload = {
            **self._base(3, user_id, "presser"),
            "data": {"custom_id": custom_id, "component_type": 2},
            "message": {"id": snowflake(), "content": ""},
        }
        return await self.send(target, payload)
