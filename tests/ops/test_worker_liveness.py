"""Whether a worker runs jobs, seen from a gateway: /readyz and /metrics tell queued jobs with no
live worker (data-subject requests that would miss their deadlines in silence), a worker that
beats, and one that stopped; the deadline check names requests at risk."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from app.clock import utcnow
from app.config import Settings
from app.dsr.models import DsrRequest
from app.jobs import queue, worker
from app.runtime import Runtime
from tests.gateway import Clients, audit_entries
from tests.server import LiveServer

STALE = 2.0


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(worker_stale_seconds=STALE, worker_poll_seconds=0.1)


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients("compliance_officer", sub="svc-crm",
                   scope="dsr:submit dsr:verify dsr:manage audit:read")


def submit(crm: httpx.Client, subject_id: str = "cust-1", **body: Any) -> dict[str, Any]:
    response = crm.post("/v1/dsr", json={
        "subject_id": subject_id, "type": "access", "jurisdiction": "GDPR",
        "verification": {"method": "logged_in_session"}, **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


def scrape(live: LiveServer) -> dict[str, float]:
    """Every sample of /metrics by name and labels, e.g. `pgw_jobs{state=queued}`."""
    samples = {}
    for family in text_string_to_metric_families(live.client().get("/metrics").text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_for(check: Callable[[], Any], *, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


@pytest.fixture
def running(runtime: Runtime) -> Iterator[Callable[[], threading.Event]]:
    """running(): a standing worker in a thread, as `pgw worker` runs one; returns its stop."""
    started: list[tuple[threading.Thread, threading.Event]] = []

    def start() -> threading.Event:
        started.append(worker.start_thread(runtime))
        return started[-1][1]

    yield start
    for thread, stop in started:
        stop.set()
        thread.join(timeout=30)


def test_queued_jobs_without_a_live_worker_are_told_until_one_runs_them(
        live: LiveServer, crm: httpx.Client,
        running: Callable[[], threading.Event]) -> None:
    ready = live.client().get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["workers"] == {"alive": 0, "last_seen_seconds": None, "queued_jobs": 0,
                                "queued_without_worker": 0}
    first = submit(crm)

    response = live.client().get("/readyz")
    assert response.status_code == 200  # the gateway still serves: a warning, not a reason
    ready = response.json()
    assert ready["status"] == "degraded"
    assert ready["workers"]["queued_without_worker"] == 1
    assert "1 job(s) queued and no worker alive" in ready["warnings"][0]
    assert "never" in ready["warnings"][0]
    assert "pgw worker" in ready["warnings"][0]
    metrics = scrape(live)
    assert metrics["pgw_workers_alive"] == 0
    assert metrics["pgw_worker_last_seen_seconds"] == float("inf")
    assert metrics["pgw_jobs_queued_without_worker"] == 1
    assert metrics["pgw_jobs{state=queued}"] == 1

    stop = running()
    assert wait_for(lambda: crm.get(f"/v1/dsr/{first['id']}").json()["status"] == "completed")
    ready = wait_for(lambda: (r := live.client().get("/readyz").json())["status"] == "ready"
                     and r["workers"]["alive"] == 1 and r)
    assert ready["warnings"] == []
    assert ready["workers"]["alive"] == 1
    assert ready["workers"]["last_seen_seconds"] < STALE
    metrics = scrape(live)
    assert metrics["pgw_workers_alive"] == 1
    assert metrics["pgw_jobs_queued_without_worker"] == 0
    assert metrics["pgw_worker_last_seen_seconds"] < STALE

    stop.set()  # the worker stops; after PGW_WORKER_STALE_SECONDS it counts as gone
    wait_for(lambda: scrape(live)["pgw_workers_alive"] == 0, timeout=STALE * 5)
    assert scrape(live)["pgw_worker_last_seen_seconds"] >= STALE
    submit(crm, subject_id="cust-2")
    ready = live.client().get("/readyz").json()
    assert ready["status"] == "degraded"
    assert ready["workers"]["alive"] == 0
    assert "s ago" in ready["warnings"][0]  # last seen, not never


def test_two_workers_are_two_and_a_worker_beats_while_a_long_job_runs(
        live: LiveServer, runtime: Runtime, running: Callable[[], threading.Event],
        monkeypatch: pytest.MonkeyPatch) -> None:
    busy, release = threading.Event(), threading.Event()

    def slow(runtime: Runtime, claimed: queue.Claimed) -> None:
        busy.set()
        release.wait(30)

    monkeypatch.setitem(queue.REGISTRY.handlers, "test.slow", slow)
    with runtime.transaction() as session:
        queue.enqueue(session, "test.slow")
    running()
    running()
    assert busy.wait(20)
    wait_for(lambda: scrape(live)["pgw_workers_alive"] == 2)
    time.sleep(STALE * 1.5)  # longer than a worker may go unseen, with a job in hand
    try:
        metrics = scrape(live)
        assert metrics["pgw_workers_alive"] == 2
        assert metrics["pgw_jobs{state=running}"] == 1
        assert metrics["pgw_worker_last_seen_seconds"] < STALE
    finally:
        release.set()


def test_the_deadline_check_reports_requests_overdue_and_at_risk(
        live: LiveServer, crm: httpx.Client, runtime: Runtime,
        caplog: pytest.LogCaptureFixture) -> None:
    late, risky, calm = submit(crm, "cust-a"), submit(crm, "cust-b"), submit(crm, "cust-c")
    now = utcnow()
    with runtime.transaction() as session:
        for dsr, due in ((late, now - timedelta(days=1)), (risky, now + timedelta(days=2)),
                         (calm, now + timedelta(days=20))):
            session.execute(update(DsrRequest).where(DsrRequest.id == dsr["id"])
                            .values(due_at=due))
        queue.enqueue(session, "dsr_deadlines")
    with caplog.at_level(logging.WARNING, logger="pgw.dsr"):
        assert worker.run_once(runtime, worker="test", kinds=("dsr_deadlines",)) == "done"

    [entry] = audit_entries(crm, "dsr.deadlines_checked")
    assert entry["details"]["overdue"] == 1
    assert entry["details"]["due_soon"] == 1
    assert entry["details"]["at_risk"] == [risky["id"]]  # due within PGW_DSR_DUE_SOON_DAYS
    assert entry["details"]["newly_overdue"] == [late["id"]]
    [logged] = [r for r in caplog.records if "at risk" in r.getMessage()]
    assert (logged.__dict__["overdue"], logged.__dict__["due_soon"]) == (1, 1)
    metrics = scrape(live)
    assert metrics["pgw_dsr_overdue"] == 1
    assert metrics["pgw_dsr_due_soon"] == 1
