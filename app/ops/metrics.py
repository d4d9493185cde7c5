"""Prometheus metrics. With several uvicorn workers, `pgw serve` sets PROMETHEUS_MULTIPROC_DIR so
that /metrics answers for all workers, whichever one serves the scrape."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    audit_failures: Counter

    def render(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def make_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter("pgw_http_requests", "HTTP requests by route and status",
                         ["method", "route", "status"], registry=registry),
        latency=Histogram("pgw_http_request_duration_seconds", "HTTP request latency",
                          ["method", "route"], registry=registry,
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                   2.5, 5, 10)),
        audit_failures=Counter("pgw_audit_append_failures", "Audit entries that could not be "
                               "written (their operations failed)", registry=registry),
    )
