"""A local webhook receiver that checks the signature the way a real one would."""

from __future__ import annotations

import asyncio
import hmac

import multinotes_hookpost
from aiohttp import web


class FakeReceiver:
    def __init__(self, secret: str, status: int = 204) -> None:
        self.secret = secret
        self.status = status
        #: (verified, JSON body) of every post received.
        self.posts: list[tuple[bool, dict[str, object]]] = []
        self.arrived = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = multinotes_hookpost.signature(
            self.secret, request.headers["X-Hookpost-Timestamp"], body
        )
        verified = hmac.compare_digest(request.headers.get("X-Hookpost-Signature", ""), expected)
        self.posts.append((verified, await request.json()))
        self.arrived.set()
        return web.Response(status=self.status)
