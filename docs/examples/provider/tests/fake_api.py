"""A local fake of the Acme API that speaks its wire protocol, so the tests need no
network and no key."""

from __future__ import annotations

import json

from aiohttp import web

API_KEY = "acme-test-key-0123456789"


class FakeAcme:
    def __init__(self) -> None:
        #: Every request body received, in order.
        self.requests: list[dict[str, object]] = []
        #: Scripted failures for the next requests: "401", "429", "500".
        self.next_failures: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/complete", self.complete)
        return app

    async def complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        failure = self.next_failures.pop(0) if self.next_failures else None
        if failure == "429":
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "7"}
            )
        if failure is not None:
            return web.json_response({"error": failure}, status=int(failure))
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"error": "bad key"}, status=401)
        prompt = body["messages"][-1]["content"]
        words = f"You said: {prompt}".split(" ")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for index, word in enumerate(words):
            text = word if index == 0 else " " + word
            await response.write(json.dumps({"text": text}).encode() + b"\n")
        usage = {"input_tokens": len(prompt.split()), "output_tokens": len(words)}
        await response.write(json.dumps({"usage": usage}).encode() + b"\n")
        await response.write_eof()
        return response
