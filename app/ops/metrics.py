"""Prometheus metrics. With several uvicorn workers, `pgw serve` sets PROMETHEUS_MULTIPROC_DIR so
that /metrics answers for all workers, whichever one serves the scrape."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.capacity import REFUSALS, Lane

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    audit_failures: Counter
    lane_busy: Gauge
    lane_waiting: Gauge
    lane_refused: Counter

    def observe(self, lane: Lane) -> None:
        """Export a Lane's threads in use, requests waiting and requests refused."""
        label = lane.name.replace(" ", "_")
        lane.busy_gauge = self.lane_busy.labels(label)
        lane.waiting_gauge = self.lane_waiting.labels(label)
        refused = {reason: self.lane_refused.labels(label, reason)  # exported from 0
                   for reason in REFUSALS}
        lane.refused = refused.__getitem__

    def render(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def forget_process(pid: int) -> None:
    """Drop a dead serving process's live gauges (multiprocess mode): without this, its last
    threads busy and requests waiting stay in every scrape until `pgw serve` restarts."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


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
        # summed over the live processes when several serve (multiprocess mode)
        lane_busy=Gauge("pgw_request_threads_busy", "Requests working on a request thread now "
                        "(PGW_REQUEST_THREADS per lane and process)", ["lane"],
                        registry=registry, multiprocess_mode="livesum"),
        lane_waiting=Gauge("pgw_request_queue_waiting", "Requests waiting for a request thread "
                           "now (at most PGW_REQUEST_QUEUE per lane and process)", ["lane"],
                           registry=registry, multiprocess_mode="livesum"),
        lane_refused=Counter("pgw_request_queue_refused", "Requests refused for want of a "
                             "request thread: queue_full, timeout or database_busy (503 "
                             "busy), or dropped as client_gone while they waited",
                             ["lane", "reason"], registry=registry),
    )
