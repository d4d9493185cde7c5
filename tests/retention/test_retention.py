"""Retention with an injectable clock: nothing goes early, everything goes on time, as policy
says (delete, de-identify, a field's own period), consent withdrawal starts a countdown, and a
legal hold keeps what it covers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from app.cli import main as pgw
from app.config import Settings
from app.records.models import BlindIndex, Record
from app.retention import sweep
from app.runtime import Runtime
from tests.gateway import audit_entries, grant_consent, write
from tests.retention.conftest import write_order
from tests.test_cli import cli_env

DAY = timedelta(days=1)


def _record(runtime: Runtime, record_id: str) -> Record | None:
    with runtime.session_factory() as session:
        return session.get(Record, record_id)


def test_nothing_goes_before_its_time_and_everything_on_time(
        crm: httpx.Client, runtime: Runtime, admin: httpx.Client) -> None:
    now = datetime.now(UTC)
    profile = write(crm, subject_id="cust-r")["record_id"]
    order = write_order(crm)
    policy = runtime.policy

    assert sweep.plan(runtime.transaction, policy, now=now + 179 * DAY).as_dict() == {}
    assert sweep.plan(runtime.transaction, policy, now=now + 181 * DAY).as_dict() == {
        "order": {"fields_removed": 2}}
    sweep.run(runtime.transaction, policy, now=now + 181 * DAY)
    stored = _record(runtime, order)
    assert stored is not None
    assert set(stored.data) == {"order_number", "amount"}  # the address and phone went

    sweep.run(runtime.transaction, policy, now=now + 1094 * DAY)
    assert _record(runtime, profile) is not None
    report = sweep.run(runtime.transaction, policy, now=now + 1096 * DAY)
    assert report.as_dict() == {"customer_profile": {"delete": 1}}
    assert _record(runtime, profile) is None
    with runtime.session_factory() as session:
        assert session.scalars(select(BlindIndex).where(
            BlindIndex.record_id == profile)).all() == []

    assert sweep.run(runtime.transaction, policy, now=now + 1824 * DAY).as_dict() == {}
    sweep.run(runtime.transaction, policy, now=now + 1826 * DAY)
    kept = _record(runtime, order)
    assert kept is not None
    assert kept.deidentified_at is not None
    assert kept.data == {"amount": "15.00"}  # the order number links to other systems
    assert kept.subject_id.startswith("deidentified:")
    runs = audit_entries(admin, "retention.run")
    assert [r["details"]["counts"] for r in runs][-2:] == [{}, {"order": {"deidentify": 1}}]


def test_a_legal_hold_keeps_what_it_covers(crm: httpx.Client, runtime: Runtime,
                                           admin: httpx.Client) -> None:
    now = datetime.now(UTC)
    held = write(crm, subject_id="cust-held")["record_id"]
    free = write(crm, subject_id="cust-free")["record_id"]
    order = write_order(crm, "cust-free")
    assert admin.post("/v1/legal-holds", json={"subject_id": "cust-held",
                                                "reason": "tax audit 2026"}).status_code == 201
    assert admin.post("/v1/legal-holds", json={"record_type": "order",
                                                "reason": "regulator inquiry"}).status_code == 201
    report = sweep.run(runtime.transaction, runtime.policy, now=now + 2000 * DAY)
    assert report.as_dict() == {"customer_profile": {"delete": 1, "held": 1},
                                "order": {"fields_held": 2, "held": 1}}
    assert _record(runtime, held) is not None
    assert _record(runtime, order) is not None
    assert _record(runtime, free) is None


def test_withdrawing_consent_starts_the_countdown(crm: httpx.Client, runtime: Runtime,
                                                  admin: httpx.Client) -> None:
    grant_consent(admin, "cust-m", "marketing_email")
    record_id = write(crm, subject_id="cust-m", purpose="marketing_email",
                      record_type="marketing_preferences",
                      data={"channels": "email", "interests": "tea"})["record_id"]
    now = datetime.now(UTC)
    assert sweep.plan(runtime.transaction, runtime.policy, now=now + 5000 * DAY).as_dict() == {}
    withdrawn = admin.post("/v1/subjects/cust-m/consents/marketing_email/withdraw")
    assert withdrawn.status_code in (200, 201), withdrawn.text
    after = datetime.now(UTC)
    report = sweep.run(runtime.transaction, runtime.policy, now=now)
    assert report.as_dict() == {"marketing_preferences": {"countdown_started": 1}}
    stored = _record(runtime, record_id)
    assert stored is not None
    assert stored.retention_until is not None
    assert now <= stored.retention_until - 730 * DAY <= after  # from the withdrawal
    assert sweep.run(runtime.transaction, runtime.policy, now=now + 729 * DAY).as_dict() == {}
    assert sweep.run(runtime.transaction, runtime.policy, now=now + 731 * DAY).as_dict() == {
        "marketing_preferences": {"delete": 1}}


def test_contact_data_collected_on_consent_goes_after_withdrawal(
        crm: httpx.Client, runtime: Runtime, admin: httpx.Client) -> None:
    grant_consent(admin, "cust-n", "marketing_email")
    record_id = write(crm, subject_id="cust-n", purpose="marketing_email",
                      data={"email": "news@example.cn"})["record_id"]
    now = datetime.now(UTC)
    assert sweep.run(runtime.transaction, runtime.policy, now=now).as_dict() == {}
    admin.post("/v1/subjects/cust-n/consents/marketing_email/withdraw")
    assert sweep.run(runtime.transaction, runtime.policy, now=now + DAY).as_dict() == {
        "customer_profile": {"countdown_started": 1}}
    assert sweep.run(runtime.transaction, runtime.policy, now=now + 29 * DAY).as_dict() == {}
    assert sweep.run(runtime.transaction, runtime.policy, now=now + 31 * DAY).as_dict() == {
        "customer_profile": {"delete": 1}}  # after_withdrawal_days: 30 in the policy
    assert _record(runtime, record_id) is None


def test_an_order_kept_by_law_after_erasure_is_deleted_when_its_period_ends(
        crm: httpx.Client, runtime: Runtime, admin: httpx.Client,
        drain: Callable[[], int]) -> None:
    now = datetime.now(UTC)
    order = write_order(crm, "cust-x")
    submitted = crm.post("/v1/dsr", json={"subject_id": "cust-x", "type": "erasure",
                                          "jurisdiction": "PIPL",
                                          "verification": {"method": "app_login"}})
    assert submitted.status_code == 202, submitted.text
    drain()
    kept = _record(runtime, order)
    assert kept is not None
    assert kept.erased_at is not None
    assert sweep.run(runtime.transaction, runtime.policy, now=now + 1824 * DAY).as_dict() == {}
    # an erased subject's order is deleted, not de-identified like other orders
    assert sweep.run(runtime.transaction, runtime.policy, now=now + 1826 * DAY).as_dict() == {
        "order": {"delete": 1}}
    assert _record(runtime, order) is None


def test_the_command_line_plans_and_runs(crm: httpx.Client, settings: Settings,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str],
                                         runtime: Runtime) -> None:
    record_id = write(crm, subject_id="cust-c")["record_id"]
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    later = (datetime.now(UTC) + 1100 * DAY).isoformat()
    assert pgw(["retention", "plan", "--at", later]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "customer_profile  delete 1"
    assert _record(runtime, record_id) is not None
    assert pgw(["retention", "run", "--at", later]) == 0
    assert "delete 1" in capsys.readouterr().out
    assert _record(runtime, record_id) is None
    assert pgw(["retention", "plan"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "nothing is due"
