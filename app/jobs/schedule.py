"""Periodic jobs from the policy's `schedules`: one run per interval, queued by whichever
worker looks first (a unique key per interval stops the others).

A run that fails for good (all its attempts) is run again in the same interval rather than
skipped until the next one (a day, for the retention sweep): after a pause that doubles with
each rerun, from a 48th of the interval up to an eighth of it or an hour. A schedule has one
run outstanding at a time: a rerun is queued only once the interval's last run has failed, under
a unique key of its own, and never to start after the interval ends, when the next regular run
takes over.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.jobs import queue
from app.jobs.models import Job, JobState
from app.jobs.queue import Retry
from app.runtime import Runtime

CHECK_EVERY_SECONDS = 5.0
MAX_ATTEMPTS = 3  # of each run; then a rerun, later in the interval
_last_check: dict[int, float] = {}


def rerun_delay(*, every_seconds: int, rerun: int) -> timedelta:
    """How long after the last run failed the `rerun`-th rerun of the interval starts."""
    return Retry(base=timedelta(seconds=every_seconds / 48),
                 cap=timedelta(seconds=min(3600, every_seconds / 8))).delay(rerun)


def _runs(session: Session, key: str) -> list[Job]:
    """This interval's runs, oldest first (a first run queued by an older version has no ref)."""
    return list(session.scalars(select(Job).where(or_(Job.ref == key, Job.dedupe_key == key))
                                .order_by(Job.id)))


def _queue(session: Session, *, name: str, every_seconds: int, now: datetime) -> bool:
    """Queue the interval's first run, or a rerun after one that failed for good."""
    slot = int(now.timestamp()) // every_seconds
    key = f"periodic:{name}:{slot}"
    runs = _runs(session, key)
    if not runs:
        return queue.enqueue(session, name, {"slot": slot}, ref=key, dedupe_key=key,
                             max_attempts=MAX_ATTEMPTS) is not None
    last, rerun = runs[-1], len(runs)
    if last.state != JobState.FAILED:
        return False
    run_at = (last.finished_at or now) + rerun_delay(every_seconds=every_seconds, rerun=rerun)
    if run_at >= datetime.fromtimestamp((slot + 1) * every_seconds, UTC):
        return False
    return queue.enqueue(session, name, {"slot": slot, "rerun": rerun}, ref=key,
                         dedupe_key=f"{key}:rerun:{rerun}", run_at=run_at,
                         max_attempts=MAX_ATTEMPTS) is not None


def queue_due(runtime: Runtime, *, force: bool = False) -> list[str]:
    """Queue this interval's run of every enabled schedule that has none yet, or a rerun of one
    whose last run failed for good."""
    now_mono = time.monotonic()
    if not force and now_mono - _last_check.get(id(runtime), -CHECK_EVERY_SECONDS) \
            < CHECK_EVERY_SECONDS:
        return []
    _last_check[id(runtime)] = now_mono
    now = utcnow()
    queued = []
    with runtime.transaction() as session:
        for name, entry in runtime.policy.body.schedules.items():
            if entry.enabled and _queue(session, name=name, every_seconds=entry.every.seconds,
                                        now=now):
                queued.append(name)
    return queued
