"""The text so far and the heartbeat of the answers streaming in this process, stored together.

While a model streams, its text so far is stored every ``PARTIAL_SAVE_SECONDS`` (when it grew),
so a crash leaves it and a client in another process can follow it; and at least every
``HEARTBEAT_SECONDS``, text or not, its duration so far: the heartbeat that tells the crash
sweep the answer is still alive.

One transaction a round for every answer of the process, not one per answer (issue #17): at
100 answers streaming, a transaction each every second was 100 durable commits a second and,
in embedded mode, 100 turns a second at SQLite's one write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import bindparam, update

from multinotes.chat.models import Generation, Message
from multinotes.db import retrying
from multinotes.keys import DB

log = structlog.get_logger(__name__)

PARTIAL_SAVE_SECONDS = 1.0
HEARTBEAT_SECONDS = 5.0

# Built once (see ``pipeline``): parameters named ``p_*``, never like a column. Only while the
# answer is pending: its final store (``pipeline._store_outcome``) is never overwritten.
_PARTIAL_TEXT = (
    update(Message)
    .where(Message.id == bindparam("p_id"), Message.status == "pending")
    .values(content=bindparam("p_text"))
)
_HEARTBEAT = (
    update(Generation)
    .where(Generation.id == bindparam("p_id"), Generation.status == "pending")
    .values(duration_ms=bindparam("p_duration_ms"))
)


@dataclass(eq=False)
class _Streaming:
    message_id: str
    parts: list[str]
    started: float
    saved: int = 0  # how many parts are stored
    beat: float = 0.0  # when the last heartbeat was stored


class PartialSaver:
    """The streaming answers of this process (``add`` at their start, ``remove`` before their
    final store) and the task that stores them, running only while there are any."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._streaming: dict[str, _Streaming] = {}
        self._rounds: asyncio.Task[None] | None = None
        #: The round being written, and the answers in it.
        self._writing: tuple[asyncio.Task[None], set[str]] | None = None

    def add(self, generation_id: str, message_id: str, parts: list[str], started: float) -> None:
        """Store ``parts`` (the answer's chunks so far, growing) for this answer from now on."""
        self._streaming[generation_id] = _Streaming(message_id, parts, started, beat=started)
        if self._rounds is None or self._rounds.done():
            self._rounds = asyncio.create_task(self._run(), name="partial-answers")

    async def remove(self, generation_id: str) -> None:
        """Stop storing this answer; returns once no write of it is under way, so the final
        store that follows is the last word (and takes no row lock a round holds)."""
        self._streaming.pop(generation_id, None)
        writing = self._writing
        if writing is not None and generation_id in writing[1]:
            await asyncio.wait([writing[0]])
        if not self._streaming and self._rounds is not None:
            self._rounds.cancel()
            self._rounds = None

    async def _run(self) -> None:
        while self._streaming:
            await asyncio.sleep(PARTIAL_SAVE_SECONDS)
            await self._round()

    async def _round(self) -> None:
        now = time.perf_counter()
        texts: list[dict[str, Any]] = []
        beats: list[dict[str, Any]] = []
        stored: list[tuple[_Streaming, int]] = []
        for generation_id, answer in self._streaming.items():
            count = len(answer.parts)
            if count == answer.saved and now - answer.beat < HEARTBEAT_SECONDS:
                continue
            if count != answer.saved:
                texts.append({"p_id": answer.message_id, "p_text": "".join(answer.parts[:count])})
            beats.append(
                {"p_id": generation_id, "p_duration_ms": round((now - answer.started) * 1000, 1)}
            )
            stored.append((answer, count))
        if not beats:
            return
        # Its own task, so ``remove`` can wait for it without cancelling it.
        write = asyncio.create_task(retrying(lambda: self._write(texts, beats), "partial_answers"))
        self._writing = (write, {beat["p_id"] for beat in beats})
        try:
            await asyncio.shield(write)
        except Exception:  # the next round tries again; the final store does not depend on it
            log.warning("partial_answers_not_saved", answers=len(beats), exc_info=True)
            return
        finally:
            self._writing = None
        for answer, count in stored:
            answer.saved, answer.beat = count, now

    async def _write(self, texts: list[dict[str, Any]], beats: list[dict[str, Any]]) -> None:
        # Messages before generations, the order of the final store: two transactions that
        # lock the same rows take them in the same order.
        async with self._app[DB].transaction() as session:
            connection = await session.connection()
            if texts:
                await connection.execute(_PARTIAL_TEXT, texts)
            await connection.execute(_HEARTBEAT, beats)

    async def close(self) -> None:
        """At cleanup: no round is left running (the answers were stopped and stored)."""
        self._streaming.clear()
        if self._rounds is not None:
            self._rounds.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rounds
            self._rounds = None


PARTIALS: web.AppKey[PartialSaver] = web.AppKey("partial_answers")
