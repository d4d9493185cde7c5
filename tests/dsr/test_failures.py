"""What goes wrong: failed attempts on the timeline, giving up, retrying; webhook receivers
that fail; exports that expire; the worker inside the development server."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from app.config import Settings
from app.dsr.jobs import expire_exports
from app.dsr.models import DsrExport
from app.jobs.models import Job
from app.jobs.queue import Claimed
from app.main import create_app
from app.runtime import Runtime
from tests.dsr.conftest import Receiver
from tests.gateway import Clients, write
from tests.server import LiveServer
from tests.tokens import make_token

Drain = Callable[[], int]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(job_retry_base_seconds=0.05, webhook_allow_hosts=("127.0.0.1",))


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients("compliance_officer",
                   scope="records:write records:read dsr:submit dsr:verify")


def _drain_until(drain: Drain, done: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the jobs did not finish"
        drain()
        time.sleep(0.1)


def test_a_failing_request_shows_its_errors_gives_up_and_can_be_retried(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, runtime: Runtime) -> None:
    write(crm, subject_id="cust-f")
    dsr_id = crm.post("/v1/dsr", json={"subject_id": "cust-f", "type": "erasure",
                                       "jurisdiction": "GDPR",
                                       "verification": {"method": "app_login"}}).json()["id"]
    signer, runtime.receipt_signer = runtime.receipt_signer, None  # certificates cannot be signed
    with runtime.transaction() as session:
        session.execute(update(Job).where(Job.kind == "dsr.run").values(max_attempts=3))
    _drain_until(drain, lambda: admin.get(f"/v1/dsr/{dsr_id}").json()["status"] == "failed")
    state = admin.get(f"/v1/dsr/{dsr_id}").json()
    errors = [e for e in state["timeline"] if e["event"] in ("job.retry", "job.failed")]
    assert [e["event"] for e in errors] == ["job.retry", "job.retry", "job.failed"]
    assert "receipt signing key is unavailable" in errors[0]["error"]
    assert state["timeline"][-1]["event"] == "failed"

    runtime.receipt_signer = signer
    assert admin.post(f"/v1/dsr/{dsr_id}/retry").json()["status"] == "received"
    assert admin.post(f"/v1/dsr/{dsr_id}/retry").status_code == 409
    drain()
    assert admin.get(f"/v1/dsr/{dsr_id}").json()["status"] == "completed"


def test_webhooks_are_retried_until_the_receiver_takes_them(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, receiver: Receiver) -> None:
    for url, events, reason in (("ftp://example.cn/x", ["subject.erased"], "http"),
                                ("https://user:pw@example.cn/x", ["subject.erased"],
                                 "credentials"),
                                ("https://example.cn/x", ["record.read"], "unknown event")):
        refused = admin.post("/v1/webhooks", json={"url": url, "events": events})
        assert refused.status_code == 422
        assert reason in refused.json()["detail"]
    hook = admin.post("/v1/webhooks", json={"url": receiver.url,
                                            "events": ["subject.rectified"]}).json()
    assert [w["id"] for w in admin.get("/v1/webhooks").json()["items"]] == [hook["id"]]
    assert "secret" not in admin.get("/v1/webhooks").json()["items"][0]
    write(crm, subject_id="cust-w")
    receiver.fail_next = 2
    crm.post("/v1/dsr", json={"subject_id": "cust-w", "type": "rectification",
                              "jurisdiction": "GDPR",
                              "verification": {"method": "logged_in_session"},
                              "corrections": {"email": "w@example.cn"}})
    _drain_until(drain, lambda: len(receiver.events) == 1)
    assert admin.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert admin.get("/v1/webhooks").json()["items"] == []


def test_an_expired_export_is_gone(admin: httpx.Client, crm: httpx.Client, drain: Drain,
                                   runtime: Runtime) -> None:
    write(crm, subject_id="cust-e")
    dsr_id = crm.post("/v1/dsr", json={"subject_id": "cust-e", "type": "access",
                                       "jurisdiction": "GDPR",
                                       "verification": {"method": "app_login"}}).json()["id"]
    drain()
    assert crm.get(f"/v1/dsr/{dsr_id}/export").status_code == 200
    with runtime.transaction() as session:
        export = session.get(DsrExport, dsr_id)
        assert export is not None
        export.expires_at -= timedelta(days=30)
    assert crm.get(f"/v1/dsr/{dsr_id}/export").status_code == 410
    expire_exports(runtime, Claimed(id=0, kind="export_expiry", payload={}, ref=None,
                                    attempt=1, worker="test"))
    with runtime.session_factory() as session:
        assert session.get(DsrExport, dsr_id) is None
    assert crm.get(f"/v1/dsr/{dsr_id}/export").status_code == 410


def test_the_development_server_runs_jobs_itself(
        make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    live = start_server(create_app(make_settings(worker_in_serve=True,
                                                 worker_poll_seconds=0.1)))
    crm = live.client(make_token(sub="svc-crm",
                                 scope="records:write dsr:submit dsr:verify dsr:manage",
                                 roles=["compliance_officer"]))
    assert crm.post("/v1/records", json={
        "subject_id": "cust-s", "purpose": "account_management",
        "record_type": "customer_profile", "data": {"name": "李娜"}}).status_code == 201
    dsr_id = crm.post("/v1/dsr", json={"subject_id": "cust-s", "type": "access",
                                       "jurisdiction": "PIPL",
                                       "verification": {"method": "app_login"}}).json()["id"]
    deadline = time.monotonic() + 15
    while crm.get(f"/v1/dsr/{dsr_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert crm.get(f"/v1/dsr/{dsr_id}/export").json()["records"][0]["data"] == {"name": "李娜"}
