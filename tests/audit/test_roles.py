"""Database roles on PostgreSQL: migrations run as the owner, the service as a role that may add
to the audit log's queue and read the log, and the sequencer as a third role that alone moves
entries onto the log. Neither can rewrite the log, empty it, alter it or switch its triggers off;
the service cannot take queued entries away or stall the sequencer."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.audit import sequencer
from app.audit import service as audit
from app.cli import main as pgw
from app.config import Settings
from app.main import create_app
from app.runtime import open_runtime
from tests.audit.conftest import write_entries
from tests.databases import _admin_dsn
from tests.server import LiveServer
from tests.tokens import make_token

REWRITES = [
    "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1",
    "DELETE FROM audit_entries WHERE seq > 1",
    "TRUNCATE audit_entries",
    "ALTER TABLE audit_entries DISABLE TRIGGER USER",
    "SET session_replication_role = replica",
    "DELETE FROM audit_checkpoints",
    "DELETE FROM audit_tree_nodes",
    "UPDATE audit_tree_nodes SET hash = 'x'",
    "UPDATE audit_pending SET actor = 'mallory'",
    # an id of one's own would put an entry before others committed earlier
    "INSERT INTO audit_pending (id, ts, actor, roles, action, outcome, details) "
    "VALUES (-1000, now(), 'x', '[]', 'x', 'allowed', '{}')",
    # the queue's own clock measures the integration lag: an old time would raise a false alarm
    "INSERT INTO audit_pending (queued_at, ts, actor, roles, action, outcome, details) "
    "VALUES (now() + interval '1 day', now(), 'x', '[]', 'x', 'allowed', '{}')",
    "DELETE FROM consent_events",
    "DROP TABLE audit_entries",
    "CREATE TRIGGER t BEFORE INSERT ON audit_entries FOR EACH ROW "
    "EXECUTE FUNCTION pgw_refuse_change()",
    "CREATE TEMPORARY TABLE audit_entries (seq bigint)",
]
SERVICE_ONLY = [  # what the sequencer's role may do and the service's may not
    "DELETE FROM audit_pending",
    "INSERT INTO audit_entries (seq, ts, actor, roles, action, outcome, details, prev_hash, "
    "hash) VALUES (999, now(), 'x', '[]', 'x', 'allowed', '{}', 'x', 'x')",
    "INSERT INTO audit_checkpoints (size, head, created_at, key_id, signature) "
    "VALUES (999, 'x', now(), 'x', 'x')",
    "INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (0, 999, 'x')",
    "SELECT id FROM audit_sequencer FOR UPDATE",
]


@pytest.fixture
def roles(dialect: str, database_url: str, monkeypatch: pytest.MonkeyPatch,
          ) -> Iterator[tuple[str, str]]:
    """URLs of the service's and the sequencer's roles, granted by `pgw migrate`."""
    if dialect != "postgresql":
        pytest.skip("database roles are a PostgreSQL feature (set PGW_TEST_DATABASE_URL)")
    suffix = secrets.token_hex(4)
    names = (f"pgw_svc_{suffix}", f"pgw_seq_{suffix}")
    admin = _admin_dsn(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE ROLE "{name}" LOGIN')
    monkeypatch.setenv("PGW_MIGRATION_DATABASE_URL", database_url)
    monkeypatch.setenv("PGW_SERVICE_ROLE", names[0])
    monkeypatch.setenv("PGW_SEQUENCER_ROLE", names[1])
    assert pgw(["migrate"]) == 0  # as the owner: brings the grants up to date too
    yield tuple(make_url(database_url).set(username=name).render_as_string(hide_password=False)
                for name in names)  # type: ignore[misc]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


def refused(url: str, statements: list[str]) -> list[str]:
    """The statements the role refuses on privileges, before any trigger would see them."""
    engine = create_engine(url)
    refusals = []
    try:
        for statement in statements:
            try:
                with engine.begin() as conn:
                    conn.execute(text(statement))
            except DBAPIError as exc:
                if "permission denied" in str(exc) or "must be owner" in str(exc):
                    refusals.append(statement)
    finally:
        engine.dispose()
    return refusals


def test_neither_role_can_rewrite_the_log_and_the_service_cannot_hide_entries(
        roles: tuple[str, str], make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    service_url, sequencer_url = roles
    settings = make_settings(database_url=service_url, sequencer_database_url=sequencer_url)
    runtime = open_runtime(settings)
    try:
        write_entries(runtime, 5)
        result = sequencer.step(runtime)  # as the sequencer's role
        assert result is not None
        assert result.size == 5
        client = start_server(create_app(settings)).client(make_token())
        verified = client.get("/v1/audit/verify").json()
        assert verified["ok"] is True
        assert verified["entries"] == 5
        # the service's role may not sign: that is the sequencer's, every N entries or seconds
        assert client.post("/v1/audit/checkpoints").status_code == 409
        assert refused(service_url, REWRITES + SERVICE_ONLY) == REWRITES + SERVICE_ONLY
        assert refused(sequencer_url, REWRITES) == REWRITES
        sequencer.step(runtime)  # the reads above were audited, and sequenced now
        assert client.get("/v1/audit/verify").json()["entries"] == 6
    finally:
        runtime.close()


def test_a_serving_process_needs_only_the_sequencers_name(
        roles: tuple[str, str], make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture) -> None:
    """With PGW_SEQUENCER_ROLE and no sequencer URL, `pgw serve` never sequences (it could not:
    its role may not) and holds no credentials that could take queued entries away; a
    `pgw worker` with the sequencer's URL integrates what it queues."""
    service_url, sequencer_url = roles
    serving = make_settings(database_url=service_url,
                            sequencer_role=make_url(sequencer_url).username)
    worker = open_runtime(make_settings(database_url=service_url,
                                        sequencer_database_url=sequencer_url))
    served = open_runtime(serving)
    try:
        assert served.sequencer_session_factory is not None
        write_entries(served, 3)
        with served.session_factory() as session:  # waits for a sequencer; none runs yet
            audit.catch_up(session, timeout=0.2)
        assert pending(service_url) == 3  # nothing taken off the queue, nothing failed
        assert "could not be brought up to date" not in caplog.text  # it did not try
        assert sequencer.step(worker) is not None
        assert pending(service_url) == 0
        client = start_server(create_app(serving)).client(make_token())
        stop = threading.Event()
        thread = threading.Thread(target=sequencer.run, args=(worker,), kwargs={"stop": stop})
        thread.start()
        try:
            verified = client.get("/v1/audit/verify").json()
        finally:
            stop.set()
            thread.join()
        assert verified["ok"] is True
        assert verified["entries"] == 3
    finally:
        served.close()
        worker.close()


def pending(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM audit_pending")).scalar_one())
    finally:
        engine.dispose()
