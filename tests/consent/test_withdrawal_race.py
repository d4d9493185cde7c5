"""A withdrawal and the writes in flight that rely on the consent it withdraws: once the
withdrawal has committed, no such write commits after it (issue 15, item 9).

Writers create and rectify records for `marketing_email` while the subject withdraws. Every
statement that stores a record is slowed down in the server (a listener on its engine), which
holds each write open between its consent check and its commit, as load does: without a lock
shared by the check and the withdrawal, a withdrawal commits inside that window."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.config import Settings
from app.consent.models import ConsentEvent
from app.records.models import Record
from tests.audit_log import sequence
from tests.gateway import Clients, grant_consent, write
from tests.server import LiveServer

PURPOSE = "marketing_email"
SUBJECTS = ("race-1", "race-2", "race-3")
STORE_DELAY = 0.03  # seconds each INSERT or UPDATE of a record waits in the server


@pytest.fixture
def slow_record_writes(live: LiveServer) -> Iterator[None]:
    engine: Engine = live.app.state.runtime.engine

    def slow(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith(("INSERT INTO records", "UPDATE records")):
            time.sleep(STORE_DELAY)

    event.listen(engine, "before_cursor_execute", slow)
    yield
    event.remove(engine, "before_cursor_execute", slow)


def _create(client: httpx.Client, subject_id: str, n: int) -> httpx.Response:
    if n % 2:  # encrypted fields: the write also locks the subject's key rows
        body = {"record_type": "customer_profile", "data": {"email": f"r{n}@example.cn"}}
    else:
        body = {"record_type": "marketing_preferences", "data": {"channels": "email"}}
    return client.post("/v1/records", json={"subject_id": subject_id, "purpose": PURPOSE,
                                             **body})


def _hammer(client: httpx.Client, subject_id: str, record_id: str, stop: threading.Event,
            statuses: Counter[tuple[str, int]], patch: bool) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        if patch:
            response = client.patch(f"/v1/records/{record_id}", json={
                "purpose": PURPOSE, "data": {"interests": f"tea {n}"}})
        else:
            response = _create(client, subject_id, n)
        statuses["patch" if patch else "create", response.status_code] += 1


def _wait_for(statuses: Counter[tuple[str, int]], outcome: tuple[str, int]) -> None:
    deadline = time.monotonic() + 20
    while statuses[outcome] < 3:
        assert time.monotonic() < deadline, statuses
        time.sleep(0.02)


def _race(clients: Clients, admin: httpx.Client, subject_id: str) -> Counter[tuple[str, int]]:
    """Three writers and one rectifier for the subject; the withdrawal lands among them."""
    record_id = write(clients(), subject_id=subject_id, purpose=PURPOSE,
                      record_type="marketing_preferences",
                      data={"channels": "email", "interests": "tea"})["record_id"]
    stop, statuses = threading.Event(), Counter[tuple[str, int]]()
    threads = [threading.Thread(target=_hammer, args=(clients(), subject_id, record_id, stop,
                                                      statuses, n == 0)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(statuses, ("create", 201))
        withdrawn = admin.post(f"/v1/subjects/{subject_id}/consents/{PURPOSE}/withdraw")
        assert withdrawn.status_code == 200, withdrawn.text
        _wait_for(statuses, ("create", 403))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return statuses


def _late_writes(database_url: str, subject_id: str) -> tuple[list[int], list[str]]:
    """Audit entries of writes for the purpose after the withdrawal's entry, and records
    created or changed after the withdrawal was recorded."""
    engine = create_engine(database_url)
    with Session(engine) as session:
        entries = session.execute(select(AuditEntry.seq, AuditEntry.action).where(
            AuditEntry.subject_id == subject_id).order_by(AuditEntry.seq)).all()
        [withdrawal] = session.scalars(select(ConsentEvent).where(
            ConsentEvent.subject_id == subject_id, ConsentEvent.event == "withdrawn")).all()
        records = session.scalars(select(Record).where(
            Record.subject_id == subject_id, Record.purpose == PURPOSE)).all()
    engine.dispose()
    [withdrawn_seq] = [seq for seq, action in entries if action == "consent.withdrawn"]
    late = [seq for seq, action in entries
            if seq > withdrawn_seq and action in ("record.created", "record.rectified")]
    changed = [r.id for r in records if max(r.created_at, r.updated_at) > withdrawal.recorded_at]
    return late, changed


def test_no_write_relying_on_consent_commits_after_its_withdrawal(
        clients: Clients, admin: httpx.Client, database_url: str, settings: Settings,
        slow_record_writes: None) -> None:
    for subject_id in SUBJECTS:
        grant_consent(admin, subject_id, PURPOSE)
    for subject_id in SUBJECTS:
        statuses = _race(clients, admin, subject_id)
        # writes went through before the withdrawal and were refused after it, with no
        # deadlock or other failure on the way
        assert {status for _, status in statuses} <= {200, 201, 403}, statuses
        sequence(settings)
        late, changed = _late_writes(database_url, subject_id)
        assert late == [], f"{subject_id}: writes audited after the withdrawal: {late}"
        assert changed == [], f"{subject_id}: records written after the withdrawal: {changed}"
