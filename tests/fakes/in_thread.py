"""Serve a fake (anything with ``app() -> web.Application``) from a background thread, for an
app or a script in another process (a browser test's server, backup.sh)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web


class ServedInThread:
    """``with ServedInThread(fake) as served: served.url`` — on a free loopback port."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ServedInThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.fake.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run ``coroutine`` (e.g. ``fake.deliver(event)``) on the fake's loop from a test's
        thread and return its result (a sync browser test sending a webhook itself)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
