from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, state_column


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # gave up after its last attempt


class AttemptOutcome(StrEnum):
    RUNNING = "running"
    DONE = "done"
    RETRY = "retry"
    FAILED = "failed"
    LOST = "lost"  # its worker stopped and its lease ran out


class Job(Base):
    """One unit of background work. A worker claims it by taking a lease; a worker that dies
    leaves the lease to expire and another worker runs the job again, so every handler is
    idempotent (at-least-once delivery, exactly one effect)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # ids and names, never personal data
    ref: Mapped[str | None] = mapped_column(String(80), index=True)  # e.g. dsr:<id>
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    state: Mapped[JobState] = mapped_column(state_column(JobState, 16))
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_jobs_state_run_at", "state", "run_at"),)


class JobAttempt(Base):
    """Every attempt at a job, with its error: what a request's timeline shows."""

    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[AttemptOutcome] = mapped_column(state_column(AttemptOutcome, 16))
    error: Mapped[str | None] = mapped_column(Text)
