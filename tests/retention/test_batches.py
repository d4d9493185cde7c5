"""The sweep in batches: each commits with its audit entry, other writers get in between, and a
run stopped midway is completed exactly once by the next, with counts that add up."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.records.models import Record
from app.retention import sweep
from app.retention.sweep import Batch
from app.runtime import Runtime
from tests.gateway import audit_entries, write
from tests.retention.conftest import write_order

DAY = timedelta(days=1)


class Stopped(Exception):
    """The process dies here."""


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep, "PAUSE_SECONDS", 0)


def _stored(runtime: Runtime) -> dict[str, Record]:
    """Every record, read on a connection of its own (what another process sees)."""
    with runtime.read_session_factory() as session:
        return {r.id: r for r in session.scalars(select(Record).order_by(Record.id))}


def _entries(admin: httpx.Client, action: str, run_id: str) -> list[dict[str, Any]]:
    return [e for e in audit_entries(admin, action)
            if e["resource"] == f"retention_run:{run_id}"]


def _added(entries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The counts of several audit entries, added up."""
    total: dict[str, Counter[str]] = {}
    for entry in entries:
        for record_type, actions in entry["details"]["counts"].items():
            total.setdefault(record_type, Counter()).update(actions)
    return {name: dict(sorted(c.items())) for name, c in sorted(total.items())}


def test_another_writer_gets_in_between_batches(crm: httpx.Client, runtime: Runtime,
                                                admin: httpx.Client) -> None:
    now = datetime.now(UTC)
    for i in range(6):
        write(crm, subject_id=f"cust-b{i}")
    by_id = sorted(_stored(runtime).values(), key=lambda r: r.id)
    last = by_id[-1]  # in the last batch
    seen: list[tuple[int, int]] = []

    def between(batch: Batch) -> None:
        if batch.number != 1:
            return
        # batch 1 is committed: another connection sees it, and its audit entry
        assert len(_stored(runtime)) == 4
        assert [e["details"]["batch"] for e in _entries(admin, "retention.batch",
                                                        batch.run_id)] == [1]
        # and another writer is not kept waiting for the rest of the sweep
        held = admin.post("/v1/legal-holds", json={"subject_id": last.subject_id,
                                                   "reason": "placed mid-sweep"}, timeout=5)
        seen.append((batch.number, held.status_code))

    report = sweep.run(runtime.transaction, runtime.policy, now=now + 1096 * DAY,
                       batch_size=2, run_id="mid", on_batch=between)

    assert seen == [(1, 201)]
    # the hold placed between batches keeps its subject's record, as any hold does
    assert report.as_dict() == {"customer_profile": {"delete": 5, "held": 1}}
    assert list(_stored(runtime)) == [last.id]
    batches = _entries(admin, "retention.batch", "mid")
    assert [e["details"]["batch"] for e in batches] == [1, 2, 3]
    [summary] = _entries(admin, "retention.run", "mid")
    assert summary["details"]["batches"] == 3
    assert summary["details"]["counts"] == _added(batches) == report.as_dict()


