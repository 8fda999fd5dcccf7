"""Prometheus metrics, in a registry owned by the app (several apps can live in one process).

Several processes (web processes behind nginx, workers): set ``PROMETHEUS_MULTIPROC_DIR`` to a
folder all of them share and that is emptied before they start (deploy/README.md). Every process
then writes its samples there and any web process's ``/metrics`` answers for all of them
(prometheus_client's multiprocess mode), so one scrape target is the whole installation.
Without it, each process reports its own numbers only.

The task queue gauges (live workers and scheduler, tasks waiting, the oldest wait) are read
from Redis at scrape time, so they are the same whichever process answers.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


_marked_for_exit = False


def _mark_dead_at_exit() -> None:
    """A process that exits takes its live gauges (streams in flight) out of the sum."""
    global _marked_for_exit
    if _marked_for_exit:
        return
    from prometheus_client import multiprocess

    pid = os.getpid()
    atexit.register(lambda: multiprocess.mark_process_dead(pid))
    _marked_for_exit = True


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        folder = multiprocess_dir()
        self.multiprocess = folder is not None
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
            _mark_dead_at_exit()
        self.requests = Counter(
            "multinotes_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "multinotes_http_request_duration_seconds",
            "Time to produce a response, by route.",
            ["method", "route"],
            registry=self.registry,
        )
        self.streams_in_flight = Gauge(
            "multinotes_streams_in_flight",
            "Generation streams currently open.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.plugins_enabled = Gauge(
            "multinotes_plugins_enabled",
            "Enabled plugins.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def render(self, tasks: dict[str, float] | None = None) -> bytes:
        """The exposition text; ``tasks``: the task queue gauges read for this scrape."""
        registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        if tasks is not None:
            registry = _with(registry, TaskGauges(tasks))
        return generate_latest(registry)


#: name -> help of the task gauges (``TaskGauges``).
TASK_GAUGES = {
    "multinotes_task_workers": "Workers with a live heartbeat (embedded: the web process).",
    "multinotes_task_scheduler_up": "1 when a scheduler holds the scheduler lock.",
    "multinotes_tasks_waiting": "Tasks queued that no worker has taken yet.",
    "multinotes_task_oldest_waiting_seconds": "How long the oldest waiting task has waited.",
    "multinotes_tasks_in_progress": "Tasks a worker has taken and not finished.",
    "multinotes_task_status_up": "1 when the task status could be read (Redis answered).",
}


class TaskGauges(Collector):
    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def collect(self) -> Iterable[Any]:
        for name, help_text in TASK_GAUGES.items():
            if name in self.values:
                yield GaugeMetricFamily(name, help_text, value=self.values[name])


def _with(registry: CollectorRegistry, collector: Collector) -> CollectorRegistry:
    """A registry answering for ``registry``'s metrics and ``collector``'s, for one scrape."""
    combined = CollectorRegistry()
    combined.register(_Forward(registry))
    combined.register(collector)
    return combined


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()
