"""Two database roles on PostgreSQL: migrations run as the owner, the service as a role that may
add to the audit log and read it, and can neither rewrite it, empty it, alter it, nor switch its
triggers off, whatever its credentials are used for."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.cli import main as pgw
from app.config import Settings
from app.main import create_app
from app.runtime import open_runtime
from tests.audit.conftest import sequenced, write_entries
from tests.databases import _admin_dsn
from tests.server import LiveServer
from tests.tokens import make_token

ATTACKS = [
    "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1",
    "DELETE FROM audit_entries WHERE seq > 1",
    "TRUNCATE audit_entries",
    "ALTER TABLE audit_entries DISABLE TRIGGER USER",
    "SET session_replication_role = replica",
    "DELETE FROM audit_checkpoints",
    "DELETE FROM audit_tree_nodes",
    "UPDATE audit_tree_nodes SET hash = 'x'",
    "UPDATE audit_pending SET actor = 'mallory'",
    "DELETE FROM consent_events",
    "DROP TABLE audit_entries",
    "CREATE TRIGGER t BEFORE INSERT ON audit_entries FOR EACH ROW "
    "EXECUTE FUNCTION pgw_refuse_change()",
]


@pytest.fixture
def service_url(dialect: str, databases: object, database_url: str,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if dialect != "postgresql":
        pytest.skip("database roles are a PostgreSQL feature (set PGW_TEST_DATABASE_URL)")
    role = f"pgw_svc_{secrets.token_hex(4)}"
    admin = _admin_dsn(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    monkeypatch.setenv("PGW_MIGRATION_DATABASE_URL", database_url)
    monkeypatch.setenv("PGW_SERVICE_ROLE", role)
    yield make_url(database_url).set(username=role).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_the_service_role_adds_to_the_log_and_cannot_rewrite_it(
        service_url: str, make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(database_url=service_url)
    monkeypatch.setenv("PGW_DATABASE_URL", service_url)
    monkeypatch.setenv("PGW_DATA_DIR", str(settings.data_dir))
    assert pgw(["migrate"]) == 0  # as the owner: brings the grants up to date too

    runtime = open_runtime(settings)
    try:
        write_entries(runtime, 5)
        assert sequenced(runtime) == 5  # the sequencer's moves are allowed to the service role
    finally:
        runtime.close()
    client = start_server(create_app(settings)).client(make_token())
    assert client.post("/v1/audit/checkpoints").status_code == 201
    verified = client.get("/v1/audit/verify").json()
    assert verified["ok"] is True

    engine = create_engine(service_url)
    try:
        for statement in ATTACKS:
            # refused by privileges, before any trigger would see it
            with pytest.raises(DBAPIError, match="permission denied|must be owner"), \
                    engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    assert client.get("/v1/audit/verify").json()["entries"] == verified["entries"] + 1