def test_a_run_stopped_after_a_batch_is_completed_exactly_once_by_the_next(
        crm: httpx.Client, runtime: Runtime, admin: httpx.Client) -> None:
    now = datetime.now(UTC)
    for i in range(5):
        write(crm, subject_id=f"cust-s{i}")
    for i in range(3):
        write_order(crm, f"cust-o{i}")
    at = now + 1826 * DAY  # profiles are deleted, orders de-identified
    before = _stored(runtime)
    first_four, rest = sorted(before)[:4], sorted(before)[4:]

    def die_after_two(batch: Batch) -> None:
        if batch.number == 2:
            raise Stopped

    with pytest.raises(Stopped):
        sweep.run(runtime.transaction, runtime.policy, now=at, batch_size=2, run_id="died",
                  on_batch=die_after_two)

    after_crash = _stored(runtime)
    for record_id in first_four:  # batches 1 and 2 are committed ...
        assert record_id not in after_crash or after_crash[record_id].deidentified_at
    for record_id in rest:  # ... and nothing after them was touched
        assert after_crash[record_id].subject_id == before[record_id].subject_id
        assert after_crash[record_id].deidentified_at is None
    died = _entries(admin, "retention.batch", "died")
    assert [e["details"]["batch"] for e in died] == [1, 2]
    assert sum(n for c in _added(died).values() for n in c.values()) == 4
    assert _entries(admin, "retention.run", "died") == []  # the run did not finish

    report = sweep.run(runtime.transaction, runtime.policy, now=at, batch_size=2,
                       run_id="again")
    assert sum(n for c in report.as_dict().values() for n in c.values()) == 4
    finished = _stored(runtime)
    for record_id, record in after_crash.items():  # what the first run did stands as it was
        if record.deidentified_at is not None:
            assert finished[record_id].subject_id == record.subject_id
            assert finished[record_id].deidentified_at == record.deidentified_at
    assert {r.record_type for r in finished.values()} == {"order"}
    assert all(r.deidentified_at is not None for r in finished.values())
    again = _entries(admin, "retention.batch", "again")
    [summary] = _entries(admin, "retention.run", "again")
    assert summary["details"]["counts"] == _added(again) == report.as_dict()
    assert summary["details"]["batches"] == len(again) == 2
    # the two runs' batch entries add up to what one run would have done: every record once
    assert _added(died + again) == {"customer_profile": {"delete": 5},
                                    "order": {"deidentify": 3}}
    assert sweep.run(runtime.transaction, runtime.policy, now=at).as_dict() == {}


def test_a_batch_that_fails_leaves_its_records_and_its_audit_entry_out_together(
        crm: httpx.Client, runtime: Runtime, admin: httpx.Client,
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)
    for i in range(4):
        write(crm, subject_id=f"cust-f{i}")
    for i in range(2):
        write_order(crm, f"cust-g{i}")
    before = _stored(runtime)
    ids = sorted(before)
    second_order = [i for i in ids if before[i].record_type == "order"][1]
    failing = ids.index(second_order) // 2  # the batch it is in, counting from 0
    deidentify = sweep.deidentify

    def fail_on_the_second_order(session: Any, spec: Any, record: Record,
                                 at: datetime) -> None:
        if record.id == second_order:
            raise Stopped
        deidentify(session, spec, record, at)

    monkeypatch.setattr(sweep, "deidentify", fail_on_the_second_order)
    with pytest.raises(Stopped):
        sweep.run(runtime.transaction, runtime.policy, now=now + 1826 * DAY, batch_size=2,
                  run_id="failed")

    stored = _stored(runtime)
    for record_id in ids[:2 * failing]:  # the batches before it were applied ...
        assert record_id not in stored or stored[record_id].deidentified_at is not None
    for record_id in ids[2 * failing:]:  # ... the failing batch not at all
        assert stored[record_id].subject_id == before[record_id].subject_id
        assert stored[record_id].deidentified_at is None
    entries = _entries(admin, "retention.batch", "failed")
    assert [e["details"]["batch"] for e in entries] == list(range(1, failing + 1))
    assert sum(n for c in _added(entries).values() for n in c.values()) == 2 * failing


def test_a_plan_in_batches_reports_what_one_batch_would(crm: httpx.Client,
                                                         runtime: Runtime) -> None:
    now = datetime.now(UTC)
    for i in range(3):
        write(crm, subject_id=f"cust-p{i}")
        write_order(crm, f"cust-p{i}")
    at = now + 1100 * DAY
    small = sweep.plan(runtime.transaction, runtime.policy, now=at, batch_size=2)
    assert small.as_dict() == {"customer_profile": {"delete": 3},
                               "order": {"fields_removed": 6}}
    assert sweep.plan(runtime.transaction, runtime.policy, now=at).as_dict() == small.as_dict()
    assert len(_stored(runtime)) == 6  # and changed nothing
