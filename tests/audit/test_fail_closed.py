"""If the audit entry cannot be written, the request fails and nothing it did is committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from sqlalchemy import text

from app.audit import service as audit
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.config import Settings
from app.deps import SessionDep
from app.errors import Forbidden
from app.main import create_app
from app.runtime import Runtime
from tests.audit.conftest import sequenced, write_entries
from tests.server import LiveServer
from tests.tokens import make_token

Reader = Annotated[Caller, Depends(RequireScope(Scope.AUDIT_READ))]


def break_audit_inserts(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        if runtime.engine.dialect.name == "postgresql":
            conn.execute(text("CREATE FUNCTION test_refuse_insert() RETURNS trigger "
                              "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"))
            conn.execute(text("CREATE TRIGGER test_refuse BEFORE INSERT ON audit_pending "
                              "FOR EACH ROW EXECUTE FUNCTION test_refuse_insert()"))
        else:
            conn.execute(text("CREATE TRIGGER test_refuse BEFORE INSERT ON audit_pending "
                              "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))


def count(runtime: Runtime, table: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_state_change_fails_and_is_rolled_back(runtime: Runtime, live: LiveServer) -> None:
    write_entries(runtime, 3)
    sequenced(runtime)
    checkpoints = count(runtime, "audit_checkpoints")
    break_audit_inserts(runtime)
    response = live.client(make_token()).post("/v1/audit/checkpoints")
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "urn:pgw:problem:audit-write-failed"
    assert "disk full" not in response.text
    assert count(runtime, "audit_checkpoints") == checkpoints  # the new one was not committed
    assert count(runtime, "audit_entries") == 3
    metrics = live.client().get("/metrics").text
    assert "pgw_audit_append_failures_total 1.0" in metrics


def test_reads_of_the_log_fail_when_they_cannot_be_audited(runtime: Runtime,
                                                           live: LiveServer) -> None:
    write_entries(runtime, 2)
    break_audit_inserts(runtime)
    response = live.client(make_token()).get("/v1/audit")
    assert response.status_code == 500
    assert "items" not in response.json()


def test_a_denial_outlives_the_rollback_of_its_request(settings: Settings, runtime: Runtime,
                                                       start_server: Callable[..., LiveServer],
                                                       ) -> None:
    app = create_app(settings)
    @app.post("/test/deny")
    def deny(session: SessionDep, caller: Reader) -> None:
        audit.record(session, caller=caller, action="test.changed")  # rolled back with the change
        audit.record(session, caller=caller, action="test.denied", outcome=audit.Outcome.DENIED,
                     details={"reason": "no consent"})
        raise Forbidden("no consent")

    server = start_server(app)
    response = server.client(make_token()).post("/test/deny")
    assert response.status_code == 403
    sequenced(runtime)
    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT action, outcome FROM audit_entries")).all()
    assert [tuple(row) for row in rows] == [("test.denied", "denied")]


def test_record_writes_and_reads_fail_when_they_cannot_be_audited(runtime: Runtime,
                                                                  live: LiveServer) -> None:
    """The records endpoints commit on their own request thread (`deps.in_session`): the audit
    entry failing there still fails the request, with nothing stored and nothing shown."""
    client = live.client(make_token(scope="records:write records:read",
                                    roles=["compliance_officer"]))
    profile = {"subject_id": "cust-9", "purpose": "account_management",
               "record_type": "customer_profile",
               "data": {"name": "Mary Jones", "email": "mary@example.com"}}
    written = client.post("/v1/records", json=profile)
    assert written.status_code == 201, written.text
    break_audit_inserts(runtime)
    refused = client.post("/v1/records", json={**profile, "subject_id": "cust-10"})
    assert refused.status_code == 500
    assert refused.json()["type"] == "urn:pgw:problem:audit-write-failed"
    assert count(runtime, "records") == 1
    read = client.get(f"/v1/records/{written.json()['record_id']}",
                      params={"purpose": "account_management"})
    assert read.status_code == 500
    assert read.json()["type"] == "urn:pgw:problem:audit-write-failed"
    assert "mary" not in read.text.lower()
