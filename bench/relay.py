"""The baseline: a bare aiohttp relay with nothing of MultinotesAI in it.

``POST /relay`` with ``{"model": ..., "content": ...}`` opens the upstream's chat completion
stream with aiohttp's client (one shared session, so connections are kept alive) and relays each
upstream ``data:`` line to the caller as an SSE ``delta`` event. No auth, no database, no JSON
decoding of the chunks: whatever the pipeline costs on top of this is MultinotesAI's.

Run: ``python bench/relay.py --port 18002 --upstream http://127.0.0.1:18001``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    payload = {
        "model": body.get("model", "r0"),
        "messages": [{"role": "user", "content": body.get("content", "")}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    url = request.app[UPSTREAM] + "/v1/chat/completions"
    async with request.app[SESSION].post(url, json=payload) as upstream:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        async for line in upstream.content:
            if line.startswith(b"data: "):
                await response.write(b"event: delta\n" + line + b"\n")
        await response.write(b"event: end\ndata: {}\n\n")
        await response.write_eof()
    return response


def make_app(upstream: str) -> web.Application:
    async def session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as client:
            app[SESSION] = client
            yield

    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session)
    app.router.add_post("/relay", relay)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare aiohttp SSE relay (benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18002)
    parser.add_argument("--upstream", default="http://127.0.0.1:18001")
    args = parser.parse_args()
    app = make_app(args.upstream)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
