"""Stored responses of `Idempotency-Key`: sealed under the subject's key, purged by erasure (a
replay then answers 410 instead of writing the record again), audited when replayed, and
expired after PGW_IDEMPOTENCY_TTL_HOURS."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from app.clock import utcnow
from app.config import Settings
from app.db import make_engine, upgrade
from app.dsr.jobs import expire_exports
from app.idempotency import IdempotencyKey
from app.jobs import worker
from app.jobs.queue import Claimed
from app.runtime import Runtime
from tests.gateway import Clients, audit_entries, make_record


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(idempotency_ttl_hours=2)


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients("compliance_officer", sub="svc-crm",
                   scope="records:write records:read dsr:submit dsr:verify")


def _row(runtime: Runtime, key: str) -> IdempotencyKey:
    with runtime.session_factory() as session:
        row = session.get(IdempotencyKey, ("svc-crm", key))
        assert row is not None
        session.expunge(row)
        return row


def test_a_stored_response_is_sealed_replayed_with_an_audit_entry_and_gone_after_erasure(
        admin: httpx.Client, crm: httpx.Client, runtime: Runtime) -> None:
    body = make_record(subject_id="rest-1")
    headers = {"Idempotency-Key": "write-rest-1"}
    first = crm.post("/v1/records", json=body, headers=headers)
    assert first.status_code == 201, first.text
    stored = _row(runtime, "write-rest-1")
    assert stored.stored_response is None
    assert stored.sealed_response is not None
    assert "rest-1" not in stored.sealed_response
    assert first.json()["record_id"] not in stored.sealed_response

    again = crm.post("/v1/records", json=body, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    [replayed] = audit_entries(admin, "idempotency.replayed")
    assert (replayed["actor"], replayed["subject_id"], replayed["resource"],
            replayed["details"]) == ("svc-crm", "rest-1", "route:POST /v1/records",
                                     {"status": 201, "personal_data": True})

    submitted = crm.post("/v1/dsr", json={"subject_id": "rest-1", "type": "erasure",
                                          "jurisdiction": "GDPR",
                                          "verification": {"method": "app_login"}})
    assert submitted.json()["status"] == "received"
    worker.run(runtime, stop=threading.Event(), until_idle=True)
    assert admin.get(f"/v1/dsr/{submitted.json()['id']}").json()["status"] == "completed"
    erased = _row(runtime, "write-rest-1")
    assert (erased.stored_response, erased.sealed_response, erased.subject_id,
            erased.request_hash) == (None, None, None, "")
    assert erased.erased_at is not None

    replay = crm.post("/v1/records", json=body, headers=headers)
    assert replay.status_code == 410
    assert replay.json()["type"].endswith("subject-erased")
    assert "rest-1" not in replay.text
    [refused] = audit_entries(admin, "idempotency.replay_refused")
    assert (refused["actor"], refused["outcome"]) == ("svc-crm", "denied")
    # the record was not written again
    assert admin.post("/v1/subjects/lookup", json={"email": body["data"]["email"]}).json()[
        "subject_ids"] == []


def test_responses_without_personal_data_stay_clear_and_are_kept_by_erasure(
        crm: httpx.Client, runtime: Runtime) -> None:
    body = {"subject_id": "rest-2", "type": "access", "jurisdiction": "PIPL",
            "verification": {"method": "app_login"}}
    first = crm.post("/v1/dsr", json=body, headers={"Idempotency-Key": "dsr-1"})
    stored = _row(runtime, "dsr-1").stored_response
    assert stored is not None
    assert (stored["id"], stored["status"]) == (first.json()["id"], first.json()["status"])
    assert stored["__headers__"] == {"Location": first.headers["Location"]}
    assert _row(runtime, "dsr-1").subject_id is None


def test_entries_expire_after_the_configured_time(
        crm: httpx.Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {"Idempotency-Key": "write-rest-3"}
    first = crm.post("/v1/records", json=make_record(subject_id="rest-3"), headers=headers)
    created = _row(runtime, "write-rest-3")
    assert created.expires_at - created.created_at == timedelta(hours=2)  # the setting

    later = utcnow() + timedelta(hours=2, minutes=1)
    monkeypatch.setattr("app.idempotency.utcnow", lambda: later)
    # past its time the key is free: another body is a new request, not a 422
    other = crm.post("/v1/records", json=make_record(subject_id="rest-4"), headers=headers)
    assert other.status_code == 201, other.text
    assert other.json()["record_id"] != first.json()["record_id"]

    crm.post("/v1/records", json=make_record(subject_id="rest-5"),
             headers={"Idempotency-Key": "write-rest-5"})
    monkeypatch.setattr("app.idempotency.utcnow", lambda: later + timedelta(hours=3))
    expire_exports(runtime, Claimed(id=0, kind="export_expiry", payload={}, ref=None,
                                    attempt=1, worker="test"))
    with runtime.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_entries_stored_before_the_migration_name_their_subject_and_expire(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0007")
    engine = make_engine(url)
    try:
        made = datetime(2026, 11, 27, 9, 0)
        with engine.begin() as connection:
            for key, response in (("k-record", {"record_id": "rec_1", "subject_id": "rest-1"}),
                                  ("k-dsr", {"id": "dsr_1", "status": "received"})):
                connection.execute(text(
                    "INSERT INTO idempotency_keys (caller, key, route, request_hash, "
                    "status_code, response, created_at) VALUES ('svc', :key, 'POST /x', 'h', "
                    "201, :response, :made)"), {"key": key, "response": json.dumps(response),
                                                "made": made})
        upgrade(url)
        with engine.connect() as connection:
            rows: dict[str, str] = dict(connection.execute(text(
                "SELECT key, subject_id FROM idempotency_keys")).all())
            expiry = connection.scalar(text("SELECT DISTINCT expires_at FROM idempotency_keys"))
        assert rows == {"k-record": "rest-1", "k-dsr": None}
        assert str(expiry).startswith("2026-11-28 09:00:00")
    finally:
        engine.dispose()
