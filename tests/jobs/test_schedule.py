"""Periodic jobs: a run that failed for good is run again the same interval, after a growing
pause, once at a time, and not past the start of the next interval."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.jobs import queue, schedule, worker
from app.jobs.models import Job
from app.jobs.queue import Claimed, Retry
from app.runtime import Runtime

NO_WAIT = Retry(base=timedelta(0))
MINUTE = timedelta(minutes=1)


def _sweep_failing(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The retention sweep fails its first `times` attempts; the slot of every attempt."""
    calls: list[int] = []

    def sweep(runtime: Runtime, claimed: Claimed) -> None:
        calls.append(claimed.payload["slot"])
        if len(calls) <= times:
            raise RuntimeError("database is locked")

    monkeypatch.setitem(queue.REGISTRY.handlers, "retention_sweep", sweep)
    return calls


def _run_sweeps(runtime: Runtime) -> list[str]:
    """Run every due retention sweep, retries included; the outcome of each attempt."""
    outcomes = []
    lease = timedelta(seconds=30)
    while (claimed := queue.claim(runtime.session_factory, worker="w", lease=lease,
                                  kinds=("retention_sweep",))) is not None:
        outcomes.append(worker.execute(runtime, claimed, lease=lease, retry=NO_WAIT))
    return outcomes


def _sweeps(runtime: Runtime) -> list[Job]:
    with runtime.session_factory() as session:
        return list(session.scalars(select(Job).where(Job.kind == "retention_sweep")
                                    .order_by(Job.id)))


def _failed_at(runtime: Runtime, job_id: int, moment: datetime) -> None:
    """As if the job had given up at `moment`."""
    with runtime.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.state == "failed"
        job.finished_at = moment


def _make_due(runtime: Runtime, job_id: int) -> None:
    with runtime.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.run_at = min(job.run_at, utcnow())


def _today() -> tuple[datetime, datetime]:
    """Start and end of the daily sweep's current interval."""
    day = int(utcnow().timestamp()) // 86400 * 86400
    return datetime.fromtimestamp(day, UTC), datetime.fromtimestamp(day + 86400, UTC)


def test_a_daily_run_that_failed_for_good_runs_again_the_same_day(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _sweep_failing(monkeypatch, times=3)
    assert "retention_sweep" in schedule.queue_due(runtime, force=True)
    assert _run_sweeps(runtime) == ["retry", "retry", "failed"]
    start, _ = _today()
    [first] = _sweeps(runtime)
    _failed_at(runtime, first.id, start)

    assert schedule.queue_due(runtime, force=True) == ["retention_sweep"]
    assert schedule.queue_due(runtime, force=True) == []  # one rerun waits, not two
    failed, rerun = _sweeps(runtime)
    assert rerun.state == "queued"
    assert rerun.payload == {"slot": first.payload["slot"], "rerun": 1}
    assert 24 * MINUTE <= rerun.run_at - start <= 36 * MINUTE  # a 48th of a day, jittered

    _make_due(runtime, rerun.id)
    assert _run_sweeps(runtime) == ["done"]
    assert schedule.queue_due(runtime, force=True) == []  # it succeeded: nothing more today
    assert [job.state for job in _sweeps(runtime)] == ["failed", "done"]
    assert calls == [first.payload["slot"]] * 4


def test_reruns_back_off_are_queued_once_and_stop_at_the_next_interval(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    _sweep_failing(monkeypatch, times=99)
    schedule.queue_due(runtime, force=True)
    assert _run_sweeps(runtime) == ["retry", "retry", "failed"]
    start, end = _today()
    _failed_at(runtime, _sweeps(runtime)[0].id, start)

    # several workers look at once: one rerun is queued
    barrier = threading.Barrier(4)
    queued: list[list[str]] = []

    def look() -> None:
        barrier.wait()
        queued.append(schedule.queue_due(runtime, force=True))

    threads = [threading.Thread(target=look) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(queued) == [[], [], [], ["retention_sweep"]]
    rerun = _sweeps(runtime)[1]

    _make_due(runtime, rerun.id)
    assert _run_sweeps(runtime) == ["retry", "retry", "failed"]
    _failed_at(runtime, rerun.id, start + timedelta(hours=1))
    assert schedule.queue_due(runtime, force=True) == ["retention_sweep"]
    second = _sweeps(runtime)[2]
    assert second.payload["rerun"] == 2
    # twice the first pause, which reaches the cap of an hour
    assert 48 * MINUTE <= second.run_at - (start + timedelta(hours=1)) <= 72 * MINUTE

    _make_due(runtime, second.id)
    assert _run_sweeps(runtime) == ["retry", "retry", "failed"]
    _failed_at(runtime, second.id, end - 10 * MINUTE)
    # a rerun would start after tomorrow's regular run is due: none is queued
    assert schedule.queue_due(runtime, force=True) == []
    assert [job.state for job in _sweeps(runtime)] == ["failed"] * 3


@pytest.mark.parametrize(("every", "first", "cap"), [
    (15 * 60, 18.75, 112.5), (3600, 75, 450), (86400, 1800, 3600), (7 * 86400, 3600, 3600)])
def test_rerun_pauses_double_up_to_an_eighth_of_the_interval_or_an_hour(
        every: int, first: float, cap: float) -> None:
    pauses = [schedule.rerun_delay(every_seconds=every, rerun=n).total_seconds()
              for n in range(1, 12)]
    assert 0.8 * first <= pauses[0] <= 1.2 * first
    assert 0.8 * min(cap, 2 * first) <= pauses[1] <= 1.2 * min(cap, 2 * first)
    assert all(0.8 * cap <= pause <= 1.2 * cap for pause in pauses[-3:])
