"""What one open stream holds in the pipeline's process, by allocation site (issue #17).

Starts the fake upstream and the embedded pipeline server as ``bench_stream.py`` does, with
``pipeline_server.py --trace-memory``, sends warm-up answers, starts ``tracemalloc`` in the
server and takes a snapshot, sends a few more answers (so what the first traced ones allocate
once is not counted), takes a snapshot, opens ``--streams`` paced ``r10`` streams (20 s each;
held once every one has its first token), takes a last snapshot, and prints the Python
allocations that grew, per stream, grouped by the line that made them (``--group traceback``
for whole call stacks) and by module. Native memory (OpenSSL, the kernel's socket buffers) is
not in it: RSS per stream is ``bench_stream.py --only memory``.

Run: ``python bench/trace_streams.py [--streams 100] [--top 30] [--group lineno]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import tracemalloc
from collections import defaultdict
from pathlib import Path

import aiohttp
from bench_stream import (
    MARKER,
    PROMPT,
    WARMUP,
    Target,
    client_session,
    measure_ttfb,
    servers,
    setup_user,
)


async def snapshot(pid: int, path: str, index: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    target = Path(f"{path}.{index}")
    for _ in range(600):
        await asyncio.sleep(0.5)
        if await asyncio.to_thread(target.exists):
            await asyncio.sleep(1.0)  # let the dump finish writing
            try:
                return tracemalloc.Snapshot.load(str(target))
            except (EOFError, ValueError):
                continue
    raise RuntimeError(f"no snapshot at {target}")


async def run(args: argparse.Namespace, workdir: Path) -> None:
    trace = str(workdir / "trace")
    args.trace_memory = trace
    async with servers(args, workdir) as srv:
        key, conversations = await setup_user(srv["pipeline"], args.streams + 2 * WARMUP)
        ids = iter(conversations)
        bearer = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def pipeline(count: int) -> Target:
            urls = [
                f"{srv['pipeline']}/api/conversations/{next(ids)}/messages" for _ in range(count)
            ]
            return Target("pipeline", urls, {"content": PROMPT}, bearer, pipeline=True)

        await measure_ttfb([pipeline(WARMUP)], WARMUP, 0)
        pid = srv["pipeline_pid"]
        await snapshot(pid, trace, 0)  # tracing starts
        await measure_ttfb([pipeline(WARMUP)], WARMUP, 0)
        before = await snapshot(pid, trace, 1)
        target = pipeline(args.streams)
        data = target.payload("r10")
        opened = 0
        all_open = asyncio.Event()
        release = asyncio.Event()

        async def hold(index: int, session: aiohttp.ClientSession) -> None:
            nonlocal opened
            async with session.post(target.urls[index], data=data, headers=bearer) as response:
                assert response.status == 200, response.status
                seen = b""
                async for chunk in response.content.iter_any():
                    seen = seen[-8:] + chunk
                    if MARKER in seen:
                        break
                opened += 1
                if opened == args.streams:
                    all_open.set()
                await release.wait()

        async with client_session() as session:
            tasks = [asyncio.create_task(hold(i, session)) for i in range(args.streams)]
            try:
                await asyncio.wait_for(all_open.wait(), 120)
                loaded = await snapshot(pid, trace, 2)
            finally:
                release.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    report(before, loaded, args)


def report(before: tracemalloc.Snapshot, loaded: tracemalloc.Snapshot, args: argparse.Namespace):
    n = args.streams
    stats = loaded.compare_to(before, args.group)
    grew = [s for s in stats if s.size_diff > 0]
    total = sum(s.size_diff for s in stats)
    print(f"Python allocations: {total / n / 1024:.1f} KB per open stream ({n} streams)")
    print(f"\nTop {args.top} sites (bytes and blocks per stream):")
    for stat in sorted(grew, key=lambda s: -s.size_diff)[: args.top]:
        frames = stat.traceback.format() if args.group == "traceback" else [str(stat.traceback)]
        print(f"{stat.size_diff / n:9.0f} B {stat.count_diff / n:6.1f}  {frames[-1].strip()}")
        if args.group == "traceback":
            for line in frames[:-1]:
                print(f"{'':20}{line.strip()}")
    modules: dict[str, int] = defaultdict(int)
    for stat in loaded.compare_to(before, "filename"):
        name = stat.traceback[0].filename
        for marker in ("site-packages/", "/core/", "/plugins/", "/lib/python3.11/"):
            if marker in name:
                name = name.split(marker, 1)[1]
                break
        top = "/".join(name.split("/")[:2]) if "/" in name else name
        modules[top] += stat.size_diff
    print("\nBy package or folder (bytes per stream):")
    for name, size in sorted(modules.items(), key=lambda kv: -kv[1])[:20]:
        print(f"{size / n:9.0f} B  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--group", choices=["lineno", "traceback"], default="lineno")
    args = parser.parse_args()
    # What bench_stream.servers reads.
    args.litellm, args.no_litellm = None, True
    args.shared_ssl_context = args.sqlite_write_lock = False
    args.no_search_index = True
    with tempfile.TemporaryDirectory(prefix="trace-streams-") as workdir:
        asyncio.run(run(args, Path(workdir)))


if __name__ == "__main__":
    main()
