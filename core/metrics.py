"""Prometheus metrics, in a registry owned by the app (several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        )
        self.plugins_enabled = Gauge(
            "multinotes_plugins_enabled", "Enabled plugins.", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
