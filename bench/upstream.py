"""A lean fake OpenAI upstream for the streaming benchmarks.

``POST /v1/chat/completions`` answers in the OpenAI SSE wire format: a role chunk, ``--chunks``
content chunks (``tok0 ``, ``tok1 ``, ...), a finish chunk, a usage chunk and ``[DONE]``. The model
name sets the pace: ``r0`` streams as fast as the socket takes it, ``r50`` sends 50 content
chunks a second, ``r10`` ten, and so on (any other name: as fast as possible).

The whole answer is known in advance, so it is sent with a ``Content-Length`` and each frame is
written straight to the socket. Paced streams share one ticker over a heap of due times instead
of one ``asyncio.sleep`` per chunk per stream: hundreds of streams cost this process little CPU,
and it shares the machine with the server under test.

Run: ``python bench/upstream.py --port 18001 [--chunks 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import time
from asyncio import Future, Transport

from aiohttp import web

#: The ticker's granularity: due frames are written at most this late.
TICK = 0.001


def _chunk(ident: str, model: str, choices: list[dict[str, object]], **extra: object) -> bytes:
    body = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def frames(ident: str, model: str, count: int) -> list[bytes]:
    """Every frame of one answer: role + first content, the other contents, then finish + usage +
    DONE (``count`` + 1 frames at most)."""
    out = []
    for i in range(count):
        delta = {"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}
        out.append(_chunk(ident, model, [delta]))
    # The role chunk goes out with the first content, so a paced stream's first token is not
    # one interval late.
    role = {"index": 0, "delta": {"role": "assistant", "content": ""}}
    out[0] = _chunk(ident, model, [role]) + out[0]
    usage = {"prompt_tokens": 12, "completion_tokens": count, "total_tokens": 12 + count}
    out.append(
        _chunk(ident, model, [{"index": 0, "delta": {}, "finish_reason": "stop"}])
        + _chunk(ident, model, [], usage=usage)
        + b"data: [DONE]\n\n"
    )
    return out


class Pacer:
    """Writes the next frame of every paced stream when it is due, from one ticker task."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Stream]] = []
        self.seq = itertools.count()
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(self.run())

    def add(self, stream: Stream) -> None:
        # The first frame goes out at once, not at the ticker's next wake-up.
        if stream.send_next():
            due = time.monotonic() + stream.interval
            heapq.heappush(self.heap, (due, next(self.seq), stream))
            self.wake.set()

    async def run(self) -> None:
        while True:
            if not self.heap:
                self.wake.clear()
                await self.wake.wait()
            now = time.monotonic()
            while self.heap and self.heap[0][0] <= now:
                due, _, stream = heapq.heappop(self.heap)
                if stream.send_next():
                    # Keep each stream's own phase (no drift), one frame per interval.
                    heapq.heappush(self.heap, (due + stream.interval, next(self.seq), stream))
            if self.heap:
                await asyncio.sleep(max(TICK, self.heap[0][0] - time.monotonic()))


class Stream:
    def __init__(self, transport: Transport, pending: list[bytes], interval: float) -> None:
        self.transport = transport
        self.pending = pending
        self.interval = interval
        self.done: Future[None] = asyncio.get_running_loop().create_future()

    def send_next(self) -> bool:
        """Write one frame; False when the stream is over (finished or the reader left)."""
        if self.done.done():
            return False
        if self.transport.is_closing():
            self.done.set_result(None)
            return False
        self.transport.write(self.pending.pop(0))
        if not self.pending:
            self.done.set_result(None)
            return False
        return True


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    model = str(body.get("model", "r0"))
    rate = float(model[1:]) if model.startswith("r") and model[1:].isdigit() else 0.0
    ident = f"chatcmpl-{next(request.app[IDS])}"
    pending = frames(ident, model, request.app[CHUNKS])
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    response.content_length = sum(len(f) for f in pending)
    await response.prepare(request)
    transport = request.transport
    assert transport is not None
    if rate <= 0:
        for frame in pending:
            transport.write(frame)
    else:
        stream = Stream(transport, pending, 1.0 / rate)
        request.app[PACER].add(stream)
        await stream.done
    return response


CHUNKS = web.AppKey("chunks", int)
IDS: web.AppKey[itertools.count[int]] = web.AppKey("ids")
PACER = web.AppKey("pacer", Pacer)


def make_app(chunks: int) -> web.Application:
    async def start(app: web.Application) -> None:
        app[PACER] = Pacer()

    app = web.Application()
    app[CHUNKS] = chunks
    app[IDS] = itertools.count()
    app.on_startup.append(start)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--chunks", type=int, default=200)
    args = parser.parse_args()
    web.run_app(make_app(args.chunks), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
