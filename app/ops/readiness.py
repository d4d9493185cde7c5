"""Readiness that tells the truth: each check does for real, on a connection of its own, what
serving needs (reach the migrated database, append to the audit log, commit a write, unwrap
keys with the right KEK, have disk left), and the probe answers within a bounded time even when
the database does not."""

from __future__ import annotations

import shutil
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.db import migration_state
from app.errors import GatewayError, database_error
from app.ops import workers
from app.ops.models import Heartbeat

if TYPE_CHECKING:
    from app.runtime import Runtime

PROBE = Caller.system("readiness")


def _why(exc: Exception, what: str) -> str:
    known = database_error(exc) if isinstance(exc, SQLAlchemyError) else None
    if isinstance(exc, GatewayError) and exc.status >= 500:
        known = exc
    return f"{what}: {known.title.lower() if known else type(exc).__name__}"


def _database(runtime: Runtime) -> list[str]:
    assert runtime.probe_engine is not None  # noqa: S101 - open_runtime makes one
    current, head = migration_state(runtime.probe_engine)
    if current != head:
        return [f"database at migration {current}, expected {head}: run pgw migrate"]
    return []


def _audit_append(factory: sessionmaker[Session]) -> None:
    """Append an entry the way a request does, then roll it back: nothing is logged."""
    with factory() as session:
        writer = session.info[audit.WRITER_KEY]
        draft = audit.Draft(actor=PROBE.sub, roles=PROBE.roles, action="ops.readiness_probe",
                            outcome=audit.Outcome.ALLOWED, purpose=None, subject_id=None,
                            resource=None, details={}, request_id=None)
        audit.append(session, drafts=[draft], writer=writer)
        session.rollback()


def _write(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.execute(update(Heartbeat).where(Heartbeat.name == "readiness")
                        .values(beat_at=utcnow()))
        session.commit()


def _disk(runtime: Runtime) -> list[str]:
    settings = runtime.settings
    free_mb = shutil.disk_usage(settings.data_dir).free // (1024 * 1024)
    if free_mb < settings.min_free_disk_mb:
        return [f"disk almost full: {free_mb} MB free in PGW_DATA_DIR "
                f"(PGW_MIN_FREE_DISK_MB={settings.min_free_disk_mb})"]
    return []


def problems(runtime: Runtime) -> list[str]:
    """Why this process cannot serve now (empty when it can). Blocking: run off the loop."""
    factory = runtime.probe_session_factory
    assert factory is not None  # noqa: S101 - open_runtime makes one
    found = _disk(runtime)
    try:
        found += _database(runtime)
    except SQLAlchemyError as exc:
        return [*found, _why(exc, "database unreachable")]
    if found:
        return found
    for check, what in ((_audit_append, "audit log cannot be appended"),
                        (_write, "database does not accept writes")):
        try:
            check(factory)
        except (SQLAlchemyError, GatewayError) as exc:
            found.append(_why(exc, what))
    try:
        found += runtime.sync_keys(factory)
    except (SQLAlchemyError, GatewayError) as exc:
        found.append(_why(exc, "keys cannot be checked"))
    return found


def worker_liveness(runtime: Runtime) -> workers.Liveness | None:
    """Whether a worker runs jobs: not a reason to stop serving (records, consent and reads
    need none), so /readyz reports it as a warning, and an alert on the metric pages someone."""
    try:
        with runtime.read_session_factory() as session:
            return workers.liveness(session, stale=stale(runtime))
    except SQLAlchemyError:
        return None  # the database problem is a reason of its own already


def stale(runtime: Runtime) -> timedelta:
    return timedelta(seconds=runtime.settings.worker_stale_seconds)


def probe(runtime: Runtime) -> tuple[list[str], workers.Liveness | None]:
    """`problems` and then `worker_liveness`. Blocking: run off the loop."""
    return problems(runtime), worker_liveness(runtime)
