"""Each model's latency and availability from real traffic: the median first-token latency and
the median duration of its answers, and the share of its generations that did not fail, over the
last 7 days.

Read per model through ``ix_generations_model_created`` (its latest ``SAMPLE`` generations in the
window, newest first), for the models the catalogue lists, and cached per process for
``CACHE_SECONDS``: the catalogue and the composer's suggestions ask often, traffic moves slowly.
A stopped answer says nothing about the model and is left out.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.chat.models import Generation, GenerationStatus
from multinotes.db import Database, utcnow

WINDOW = timedelta(days=7)
SAMPLE = 500
CACHE_SECONDS = 60.0
#: Outcomes that count: an answer that finished, or one that failed.
COUNTED = (GenerationStatus.COMPLETE, GenerationStatus.FAILED)


@dataclass(frozen=True)
class ModelStats:
    requests: int
    failures: int
    p50_latency_ms: float | None
    p50_duration_ms: float | None

    @property
    def availability(self) -> float | None:
        """The share of generations that did not fail (None: no traffic to judge by)."""
        if not self.requests:
            return None
        return round((self.requests - self.failures) / self.requests, 4)

    def out(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "availability": self.availability,
            "p50_latency_ms": self.p50_latency_ms,
            "p50_duration_ms": self.p50_duration_ms,
        }


NO_TRAFFIC = ModelStats(requests=0, failures=0, p50_latency_ms=None, p50_duration_ms=None)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


async def measure(db: Database, model_ids: list[str]) -> dict[str, ModelStats]:
    """Stats of ``model_ids`` over the last ``WINDOW`` (no cache)."""
    since = utcnow() - WINDOW
    found: dict[str, ModelStats] = {}
    async with db.read() as session:
        for model_id in model_ids:
            rows = (
                await session.execute(
                    select(Generation.status, Generation.latency_ms, Generation.duration_ms)
                    .where(
                        Generation.model_id == model_id,
                        Generation.created_at >= since,
                        Generation.status.in_(COUNTED),
                    )
                    .order_by(Generation.created_at.desc())
                    .limit(SAMPLE)
                )
            ).all()
            if not rows:
                continue
            complete = [r for r in rows if r.status == GenerationStatus.COMPLETE]
            found[model_id] = ModelStats(
                requests=len(rows),
                failures=len(rows) - len(complete),
                p50_latency_ms=_median(
                    [r.latency_ms for r in complete if r.latency_ms is not None]
                ),
                p50_duration_ms=_median(
                    [r.duration_ms for r in complete if r.duration_ms is not None]
                ),
            )
    return found


class StatsCache:
    """The last measurement, kept ``CACHE_SECONDS`` per process."""

    def __init__(self) -> None:
        self._at = 0.0
        self._stats: dict[str, ModelStats] = {}
        self._models: frozenset[str] = frozenset()

    def invalidate(self) -> None:
        self._at = 0.0

    async def get(self, db: Database, model_ids: list[str]) -> dict[str, ModelStats]:
        wanted = frozenset(model_ids)
        if time.monotonic() - self._at > CACHE_SECONDS or not wanted <= self._models:
            self._stats = await measure(db, sorted(wanted))
            self._models = wanted
            self._at = time.monotonic()
        return self._stats


MODEL_STATS = web.AppKey("assist_model_stats", StatsCache)


async def model_stats(app: web.Application, model_ids: list[str]) -> dict[str, ModelStats]:
    """Stats per model id (models without traffic are absent), cached per process."""
    from multinotes.keys import DB

    cache = app.get(MODEL_STATS)
    if cache is None:  # an app without the assist feature (a tool's app): measure now
        return await measure(app[DB], model_ids)
    return await cache.get(app[DB], model_ids)
