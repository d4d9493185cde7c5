"""A record read on PostgreSQL runs its statements without a transaction until one needs it
(`db.begin_lazily`): a masked read sends its record statement and its audit entry, each
committed as it runs, and no BEGIN or COMMIT. Anything a read changes on the way (an expired
grant) begins a transaction first, at the engine's isolation, so it commits with its audit
entries or not at all. A read whose entry cannot be written fails: tests/audit/test_fail_closed.py
(its read sends the entry on its own)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from psycopg import pq
from sqlalchemy import event, func, select

from app.access.models import AccessRequest, AccessRequestStatus
from app.audit import service as audit
from app.audit.models import AuditPending
from app.auth.guard import Caller
from app.clock import utcnow
from app.errors import AuditWriteFailed
from app.records import reading, service
from app.records.reading import View
from app.runtime import Runtime

WRITER = Caller(sub="svc-crm", roles=("support_agent",), scopes=frozenset({"records:write"}))
READER = Caller(sub="agent-7", roles=("support_agent",), scopes=frozenset({"records:read"}))


def _write(runtime: Runtime, subject_id: str) -> str:
    keys = service.Keys.of(runtime, runtime.require_keyring())
    with runtime.transaction() as session:
        written = service.create(
            session, runtime.policy, keys, caller=WRITER, subject_id=subject_id,
            purpose="account_management", record_type="customer_profile",
            data={"name": "Li Na", "email": "li.na@example.com", "phone": "13812345678"})
    return written.record.id


def _read(runtime: Runtime, record_id: str) -> View:
    with runtime.session_factory() as session:
        seen = reading.read_one(session, runtime.policy, runtime.require_keyring(),
                                caller=READER, record_id=record_id,
                                purpose="customer_support", only=None)
        session.commit()
    return seen


@contextmanager
def wire(runtime: Runtime) -> Iterator[list[str]]:
    """What the client sends PostgreSQL meanwhile, from libpq's own trace of the protocol:
    one line per message ('Query "BEGIN"', 'Parse ... "INSERT ..."', 'Sync', ...)."""
    sent: list[str] = []
    traces: list[tuple[Any, Any]] = []

    def taken(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        trace = tempfile.TemporaryFile()
        dbapi_connection.pgconn.trace(trace.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        traces.append((dbapi_connection, trace))

    event.listen(runtime.engine, "checkout", taken)
    try:
        yield sent
    finally:
        event.remove(runtime.engine, "checkout", taken)
        for dbapi_connection, trace in traces:
            dbapi_connection.pgconn.untrace()
            trace.seek(0)
            sent.extend(" ".join(line.split("\t")[2:])  # direction, length, message
                        for line in trace.read().decode().splitlines() if line.startswith("F"))
            trace.close()


def _pending(runtime: Runtime, action: str) -> int:
    with runtime.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(AuditPending)
                                  .where(AuditPending.action == action)) or 0)


def test_a_masked_read_sends_two_statements_and_no_begin_or_commit(
        runtime: Runtime, dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("SQLite's BEGIN and COMMIT are no round trips")
    record_id = _write(runtime, "lazy-1")
    _read(runtime, record_id)  # the subject's key is cached from here on
    with wire(runtime) as sent:
        seen = _read(runtime, record_id)
    assert seen.access["email"]["decision"] == "masked"
    queries = [line for line in sent if line.startswith(("Query", "Parse"))]
    assert len(queries) == 2, sent
    assert "SELECT records.id" in queries[0]
    assert "INSERT INTO audit_pending" in queries[1]
    assert "RETURNING" not in queries[1]  # nothing reads the entry's new id back
    assert not [line for line in sent if "BEGIN" in line or "COMMIT" in line], sent
    assert _pending(runtime, "record.read") == 2


def test_a_read_that_expires_a_grant_commits_it_with_its_entries_or_not_at_all(
        runtime: Runtime, dialect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    record_id = _write(runtime, "lazy-2")
    isolation: list[str] = []
    if dialect == "postgresql":
        # whatever the server's default, the transaction a read begins is READ COMMITTED, as
        # every other is: the expiry's conditional update relies on it
        with runtime.engine.connect() as connection:
            connection.exec_driver_sql(
                f'ALTER DATABASE "{runtime.engine.url.database}" '
                "SET default_transaction_isolation = 'repeatable read'")
            connection.commit()
        runtime.engine.dispose()

        def expired(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
            if statement.startswith("UPDATE access_requests"):
                isolation.append(cursor.connection.execute(
                    "SHOW transaction_isolation").fetchone()[0])

        event.listen(runtime.engine, "after_cursor_execute", expired)
    now = utcnow()
    with runtime.transaction() as session:
        session.add(AccessRequest(
            id="ar_lazy", requester=READER.sub, subject_id="lazy-2", record_id=record_id,
            fields=["email"], purpose="customer_support", justification="a call back",
            duration_seconds=60, status=AccessRequestStatus.APPROVED,
            created_at=now - timedelta(hours=2), decided_by="supervisor-2",
            decided_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1)))

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the audit log's table is gone")

    with monkeypatch.context() as patch:
        patch.setattr(audit, "append", broken)
        with pytest.raises(AuditWriteFailed):
            _read(runtime, record_id)
    assert isolation in ([], ["read committed"])
    with runtime.session_factory() as session:  # the expiry went with the entries
        grant = session.get(AccessRequest, "ar_lazy")
        assert grant is not None
        assert grant.status is AccessRequestStatus.APPROVED
    assert _pending(runtime, "access.expired") == 0

    seen = _read(runtime, record_id)
    assert seen.access["email"]["decision"] == "masked"  # the grant is over
    with runtime.session_factory() as session:
        grant = session.get(AccessRequest, "ar_lazy")
        assert grant is not None
        assert grant.status is AccessRequestStatus.EXPIRED
    assert _pending(runtime, "access.expired") == 1
    assert _pending(runtime, "record.read") == 1
    if dialect == "postgresql":
        assert isolation == ["read committed", "read committed"]


def test_a_connection_goes_back_to_the_pool_as_it_came(runtime: Runtime) -> None:
    """After a read, the connection is transactional again: a write on it that rolls back
    leaves nothing (were it still in autocommit, each statement would have stayed)."""
    record_id = _write(runtime, "lazy-4")
    _read(runtime, record_id)
    with runtime.engine.connect() as connection:  # the pool's last given back (LIFO)
        if connection.dialect.name == "postgresql":
            assert connection.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
            assert connection.get_isolation_level() == "READ COMMITTED"
        connection.exec_driver_sql("DELETE FROM audit_pending")
        connection.rollback()
    assert _pending(runtime, "record.read") == 1
