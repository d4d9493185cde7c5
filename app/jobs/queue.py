"""The job queue: enqueue in the caller's transaction, claim with a lease, finish or retry.

Claiming takes `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers never
claim the same job; on SQLite every write transaction begins IMMEDIATE, which serialises
claims. A worker that dies holds its lease until it expires; the next claim takes the job over
and records the lost attempt. Completion is a compare-and-set on the lease, so a worker that
lost its lease cannot mark someone else's attempt done.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.clock import utcnow
from app.jobs.models import AttemptOutcome, Job, JobAttempt, JobState

logger = logging.getLogger("pgw.jobs")
MAX_ERROR_CHARS = 500
DEFAULT_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Claimed:
    """What a handler sees of its job: a snapshot, not a live row."""

    id: int
    kind: str
    payload: dict[str, Any]
    ref: str | None
    attempt: int
    worker: str

    @classmethod
    def of(cls, job: Job, worker: str) -> Claimed:
        return cls(id=job.id, kind=job.kind, payload=dict(job.payload), ref=job.ref,
                   attempt=job.attempts, worker=worker)


@dataclass(frozen=True)
class Retry:
    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)

    def delay(self, attempt: int) -> timedelta:
        """Exponential back-off with jitter: base, 2 base, 4 base, ... up to the cap."""
        seconds = min(self.cap.total_seconds(), self.base.total_seconds() * 2 ** (attempt - 1))
        return timedelta(seconds=seconds * random.uniform(0.8, 1.2))  # noqa: S311 - jitter


@dataclass
class Registry:
    handlers: dict[str, Callable[..., None]] = field(default_factory=dict)
    on_failure: dict[str, Callable[[Session, Claimed, str], None]] = field(default_factory=dict)
    # kind -> lane: kinds whose jobs wait on others (a webhook receiver) run in a lane of their
    # own, so that a slow one never holds up the rest of the queue
    lanes: dict[str, str] = field(default_factory=dict)

    def lane_kinds(self) -> dict[str, tuple[str, ...]]:
        kinds: dict[str, list[str]] = {}
        for kind, lane in self.lanes.items():
            kinds.setdefault(lane, []).append(kind)
        return {lane: tuple(sorted(names)) for lane, names in kinds.items()}

    def add(self, kind: str, function: Callable[..., None], *,
            on_failure: Callable[[Session, Claimed, str], None] | None = None,
            lane: str | None = None) -> None:
        """Register the function that runs jobs of `kind` (and what to do when they give up);
        with `lane`, a running worker gives them a thread of their own."""
        self.handlers[kind] = function
        if on_failure is not None:
            self.on_failure[kind] = on_failure
        if lane is not None:
            self.lanes[kind] = lane


REGISTRY = Registry()


def handler(kind: str, *, on_failure: Callable[[Session, Claimed, str], None] | None = None,
            lane: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`REGISTRY.add` as a decorator, for tests' own kinds; the service's handlers are
    registered by `app.wiring.wire`."""
    def register(function: Callable[..., None]) -> Callable[..., None]:
        REGISTRY.add(kind, function, on_failure=on_failure, lane=lane)
        return function
    return register


def enqueue(session: Session, kind: str, payload: dict[str, Any] | None = None, *,
            ref: str | None = None, run_at: datetime | None = None,
            dedupe_key: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS
            ) -> Job | None:
    """Add a job in the caller's transaction; with `dedupe_key`, None if it already exists."""
    now = utcnow()
    job = Job(kind=kind, payload=payload or {}, ref=ref, dedupe_key=dedupe_key,
              state=JobState.QUEUED, run_at=run_at or now, attempts=0,
              max_attempts=max_attempts, created_at=now)
    if dedupe_key is None:
        session.add(job)
        session.flush()
        return job
    if session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key)) is not None:
        return None
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        return None
    return job


def _claimable(now: datetime, kinds: tuple[str, ...] | None,
               exclude: tuple[str, ...] = ()) -> Any:
    query = select(Job).where(or_(
        (Job.state == JobState.QUEUED) & (Job.run_at <= now),
        (Job.state == JobState.RUNNING) & (Job.lease_until < now),
    ))
    if kinds:
        query = query.where(Job.kind.in_(kinds))
    if exclude:
        query = query.where(Job.kind.not_in(exclude))
    return query.order_by(Job.run_at, Job.id).limit(1).with_for_update(skip_locked=True)


def claim(factory: sessionmaker[Session], *, worker: str, lease: timedelta,
          kinds: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()
          ) -> Claimed | None:
    """Take the next due job (or one whose worker's lease ran out) and hold it for `lease`;
    only of `kinds` if given, and of none of `exclude`."""
    with factory() as session:
        while True:
            now = utcnow()
            job = session.scalar(_claimable(now, kinds, exclude))
            if job is None:
                session.commit()
                return None
            if job.state == JobState.RUNNING:
                _mark_lost(session, job, now)
                if job.attempts >= job.max_attempts:
                    _give_up(session, job, "the worker stopped during the last attempt")
                    session.commit()
                    continue
            job.state, job.lease_owner, job.lease_until = JobState.RUNNING, worker, now + lease
            job.attempts += 1
            session.add(JobAttempt(job_id=job.id, attempt=job.attempts, worker=worker,
                                   started_at=now, outcome=AttemptOutcome.RUNNING))
            claimed = Claimed.of(job, worker)
            session.commit()
            return claimed


