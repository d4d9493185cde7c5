"""A queued row the gateway did not write (the service's database role may insert into the queue
by hand) neither stops the sequencer nor becomes an entry that breaks readers of the log: it is
integrated as an `audit.entry.malformed` stand-in, and the entries after it follow as usual."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.audit import intake, sequencer
from app.runtime import Runtime
from tests.audit.conftest import sequenced, write_entries
from tests.server import LiveServer
from tests.tokens import make_token

DEEP = '{"a":' * 5000 + "1" + "}" * 5000
ROWS = [  # (roles, details, outcome, the reason named)
    ('["agent"]', '{"a": 1e400}', "allowed", "no canonical JSON: ValueError"),
    ('{"x": 1}', '{"n": 1}', "allowed", "roles is not a list of strings"),
    ('["agent"]', '"a string"', "allowed", "details is not an object"),
    ('["agent", 7]', "{}", "allowed", "roles is not a list of strings"),
    ('["agent"]', "{}", "weird-outcome", "unknown outcome"),
    ('["agent"]', DEEP, "allowed", "unreadable JSON: RecursionError"),
]


def queue_by_hand(runtime: Runtime, roles: str, details: str, outcome: str) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO audit_pending (ts, actor, roles, action, subject_id, outcome, details) "
            "VALUES (:ts, 'mallory', :roles, 'record.read', 'subj-9', :outcome, :details)"),
            {"ts": "2026-11-30 12:00:00+00:00" if runtime.engine.dialect.name == "postgresql"
             else "2026-11-30 12:00:00.000000", "roles": roles, "details": details,
             "outcome": outcome})


@pytest.mark.parametrize(("roles", "details", "outcome", "reason"), ROWS,
                         ids=["huge-number", "roles-object", "details-string", "roles-not-text",
                              "outcome", "deep"])
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
