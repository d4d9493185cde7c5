"""The job queue: leases, retries with back-off, giving up, periodic jobs, several workers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.jobs import queue, schedule, worker
from app.jobs.models import Job, JobAttempt
from app.jobs.queue import Claimed, Retry
from app.runtime import Runtime

RAN: list[tuple[int, str]] = []
LOCK = threading.Lock()
FAILURES: list[int] = []
GAVE_UP: list[str] = []


@queue.handler("test.record")
def _record(runtime: Runtime, claimed: Claimed) -> None:
    time.sleep(0.005)
    with LOCK:
        RAN.append((claimed.id, claimed.worker))


@queue.handler("test.flaky", on_failure=lambda session, claimed, error: GAVE_UP.append(error))
def _flaky(runtime: Runtime, claimed: Claimed) -> None:
    FAILURES.append(claimed.attempt)
    if claimed.attempt < claimed.payload["succeed_on"]:
        raise ValueError(f"attempt {claimed.attempt} failed")


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()
    FAILURES.clear()
    GAVE_UP.clear()


def _enqueue(runtime: Runtime, kind: str, n: int = 1, *, payload: dict[str, Any] | None = None,
             max_attempts: int = 8) -> list[int]:
    ids = []
    with runtime.transaction() as session:
        for _ in range(n):
            job = queue.enqueue(session, kind, payload, max_attempts=max_attempts)
            assert job is not None
            ids.append(job.id)
    return ids


def _job(runtime: Runtime, job_id: int) -> Job:
    with runtime.session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _attempts(runtime: Runtime, job_id: int) -> list[JobAttempt]:
    with runtime.session_factory() as session:
        return list(session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)
                                    .order_by(JobAttempt.attempt)))


NO_WAIT = Retry(base=timedelta(0))


def test_a_job_runs_once_and_is_done(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, "test.record")
    assert worker.run_once(runtime, worker="w1") == "done"
    assert worker.run_once(runtime, worker="w1") is None
    assert RAN == [(job_id, "w1")]
    assert _job(runtime, job_id).state == "done"
    assert [a.outcome for a in _attempts(runtime, job_id)] == ["done"]


def test_a_failing_job_is_retried_with_back_off_and_its_errors_kept(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, "test.flaky", payload={"succeed_on": 3})
    assert worker.run_once(runtime, worker="w", retry=Retry(base=timedelta(seconds=30))) == \
        "retry"
    job = _job(runtime, job_id)
    assert job.state == "queued"
    assert job.last_error == "ValueError: attempt 1 failed"
    assert job.run_at is not None
    # not due yet: the back-off keeps it for about 30 s
    assert worker.run_once(runtime, worker="w") is None
    with runtime.transaction() as session:
        session.get(Job, job_id).run_at = job.created_at  # type: ignore[union-attr]
    assert worker.run_once(runtime, worker="w", retry=NO_WAIT) == "retry"
    assert worker.run_once(runtime, worker="w", retry=NO_WAIT) == "done"
    assert FAILURES == [1, 2, 3]
    attempts = _attempts(runtime, job_id)
    assert [a.outcome for a in attempts] == ["retry", "retry", "done"]
    assert attempts[0].error == "ValueError: attempt 1 failed"


def test_back_off_doubles_up_to_a_cap() -> None:
    retry = Retry(base=timedelta(seconds=10), cap=timedelta(seconds=60))
    delays = [retry.delay(n).total_seconds() for n in (1, 2, 3, 4, 10)]
    assert 8 <= delays[0] <= 12
    assert 16 <= delays[1] <= 24
    assert 32 <= delays[2] <= 48
    assert 48 <= delays[3] <= 72
    assert delays[4] <= 72


def test_a_job_gives_up_after_its_last_attempt(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, "test.flaky", payload={"succeed_on": 99}, max_attempts=2)
    assert worker.run_once(runtime, worker="w", retry=NO_WAIT) == "retry"
    assert worker.run_once(runtime, worker="w", retry=NO_WAIT) == "failed"
    assert _job(runtime, job_id).state == "failed"
    assert GAVE_UP == ["ValueError: attempt 2 failed"]
    assert worker.run_once(runtime, worker="w") is None


def test_a_dead_workers_job_is_taken_over_after_its_lease(runtime: Runtime,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    [job_id] = _enqueue(runtime, "test.record")
    now = utcnow()
    monkeypatch.setattr(queue, "utcnow", lambda: now)  # the queue's clock, moved by hand
    dead = queue.claim(runtime.session_factory, worker="dead", lease=timedelta(minutes=5))
    assert dead is not None
    assert dead.id == job_id
    now += timedelta(minutes=4, seconds=59)
    assert worker.run_once(runtime, worker="alive") is None  # the lease still holds
    now += timedelta(seconds=2)
    assert worker.run_once(runtime, worker="alive") == "done"
    attempts = _attempts(runtime, job_id)
    assert [(a.worker, a.outcome) for a in attempts] == [("dead", "lost"), ("alive", "done")]
    assert "expired" in (attempts[0].error or "")
    # the dead worker coming back cannot finish an attempt that is no longer its own
    assert queue.complete(runtime.session_factory, dead) is False
    assert RAN == [(job_id, "alive")]


def test_a_dedupe_key_queues_a_job_once(runtime: Runtime) -> None:
    with runtime.transaction() as session:
        assert queue.enqueue(session, "test.record", dedupe_key="k") is not None
        assert queue.enqueue(session, "test.record", dedupe_key="k") is None


def test_periodic_jobs_are_queued_once_per_interval(runtime: Runtime) -> None:
    first = schedule.queue_due(runtime, force=True)
    assert set(first) == {"retention_sweep", "dsr_deadlines", "key_destruction",
                          "export_expiry"}
    assert schedule.queue_due(runtime, force=True) == []
    assert schedule.queue_due(runtime) == []  # throttled as well


def test_several_workers_never_run_a_job_twice(runtime: Runtime, dialect: str) -> None:
    ids = set(_enqueue(runtime, "test.record", 120))
    workers = 4 if dialect == "postgresql" else 2

    def drain(name: str) -> None:
        while worker.run_once(runtime, worker=name) is not None:
            pass

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(job_id for job_id, _ in RAN)
    assert set(counts) == ids
    assert set(counts.values()) == {1}
    if dialect == "postgresql":  # SKIP LOCKED lets the workers share the queue
        assert len({name for _, name in RAN}) > 1
