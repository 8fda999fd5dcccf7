"""Local webhook receivers for the webhooks plugin's tests, speaking plain HTTP on loopback.

One server, one behaviour per path, so a test points an endpoint at what it needs:

* ``/verify``: checks every delivery with the ``standardwebhooks`` library (the receivers'
  official one) against ``secrets`` and answers 204, or 401 for a bad signature;
* ``/flaky``: answers 500 to the first ``fail_times`` requests, then 200;
* ``/slow``: answers after ``delay`` seconds (longer than the sender's timeout: a timeout);
* ``/redirect``: answers 302 to the cloud metadata address (must not be followed).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    verified_with: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    secrets: list[str] = field(default_factory=list)
    fail_times: int = 0
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/verify", self.verify)
        app.router.add_post("/flaky", self.flaky)
        app.router.add_post("/slow", self.slow)
        app.router.add_post("/redirect", self.redirect)
        return app

    async def _record(self, request: web.Request) -> Received:
        item = Received(request.path, dict(request.headers), (await request.read()).decode())
        self.received.append(item)
        return item

    async def verify(self, request: web.Request) -> web.Response:
        item = await self._record(request)
        for secret in self.secrets:
            try:
                Webhook(secret).verify(item.body, item.headers)
            except WebhookVerificationError:
                continue
            item.verified_with = secret
            return web.Response(status=204)
        return web.Response(status=401, text="bad signature")

    async def flaky(self, request: web.Request) -> web.Response:
        await self._record(request)
        if len([r for r in self.received if r.path == "/flaky"]) <= self.fail_times:
            return web.Response(status=500, text="receiver is down")
        return web.json_response({"ok": True})

    async def slow(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(self.delay)
        return web.Response(status=200)

    async def redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def __aenter__(self) -> WebhookReceiver:
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.close()
