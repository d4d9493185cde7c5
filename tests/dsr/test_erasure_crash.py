"""An erasure survives a worker killed with SIGKILL at every step, and so does the delivery of
its webhook event: restarted, it completes once, and nothing of the subject remains."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import MetaData, select

from app.config import Settings
from app.jobs.models import Job
from app.keys.models import SubjectKey
from app.runtime import Runtime
from tests.dsr.conftest import Receiver
from tests.gateway import PROFILE, Clients, audit_entries, write

REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 1.0
CRASHES = ("erasure.records.before_commit", "erasure.records", "erasure.copies",
           "erasure.keys", "erasure.completed", "webhook.sent")


def _worker(settings: Settings, crash_at: str | None) -> int:
    """`pgw worker --until-idle` in its own process; returns its exit code (-9: SIGKILL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGW_")}
    assert settings.jwt_secret is not None
    env |= {"PGW_ENV": "dev", "PGW_DATA_DIR": str(settings.data_dir),
            "PGW_DATABASE_URL": settings.sqlalchemy_url,
            "PGW_POLICY_DIR": str(settings.policy_dir),
            "PGW_JWT_SECRET": settings.jwt_secret.get_secret_value(),
            "PGW_JWT_ISSUER": settings.jwt_issuer,
            "PGW_JOB_LEASE_SECONDS": str(LEASE_SECONDS), "PGW_WORKER_POLL_SECONDS": "0.1",
            "PGW_JOB_RETRY_BASE_SECONDS": "0.1", "PGW_LOG_LEVEL": "WARNING",
            "PGW_WEBHOOK_ALLOW_HOSTS": ",".join(settings.webhook_allow_hosts)}
    if crash_at:
        env["PGW_CRASH_AT"] = crash_at
    done = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--until-idle"],
                          cwd=REPO, env=env, capture_output=True, timeout=120, check=False)
    return done.returncode


def test_erasure_completes_once_after_a_kill_at_every_step(
        admin: httpx.Client, clients: Clients, settings: Settings, runtime: Runtime,
        receiver: Receiver) -> None:
    crm = clients("compliance_officer",
                  scope="records:write records:read dsr:submit dsr:verify")
    admin.post("/v1/webhooks", json={"url": receiver.url, "events": ["subject.erased"]})
    write(crm, subject_id="cust-k", data={**PROFILE, "notes": "call 13698765432 after 6pm"})
    write(crm, subject_id="cust-k", purpose="order_fulfilment", record_type="order",
          data={"order_number": "SO-1", "amount": "9.90",
                "shipping_address": "北京市朝阳区建国路88号", "recipient_phone": "13912345678"})
    kept = crm.post("/v1/protect", json={
        "subject_id": "cust-k", "purpose": "customer_support",
        "record_type": "customer_profile", "data": {"name": "张伟", "phone": "13812345678"}})
    assert kept.status_code == 200, kept.text
    submitted = crm.post("/v1/dsr", json={"subject_id": "cust-k", "type": "erasure",
                                          "jurisdiction": "GDPR",
                                          "verification": {"method": "app_login"}})
    assert submitted.status_code == 202, submitted.text
    dsr_id = submitted.json()["id"]

    for crash_at in CRASHES:
        assert _worker(settings, crash_at) == -9, f"the worker did not reach {crash_at}"
        time.sleep(LEASE_SECONDS + 0.2)  # the dead worker's lease runs out
    assert _worker(settings, None) == 0

    state = admin.get(f"/v1/dsr/{dsr_id}").json()
    assert state["status"] == "completed"
    lost = [e for e in state["timeline"] if e["event"] == "job.lost"]
    assert len(lost) == 5  # one per crash of the request's own job
    assert len(audit_entries(admin, "dsr.erasure.completed")) == 1
    assert len(audit_entries(admin, "keys.destroyed")) == 1
    with runtime.session_factory() as session:
        keys = list(session.scalars(select(SubjectKey).where(SubjectKey.subject_id == "cust-k")))
        assert keys
        assert all(k.state == "destroyed" and k.wrapped_dek is None for k in keys)
        assert set(session.scalars(select(Job.state))) <= {"done"}

    # nothing of the subject's data is left in clear anywhere
    metadata = MetaData()
    metadata.reflect(runtime.engine)
    with runtime.engine.connect() as connection:
        dump = "\n".join(str(row) for table in metadata.sorted_tables
                         for row in connection.execute(table.select())).lower()
    for value in ("张伟", "zhang.wei@example.cn", "13812345678", "11010519491231002x",
                  "1949-12-31", "13698765432", "北京市朝阳区建国路88号", "13912345678"):
        assert value not in dump, value

    # what the upstream kept can no longer be unprotected
    time.sleep(1.1)  # the server's key cache notices the destruction within a second
    gone = crm.post("/v1/unprotect", json={
        "subject_id": "cust-k", "purpose": "customer_support",
        "record_type": "customer_profile", "data": kept.json()["data"]})
    assert gone.status_code == 410, gone.text

    # the webhook was sent again after the crash that followed sending it: same event id
    ids = {event["id"] for _, event, _ in receiver.events}
    assert len(receiver.events) == 2
    assert len(ids) == 1