def _mark_lost(session: Session, job: Job, now: datetime) -> None:
    session.execute(update(JobAttempt).where(
        JobAttempt.job_id == job.id, JobAttempt.attempt == job.attempts,
        JobAttempt.outcome == AttemptOutcome.RUNNING).values(
        outcome=AttemptOutcome.LOST, finished_at=now,
        error=f"lease held by {job.lease_owner} expired: the worker stopped"))


def _give_up(session: Session, job: Job, error: str) -> None:
    job.state, job.finished_at, job.last_error = JobState.FAILED, utcnow(), error
    job.lease_owner = job.lease_until = None
    logger.error("job gave up", extra={"job_id": job.id, "kind": job.kind})
    callback = REGISTRY.on_failure.get(job.kind)
    if callback is not None:
        callback(session, Claimed.of(job, ""), error)


def _owned(session: Session, claimed: Claimed) -> Job | None:
    """The job row, locked, if this attempt still holds its lease."""
    return session.scalar(select(Job).where(
        Job.id == claimed.id, Job.state == JobState.RUNNING, Job.lease_owner == claimed.worker,
        Job.attempts == claimed.attempt).with_for_update())


def _finish_attempt(session: Session, claimed: Claimed, outcome: AttemptOutcome,
                    error: str | None = None) -> None:
    session.execute(update(JobAttempt).where(
        JobAttempt.job_id == claimed.id, JobAttempt.attempt == claimed.attempt).values(
        outcome=outcome, finished_at=utcnow(), error=error))


def renew(factory: sessionmaker[Session], claimed: Claimed, lease: timedelta) -> bool:
    """Extend the lease; False if it was lost (another worker took the job over)."""
    with factory() as session:
        done = session.execute(update(Job).where(
            Job.id == claimed.id, Job.state == JobState.RUNNING,
            Job.lease_owner == claimed.worker,
            Job.attempts == claimed.attempt).values(lease_until=utcnow() + lease)).rowcount  # type: ignore[attr-defined]
        session.commit()
        return bool(done)


def complete(factory: sessionmaker[Session], claimed: Claimed) -> bool:
    with factory() as session:
        job = _owned(session, claimed)
        if job is None:
            session.commit()
            logger.warning("job finished after its lease was lost", extra={"job_id": claimed.id})
            return False
        job.state, job.finished_at, job.lease_owner, job.lease_until = \
            JobState.DONE, utcnow(), None, None
        job.last_error = None
        _finish_attempt(session, claimed, AttemptOutcome.DONE)
        session.commit()
        return True


def fail(factory: sessionmaker[Session], claimed: Claimed, error: str, *,
         retry: Retry = Retry()) -> AttemptOutcome:
    """Record a failed attempt: retry later with back-off, or give up after the last one."""
    error = error[:MAX_ERROR_CHARS]
    with factory() as session:
        job = _owned(session, claimed)
        if job is None:
            session.commit()
            return AttemptOutcome.LOST
        job.last_error, job.lease_owner, job.lease_until = error, None, None
        if job.attempts >= job.max_attempts:
            _finish_attempt(session, claimed, AttemptOutcome.FAILED, error)
            _give_up(session, job, error)
            outcome = AttemptOutcome.FAILED
        else:
            job.state, job.run_at = JobState.QUEUED, utcnow() + retry.delay(job.attempts)
            _finish_attempt(session, claimed, AttemptOutcome.RETRY, error)
            outcome = AttemptOutcome.RETRY
        session.commit()
        return outcome


def attempts_for(session: Session, ref: str) -> list[tuple[Job, JobAttempt]]:
    """Every attempt of the jobs about `ref`, oldest first."""
    rows = session.execute(select(Job, JobAttempt).join(JobAttempt, JobAttempt.job_id == Job.id)
                           .where(Job.ref == ref).order_by(JobAttempt.started_at, JobAttempt.id))
    return [(job, attempt) for job, attempt in rows]


def jobs_for(session: Session, ref: str, *, limit: int = 100) -> list[Job]:
    """The jobs about `ref`, newest first."""
    return list(session.scalars(select(Job).where(Job.ref == ref)
                                .order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))


def unfinished_for(session: Session, ref: str) -> int | None:
    """The id of a job about `ref` that is queued or running, if there is one."""
    return session.scalar(select(Job.id).where(
        Job.ref == ref, Job.state.in_((JobState.QUEUED, JobState.RUNNING))).limit(1))


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state))
    return {state: int(n) for state, n in rows}
