"""A queued row the gateway did not write (the service's database role may insert into the queue
by hand) neither stops the sequencer nor becomes an entry that breaks readers of the log: it is
integrated as an `audit.entry.malformed` stand-in, and the entries after it follow as usual."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.audit import intake, sequencer, tree
from app.audit import service as audit
from app.auth.guard import Caller
from app.runtime import Runtime
from tests.audit.conftest import sequenced, write_entries
from tests.server import LiveServer
from tests.tokens import make_token

DEEP = '{"a":' * 5000 + "1" + "}" * 5000
# past what the JSON parser refuses but deeper than readers' serialisers go (pydantic's: 255)
NESTED = '{"a":' * 300 + "[1]" + "}" * 300
ROWS = [  # (roles, details, outcome, the reason named)
    ('["agent"]', '{"a": 1e400}', "allowed", "no canonical JSON: ValueError"),
    ('{"x": 1}', '{"n": 1}', "allowed", "roles is not a list of strings"),
    ('["agent"]', '"a string"', "allowed", "details is not an object"),
    ('["agent", 7]', "{}", "allowed", "roles is not a list of strings"),
    ('["agent"]', "{}", "weird-outcome", "unknown outcome"),
    ('["agent"]', DEEP, "allowed", "unreadable JSON: RecursionError"),
    ('["agent"]', NESTED, "allowed", f"details nested deeper than {intake.MAX_DEPTH} levels"),
]


def queue_by_hand(runtime: Runtime, roles: str, details: str, outcome: str,
                  ts: str | None = None) -> None:
    if ts is None:
        ts = "2026-11-30 12:00:00+00:00" if runtime.engine.dialect.name == "postgresql" \
            else "2026-11-30 12:00:00.000000"
    with runtime.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_pending (ts, actor, roles, action, subject_id, outcome, details) "
            "VALUES (:ts, 'mallory', :roles, 'record.read', 'subj-9', :outcome, :details)"),
            {"ts": ts, "roles": roles, "details": details, "outcome": outcome})


@pytest.mark.parametrize(("roles", "details", "outcome", "reason"), ROWS,
                         ids=["huge-number", "roles-object", "details-string", "roles-not-text",
                              "outcome", "deep", "nested"])
def test_a_malformed_row_becomes_a_stand_in_and_the_log_goes_on(
        runtime: Runtime, live: LiveServer, roles: str, details: str, outcome: str,
        reason: str, caplog: pytest.LogCaptureFixture) -> None:
    write_entries(runtime, 2)
    queue_by_hand(runtime, roles, details, outcome)
    write_entries(runtime, 2, actor="after")
    result = sequencer.step(runtime)  # one batch: nothing raised, everything integrated
    assert result is not None
    assert result.size == 5
    assert "audit queue row 3 is malformed" in caplog.text
    assert reason in caplog.text

    client = live.client(make_token())
    page = client.get("/v1/audit", params={"limit": 100})
    assert page.status_code == 200, page.text
    items = {item["seq"]: item for item in page.json()["items"]}
    stand_in = items[3]
    assert stand_in["action"] == intake.MALFORMED
    assert stand_in["outcome"] == "error"
    assert stand_in["actor"] == "mallory"
    assert stand_in["subject_id"] == "subj-9"
    assert stand_in["details"]["reason"] == reason
    assert stand_in["details"]["action"] == "record.read"
    assert len(stand_in["details"]["sha256"]) == 64
    assert items[4]["actor"] == items[5]["actor"] == "after"
    assert client.get("/v1/audit/entries/3/proof").status_code in (200, 409)
    verified = client.get("/v1/audit/verify").json()
    assert verified["ok"] is True, verified
    assert sequenced(runtime) == 8  # the three reads above, audited in turn


def test_a_well_formed_row_queued_by_hand_is_taken_as_it_is(runtime: Runtime) -> None:
    queue_by_hand(runtime, '["agent"]', '{"fields": ["email"]}', "denied")
    assert sequenced(runtime) == 1
    with runtime.engine.connect() as conn:
        row = conn.execute(text("SELECT action, outcome FROM audit_entries")).one()
    assert tuple(row) == ("record.read", "denied")


def test_nesting_up_to_the_limit_is_an_entry_like_any_other(runtime: Runtime,
                                                             live: LiveServer) -> None:
    depth = intake.MAX_DEPTH - 1  # the details object itself is one level
    queue_by_hand(runtime, '["agent"]', '{"a":' * depth + "[1]" + "}" * depth, "allowed")
    assert sequenced(runtime) == 1
    client = live.client(make_token())
    page = client.get("/v1/audit")
    assert page.status_code == 200, page.text
    assert page.json()["items"][0]["action"] == "record.read"


# times Python's datetime cannot hold, as each database would take them by hand
# (and before the year 1000, which some platforms' strftime writes without four digits)
BAD_TIMES = {"postgresql": ["infinity", "-infinity", "0044-03-15 12:00:00 BC",
                            "10000-01-01 00:00:00", "0999-12-31 23:00:00"],
             "sqlite": ["infinity", "10000-01-01 00:00:00", "the day after tomorrow",
                        "0999-12-31 23:00:00.000000"]}


@pytest.mark.parametrize("index", range(5))
def test_a_time_python_cannot_hold_fails_its_row_alone(
        runtime: Runtime, live: LiveServer, dialect: str, index: int,
        caplog: pytest.LogCaptureFixture) -> None:
    if index >= len(BAD_TIMES[dialect]):
        pytest.skip(f"{dialect} has fewer such times")
    bad = BAD_TIMES[dialect][index]
    write_entries(runtime, 1)
    queue_by_hand(runtime, '["agent"]', '{"n": 1}', "allowed", ts=bad)
    write_entries(runtime, 1, actor="after")
    client = live.client(make_token())
    metrics = client.get("/metrics").text  # the lag is the queue's own clock, not the rows' ts
    lag = [line for line in metrics.splitlines()
           if line.startswith("pgw_audit_integration_lag_seconds ")]
    assert len(lag) == 1
    assert 0 <= float(lag[0].split()[1]) < 60, lag
    result = sequencer.step(runtime)
    assert result is not None
    assert result.size == 3
    assert "audit queue row 2 is malformed (unreadable time)" in caplog.text

    page = client.get("/v1/audit")
    assert page.status_code == 200, page.text
    stand_in = page.json()["items"][1]
    assert stand_in["action"] == intake.MALFORMED
    assert stand_in["details"]["reason"] == "unreadable time"
    assert stand_in["details"]["ts"] != ""  # what the row said, as the database gave it
    assert page.json()["items"][2]["actor"] == "after"
    assert client.get("/v1/audit/verify").json()["ok"] is True


def test_the_lag_is_measured_by_the_queue_not_by_the_time_a_writer_gave(
        runtime: Runtime) -> None:
    old = "2000-01-01 00:00:00+00:00" if runtime.engine.dialect.name == "postgresql" \
        else "2000-01-01 00:00:00.000000"
    queue_by_hand(runtime, '["agent"]', "{}", "allowed", ts=old)
    with runtime.session_factory() as session:
        waiting, lag = tree.integration_lag(session)
    assert waiting == 1
    assert 0 <= lag < 60  # not 26 years
    time.sleep(1.1)
    with runtime.session_factory() as session:
        assert tree.integration_lag(session)[1] >= 1.0  # and it does grow while nobody sequences


def test_the_queue_refuses_a_row_too_large(runtime: Runtime) -> None:
    """256 KiB of roles and details at most (the gateway's own entries are far below): stored
    compressed, a row of megabytes could take a few kilobytes on disk."""
    huge = '{"a": "' + "0" * intake.MAX_ROW_BYTES + '"}'
    with pytest.raises(IntegrityError):
        queue_by_hand(runtime, '["agent"]', huge, "allowed")


def test_a_row_too_large_where_the_check_is_gone_is_not_even_fetched(
        runtime: Runtime, dialect: str, caplog: pytest.LogCaptureFixture) -> None:
    if dialect != "postgresql":
        pytest.skip("dropping a CHECK on SQLite means copying the table")
    with runtime.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_pending DROP CONSTRAINT ck_audit_pending_size"))
    try:
        queue_by_hand(runtime, '["agent"]', '{"a": [' + "0," * 2_000_000 + "0]}", "allowed")
        write_entries(runtime, 1, actor="after")
        result = sequencer.step(runtime)
        assert result is not None
        assert result.size == 2
        with runtime.engine.connect() as conn:
            details = conn.execute(text("SELECT details::text FROM audit_entries WHERE seq = 1"))
            noted = json.loads(details.scalar_one())
        assert noted["reason"] == f"roles and details larger than {intake.MAX_ROW_BYTES} bytes"
        assert noted["bytes"] > 4_000_000
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_pending"))
            conn.execute(text(
                "ALTER TABLE audit_pending ADD CONSTRAINT ck_audit_pending_size CHECK "
                "(octet_length(roles::text) + octet_length(details::text) <= 262144)"))


def test_a_batch_reads_a_bounded_amount_of_json(runtime: Runtime) -> None:
    """However large the rows queued, one batch holds at most about BATCH_BYTES of them."""
    row = '{"a": "' + "0" * (intake.MAX_ROW_BYTES - 100) + '"}'
    count = intake.BATCH_BYTES // intake.MAX_ROW_BYTES + 8
    for _ in range(count):
        queue_by_hand(runtime, '["agent"]', row, "allowed")
    first = sequencer.step(runtime)
    assert first is not None
    assert 0 < first.added <= intake.BATCH_BYTES // (intake.MAX_ROW_BYTES - 100) + 1
    assert first.added < count
    assert sequenced(runtime) == count  # the rest follow in the next batches


def test_the_gateways_own_writer_refuses_an_entry_too_large(runtime: Runtime) -> None:
    details = {f"k{i}": "x" * 200 for i in range(500)}  # 100 KB: names and counts never are
    with runtime.session_factory() as session, pytest.raises(ValueError, match="larger than"):
        audit.record(session, caller=Caller(sub="svc"), action="test.large", details=details)
