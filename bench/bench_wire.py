"""CPU of reading one streamed Chat Completions answer: the openai SDK against the plugin's own
reader (issue #17).

Starts the fake upstream (``upstream.py``, 200 and 20 content chunks per answer) and, in this
process, reads answers through ``openai_wire.stream_chat`` (the SDK, one shared client, as the
OpenAI plugin does) and ``openai_wire.stream_chat_http`` (aiohttp, one shared session, as the
OpenAI-compatible plugin does), alternating answer by answer so both see the same machine. The
figure is this process's CPU time per answer (``time.process_time``), split into a per-chunk and
a fixed part by the two answer lengths. Paced models (``r1000``: one chunk a millisecond, so
about one chunk per socket read) show the per-read cost that the full-speed ``r0`` (many chunks
per read) hides.

Run: ``python bench/bench_wire.py [--answers 100] [--models r0,r1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_stream import HERE, free_port, process, wait_listening

from multinotes import openai_wire, outgoing
from multinotes.providers import ChatMessage, ClientCache, GenerationRequest, Usage


def make_request(clients: ClientCache) -> GenerationRequest:
    return GenerationRequest(
        [ChatMessage("user", "Say hello")],
        options=None,
        config=None,
        usage=Usage(),  # type: ignore[arg-type]
        timeout=30.0,
        clients=clients,
    )


async def through_sdk(clients: ClientCache, url: str, model: str) -> int:
    request = make_request(clients)
    params = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    count = 0
    async with openai_wire.client(clients, api_key="k", base_url=url, default_timeout=30) as c:
        async for _ in openai_wire.stream_chat(c, params, request, "bench"):
            count += 1
    return count


async def through_http(clients: ClientCache, url: str, model: str) -> int:
    request = make_request(clients)
    params = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    count = 0
    async with openai_wire.http_session(clients) as session:
        async for _ in openai_wire.stream_chat_http(session, url, "k", params, request, "bench"):
            count += 1
    return count


READERS = {"sdk": through_sdk, "aiohttp": through_http}


async def measure(urls: dict[int, str], models: list[str], answers: int) -> dict[str, Any]:
    outgoing.install(outgoing.OutgoingPolicy.parse(["127.0.0.1/32"]))
    clients = ClientCache()
    report: dict[str, Any] = {}
    try:
        for model in models:
            cpu: dict[tuple[str, int], list[float]] = {}
            for read in READERS.values():  # warm-up: connections, imports
                for chunks, url in urls.items():
                    for _ in range(5):
                        assert await read(clients, url, model) == chunks
            for _ in range(answers):
                for chunks, url in urls.items():
                    for name, read in READERS.items():
                        before = time.process_time()
                        await read(clients, url, model)
                        cpu.setdefault((name, chunks), []).append(time.process_time() - before)
            long, short = max(urls), min(urls)
            for name in READERS:
                per_long = statistics.mean(cpu[(name, long)]) * 1000
                per_short = statistics.mean(cpu[(name, short)]) * 1000
                per_chunk = (per_long - per_short) / (long - short)
                report[f"{model} {name}"] = {
                    f"ms_per_{long}_chunk_answer": round(per_long, 2),
                    f"ms_per_{short}_chunk_answer": round(per_short, 2),
                    "us_per_chunk": round(per_chunk * 1000, 1),
                    "ms_fixed": round(per_short - short * per_chunk, 2),
                }
                print(f"{model:6} {name:8} {json.dumps(report[f'{model} {name}'])}", flush=True)
    finally:
        await clients.aclose()
    return report


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ports = {200: free_port(), 20: free_port()}
        with (
            process(
                [sys.executable, str(HERE / "upstream.py"), "--port", str(ports[200])],
                Path(tmp) / "long.log",
            ),
            process(
                [
                    sys.executable,
                    str(HERE / "upstream.py"),
                    "--port",
                    str(ports[20]),
                    "--chunks",
                    "20",
                ],
                Path(tmp) / "short.log",
            ),
        ):
            for port in ports.values():
                await wait_listening(port)
            urls = {n: f"http://127.0.0.1:{port}/v1" for n, port in ports.items()}
            return await measure(urls, args.models.split(","), args.answers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--models", default="r0,r1000")
    parser.add_argument("--out")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
