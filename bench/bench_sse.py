"""The per-chunk SSE path alone: CPU of the server's thread per chunk, the pipeline's way
(``DeltaEncoder``: a prefix encoded once per answer, one write per batch of piled-up events)
against the way before it (a dict and ``sse()`` per chunk, one write per event).

Both handlers are real aiohttp responses fed through ``EventSink`` by a producer task that
yields to the loop between chunks, as a provider stream does; the client (aiohttp, in another
thread with its own loop) reads every byte. Old and new alternate request by request, so load
from elsewhere on the machine falls on both alike; the figure is the server thread's CPU
(``time.thread_time``) per chunk, the best of ``--repeats`` medians.

Run: ``python bench/bench_sse.py [--requests 200] [--chunks 200] [--repeats 3] [--per-yield 1]``
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from typing import Any

import aiohttp
from aiohttp import web

from multinotes.chat.pipeline import SSE_HEADERS, DeltaEncoder, EventSink, encoded, sse

TAG = {"generation_id": "0123456789abcdef0123456789abcdef", "model": "bench/r0"}
CPU: dict[str, list[float]] = {"old": [], "new": []}


async def produce(sink: EventSink, chunks: int, lean: bool, per_yield: int) -> None:
    delta = DeltaEncoder(TAG)
    for i in range(chunks):
        text = f"tok{i} "
        if lean:
            sink.emit_encoded(delta(text))
        else:
            sink.emit("delta", {**TAG, "text": text})
        if i % per_yield == per_yield - 1:
            await asyncio.sleep(0)


def handler(lean: bool) -> Any:
    async def stream(request: web.Request) -> web.StreamResponse:
        chunks = int(request.query["chunks"])
        per_yield = int(request.query["per_yield"])
        started = time.thread_time()
        sink = EventSink()
        sink.follow(asyncio.create_task(produce(sink, chunks, lean, per_yield)))
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        async for events in sink.drain():
            if lean:
                await response.write(encoded(events))
            else:
                for event in events:
                    assert not isinstance(event, bytes)
                    await response.write(sse(*event))
        await response.write_eof()
        CPU["new" if lean else "old"].append((time.thread_time() - started) / chunks)
        return response

    return stream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client(port: int, args: argparse.Namespace, ready: threading.Event) -> None:
    requests, chunks = args.requests, args.chunks

    async def run() -> None:
        ready.wait()
        async with aiohttp.ClientSession() as session:
            for i in range(requests * 2):
                path = "new" if i % 2 else "old"
                query = f"chunks={chunks}&per_yield={args.per_yield}"
                url = f"http://127.0.0.1:{port}/{path}?{query}"
                async with session.get(url) as response:
                    body = await response.read()
                    assert body.count(b"event: delta") == chunks

    asyncio.run(run())


async def serve(args: argparse.Namespace) -> dict[str, list[float]]:
    app = web.Application()
    app.router.add_get("/old", handler(False))
    app.router.add_get("/new", handler(True))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    medians: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.repeats):
        CPU["old"].clear()
        CPU["new"].clear()
        ready = threading.Event()
        thread = threading.Thread(target=client, args=(port, args, ready))
        thread.start()
        ready.set()
        await asyncio.to_thread(thread.join)
        for name in medians:
            medians[name].append(statistics.median(CPU[name]) * 1e6)
    await runner.cleanup()
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--per-yield",
        type=int,
        default=1,
        help="chunks the producer emits between yields to the loop (>1: chunks pile up, as "
        "from a fast provider or a slow client)",
    )
    args = parser.parse_args()
    medians = asyncio.run(serve(args))
    for name, values in medians.items():
        print(
            f"{name}: server thread CPU per chunk, best median {min(values):.2f} us (runs: "
            + ", ".join(f"{v:.2f}" for v in values)
            + ")"
        )


if __name__ == "__main__":
    main()
