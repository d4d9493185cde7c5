"""Data-subject requests end to end over HTTP: access and portability exports, erasure with its
certificate, rectification, restriction, objection, deadlines, legal holds and webhooks."""

from __future__ import annotations

import calendar
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import select

from app.keys.models import SubjectKey
from app.records.models import BlindIndex, Record
from app.runtime import Runtime
from tests.dsr.conftest import Receiver
from tests.gateway import PROFILE, Clients, audit_entries, grant_consent, read, write
from tests.server import LiveServer

Drain = Callable[[], int]
ORDER = {"order_number": "SO-7781", "amount": "199.00",
         "shipping_address": "上海市浦东新区世纪大道100号", "recipient_phone": "13912345678"}
NOTE = "Customer called from 13698765432 asking about a refund"


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients("compliance_officer", sub="svc-crm",
                   scope="records:write records:read dsr:submit dsr:verify")


def _subject(crm: httpx.Client, subject_id: str = "cust-9") -> dict[str, Any]:
    """A subject with a profile (with a scanned note) and an order."""
    profile = write(crm, subject_id=subject_id, data={**PROFILE, "notes": NOTE})
    order = write(crm, subject_id=subject_id, purpose="order_fulfilment", record_type="order",
                  data=dict(ORDER))
    return {"profile": profile["record_id"], "order": order["record_id"]}


def _submit(client: httpx.Client, status: int = 202, **body: Any) -> dict[str, Any]:
    body = {"subject_id": "cust-9", "type": "access", "jurisdiction": "PIPL",
            "verification": {"method": "logged_in_session"}, **body}
    response = client.post("/v1/dsr", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


def _get(admin: httpx.Client, dsr_id: str) -> dict[str, Any]:
    response = admin.get(f"/v1/dsr/{dsr_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_access_export_holds_everything_written_read_and_consented(
        admin: httpx.Client, crm: httpx.Client, drain: Drain) -> None:
    ids = _subject(crm)
    grant_consent(admin, "cust-9", "marketing_email")
    read(crm, ids["profile"], "customer_support")
    submitted = _submit(crm)
    assert submitted["status"] == "received"
    due = datetime.fromisoformat(submitted["due_at"])
    assert timedelta(days=29) < due - datetime.now(UTC) <= timedelta(days=30)  # PIPL policy
    assert crm.get(f"/v1/dsr/{submitted['id']}/export").status_code == 409  # not ready
    drain()
    state = _get(admin, submitted["id"])
    assert state["status"] == "completed"
    assert state["result"] == {"records": 2, "consent_events": 1, "reads": 1}
    assert [e["event"] for e in state["timeline"]] == ["submitted", "job.done", "completed"]

    document = crm.get(f"/v1/dsr/{submitted['id']}/export").json()
    records = {r["record_type"]: r for r in document["records"]}
    assert records["customer_profile"]["data"] == {
        "name": "张伟", "email": "Zhang.Wei@Example.cn", "phone": "+8613812345678",
        "cn_resident_id": "11010519491231002X", "birth_date": "1949-12-31", "notes": NOTE}
    assert records["order"]["data"]["shipping_address"] == ORDER["shipping_address"]
    assert records["order"]["retention"]["legal_basis"] == "transaction records kept 5 years"
    assert [(c["purpose"], c["event"], c["notice_id"], c["notice_version"])
            for c in document["consent"]] == [("marketing_email", "granted", "marketing", 1)]
    assert document["purposes"]["order_fulfilment"]["recipients"] == [
        "logistics providers", "payment processors"]
    assert [(a["by"], a["purpose"]) for a in document["access_log"]] == [
        ("svc-crm", "customer_support")]

    page = crm.get(f"/v1/dsr/{submitted['id']}/export", params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert '<html lang="zh">' in page.text
    assert "您的个人信息" in page.text
    assert "张伟" in page.text
    assert "电子邮箱" in page.text
    assert [e["action"] for e in audit_entries(admin, "dsr.export_read")] == \
        ["dsr.export_read", "dsr.export_read"]


def test_the_export_is_stored_encrypted_and_english_under_gdpr(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, runtime: Runtime) -> None:
    _subject(crm)
    submitted = _submit(crm, type="portability", jurisdiction="GDPR")
    drain()
    page = crm.get(f"/v1/dsr/{submitted['id']}/export", params={"format": "html"}).text
    assert "Your personal data" in page
    assert "E-mail address" in page
    with runtime.session_factory() as session:
        from app.dsr.models import DsrExport

        stored = session.get(DsrExport, submitted["id"])
        assert stored is not None
        assert "张伟" not in stored.json_doc + stored.html_doc


def test_a_retried_submission_with_its_idempotency_key_is_one_request(
        crm: httpx.Client, admin: httpx.Client) -> None:
    body = {"subject_id": "cust-9", "type": "access", "jurisdiction": "GDPR",
            "verification": {"method": "id_document", "reference": "T-1"}}
    headers = {"Idempotency-Key": "dsr-T-1"}
    first = crm.post("/v1/dsr", json=body, headers=headers)
    again = crm.post("/v1/dsr", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert len(admin.get("/v1/dsr").json()["items"]) == 1
    other = crm.post("/v1/dsr", json={**body, "type": "erasure"}, headers=headers)
    assert other.status_code == 422


def test_a_request_by_identifiers_finds_the_subject_through_blind_indexes(
        crm: httpx.Client) -> None:
    _subject(crm)
    found = _submit(crm, subject_id=None, identifiers={"email": "ZHANG.WEI@example.cn"})
    assert found["status"] == "received"
    missing = _submit(crm, subject_id=None, identifiers={"email": "nobody@example.cn"})
    assert missing["status"] == found["status"] == "received"  # no oracle: see test_verification
    both = _submit(crm, 422, identifiers={"email": "x@example.cn"})
    assert "exactly one" in both["detail"] or both["errors"]


def test_erasure_removes_every_copy_and_leaves_a_signed_certificate(
        admin: httpx.Client, crm: httpx.Client, clients: Clients, drain: Drain,
        runtime: Runtime, receiver: Receiver) -> None:
    hook = admin.post("/v1/webhooks", json={"url": receiver.url,
                                            "events": ["subject.erased"]}).json()
    ids = _subject(crm)
    protected = crm.post("/v1/protect", json={
        "subject_id": "cust-9", "purpose": "customer_support",
        "record_type": "customer_profile",
        "data": {"name": "张伟", "email": "Zhang.Wei@Example.cn"}}).json()
    assert "data" in protected, protected
    submitted = _submit(crm, type="erasure", jurisdiction="GDPR")
    drain()
    state = _get(admin, submitted["id"])
    assert state["status"] == "completed", state
    assert state["result"]["records_deleted"] == 1
    assert state["result"]["retained:order"] == 1
    assert state["result"]["keys_destroyed"] == 1
    assert len(audit_entries(admin, "dsr.erasure.completed")) == 1

    # the profile is gone; the order is kept as the law requires, stripped and restricted
    assert crm.get(f"/v1/records/{ids['profile']}",
                   params={"purpose": "customer_support"}).status_code == 404
    with runtime.session_factory() as session:
        order = session.get(Record, ids["order"])
        assert order is not None
        assert order.restricted_at is not None
        assert order.data == {"order_number": "SO-7781", "amount": "199.00"}
        assert session.scalars(select(BlindIndex).where(
            BlindIndex.subject_id == "cust-9")).all() == []
        keys = session.scalars(select(SubjectKey).where(SubjectKey.subject_id == "cust-9"))
        assert {(k.state, k.wrapped_dek) for k in keys} == {("destroyed", None)}
    assert admin.post("/v1/subjects/lookup", json={"email": PROFILE["email"]}).json()[
        "subject_ids"] == []
    # a copy the upstream kept can no longer be read, at once: the server's keyring cached
    # the key, and drops it on the shred epoch the worker's destruction moved
    gone = crm.post("/v1/unprotect", json={
        "subject_id": "cust-9", "purpose": "customer_support",
        "record_type": "customer_profile", "data": {"email": protected["data"]["email"]}})
    assert gone.status_code == 410
    assert gone.json()["type"].endswith("subject-erased")

    body = admin.get(f"/v1/dsr/{submitted['id']}/certificate").json()
    public_key = load_pem_public_key(body["public_key"].encode())
    assert isinstance(public_key, Ed25519PublicKey)
    claims = jwt.decode(body["certificate"], public_key, algorithms=["EdDSA"],
                        options={"verify_aud": False})
    assert claims["jti"] == submitted["id"]
    assert claims["records_deleted"] == 1
    assert claims["records_retained"] == {"order": 1}
    assert claims["retained_because"] == {"order": "transaction records kept 5 years"}
    assert claims["keys_destroyed"] == 1
    assert "cust-9" not in body["certificate"]

    # subscribers hear of it, signed; the event names the subject, never their data
    drain()
    [(headers, event, raw)] = receiver.events
    assert event["type"] == "subject.erased"
    assert event["data"]["subject_id"] == "cust-9"
    timestamp, mac = headers["pgw-signature"].removeprefix("t=").split(",v1=")
    expected = hmac.new(hook["secret"].encode(), f"{timestamp}.".encode() + raw,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    assert headers["pgw-event-id"] == event["id"]

    # what a law keeps cannot be changed by its writer any more
    patched = crm.patch(f"/v1/records/{ids['order']}",
                        json={"purpose": "order_fulfilment", "data": {"amount": "1.00"}})
    assert patched.status_code == 409
    assert patched.json()["type"].endswith("record-closed")

    # a later write for the erased subject is flagged
    again = write(crm, subject_id="cust-9")
    assert again["flags"] == ["subject-previously-erased"]


def test_no_plaintext_of_an_erased_subject_remains_in_any_table(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, runtime: Runtime) -> None:
    _subject(crm)
    grant_consent(admin, "cust-9", "marketing_email")
    _submit(crm, type="rectification", jurisdiction="GDPR",
            corrections={"email": "new.address@example.cn"})
    _submit(crm, type="access")
    drain()
    _submit(crm, type="erasure", verification={"method": "id_document",
                                               "reference": "verify.me@example.cn"})
    drain()
    values = [v for v in (*PROFILE.values(), *ORDER.values(), NOTE, "13698765432",
                          "+8613812345678", "new.address@example.cn", "verify.me@example.cn")
              if v not in ("SO-7781", "199.00")]  # kept by law, in clear
    from sqlalchemy import MetaData

    metadata = MetaData()
    metadata.reflect(runtime.engine)
    with runtime.engine.connect() as connection:
        dump = "\n".join(str(row) for table in metadata.sorted_tables
                         for row in connection.execute(table.select()))
    found = [v for v in values if v.lower() in dump.lower()]
    assert found == []


def test_rectification_corrects_every_copy_and_tells_subscribers(
        admin: httpx.Client, crm: httpx.Client, drain: Drain, receiver: Receiver) -> None:
    admin.post("/v1/webhooks", json={"url": receiver.url, "events": ["subject.rectified"]})
    ids = _subject(crm)
    submitted = _submit(crm, type="rectification", jurisdiction="GDPR",
                        corrections={"email": "new.address@example.cn", "phone": "13900001111"})
    drain()
    state = _get(admin, submitted["id"])
    assert state["status"] == "completed"
    assert state["result"] == {"records_rectified": 1, "fields": ["email", "phone"],
                               "not_held": []}
    assert read(crm, ids["profile"], "account_management")["data"]["email"] == \
        "new.address@example.cn"
    assert admin.post("/v1/subjects/lookup", json={"email": "new.address@example.cn"}).json()[
        "subject_ids"] == ["cust-9"]
    drain()
    [(_, event, _)] = receiver.events
    assert event["data"]["fields"] == ["email", "phone"]
    assert "new.address" not in str(event)
    bad = _submit(crm, 422, type="rectification", corrections={"favourite_colour": "red"})
    assert bad["errors"][0]["field"] == "corrections.favourite_colour"
    assert _submit(crm, 422, type="rectification")["errors"][0]["field"] == "corrections"
    invalid = _submit(crm, 422, type="rectification", corrections={"email": "not-an-address"})
    assert invalid["errors"] == [{"field": "corrections.email",
                                  "reason": "not an e-mail address"}]


def test_restriction_and_objection(admin: httpx.Client, crm: httpx.Client,
                                   drain: Drain) -> None:
    ids = _subject(crm)
    grant_consent(admin, "cust-9", "marketing_email")
    _submit(crm, type="objection", jurisdiction="GDPR")
    drain()
    consents = admin.get("/v1/subjects/cust-9/consents").json()
    assert consents["purposes"]["marketing_email"]["state"] == "withdrawn"
    opt_out = _submit(crm, type="objection", jurisdiction="CCPA")
    due = datetime.fromisoformat(opt_out["due_at"]) - datetime.now(UTC)
    assert timedelta(days=18) < due < timedelta(days=22)  # 15 business days, not 45 days
    drain()
    consents = admin.get("/v1/subjects/cust-9/consents").json()
    assert consents["purposes"]["partner_advertising"]["state"] == "withdrawn"
    _submit(crm, type="restriction", jurisdiction="GDPR")
    drain()
    view = read(crm, ids["profile"], "account_management")
    assert view["data"] == {}
    assert view["access"]["name"]["reason"].startswith("restricted")


def test_deadlines_extensions_and_overdue_requests(
        admin: httpx.Client, crm: httpx.Client, monkeypatch: pytest.MonkeyPatch,
        live: LiveServer) -> None:
    _subject(crm)
    gdpr = _submit(crm, jurisdiction="GDPR")
    pipl = _submit(crm, jurisdiction="PIPL")
    submitted = datetime.fromisoformat(gdpr["due_at"])
    assert admin.post(f"/v1/dsr/{pipl['id']}/extend",
                      json={"reason": "complex request"}).status_code == 409  # no extension
    extended = admin.post(f"/v1/dsr/{gdpr['id']}/extend", json={"reason": "many records"})
    assert extended.status_code == 200, extended.text
    new_due = datetime.fromisoformat(extended.json()["due_at"])
    month = submitted.month + 2  # GDPR art. 12(3): two further months, from the first due date
    year, month = submitted.year + (month - 1) // 12, (month - 1) % 12 + 1
    assert new_due == submitted.replace(year=year, month=month, day=min(
        submitted.day, calendar.monthrange(year, month)[1]))
    assert admin.post(f"/v1/dsr/{gdpr['id']}/extend",
                      json={"reason": "again"}).status_code == 409  # once only
    assert admin.get("/v1/dsr", params={"overdue": "true"}).json()["items"] == []

    later = datetime.now(UTC) + timedelta(days=31)
    monkeypatch.setattr("app.dsr.service.utcnow", lambda: later)
    monkeypatch.setattr("app.dsr.router.utcnow", lambda: later)
    overdue = admin.get("/v1/dsr", params={"overdue": "true"}).json()["items"]
    assert [r["id"] for r in overdue] == [pipl["id"]]  # the extended one is not late
    metrics = live.client().get("/metrics").text
    assert "pgw_dsr_overdue 1" in metrics
    third = _submit(crm, jurisdiction="GDPR")
    monkeypatch.setattr("app.dsr.service.utcnow", lambda: later + timedelta(days=40))
    late = admin.post(f"/v1/dsr/{third['id']}/extend", json={"reason": "too late now"})
    assert late.status_code == 409
    assert "first period" in late.json()["detail"]
    rejected = admin.post(f"/v1/dsr/{pipl['id']}/reject",
                          json={"reason": "manifestly unfounded: duplicate of dsr_x"})
    assert rejected.json()["status"] == "rejected"
    # the reason given is in the audit entry (clipped to what a detail may hold)
    [extension] = audit_entries(admin, "dsr.extended")
    [rejection] = audit_entries(admin, "dsr.rejected")
    assert extension["details"]["reason"] == "many records"
    assert rejection["details"]["reason"] == "manifestly unfounded: duplicate of dsr_x"


def test_a_legal_hold_stops_erasure_until_released(
        admin: httpx.Client, crm: httpx.Client, drain: Drain) -> None:
    ids = _subject(crm)
    hold = admin.post("/v1/legal-holds", json={"subject_id": "cust-9",
                                                "reason": "litigation 2026-117"})
    assert hold.status_code == 201, hold.text
    submitted = _submit(crm, type="erasure")
    drain()
    assert _get(admin, submitted["id"])["status"] == "on_hold"
    assert read(crm, ids["profile"], "account_management")["data"]["name"] == "张伟"
    deleted = crm.delete(f"/v1/records/{ids['profile']}")
    assert deleted.status_code == 409
    assert deleted.json()["type"].endswith("legal-hold")
    released = admin.post(f"/v1/legal-holds/{hold.json()['id']}/release")
    assert released.json()["resumed_requests"] == [submitted["id"]]
    drain()
    state = _get(admin, submitted["id"])
    assert state["status"] == "completed"
    assert [e["event"] for e in state["timeline"] if not e["event"].startswith("job.")] == \
        ["submitted", "on_hold", "resumed", "started", "completed"]


def test_dsr_routes_need_their_scopes(clients: Clients, crm: httpx.Client) -> None:
    reader = clients("compliance_officer", scope="records:read")
    assert reader.post("/v1/dsr", json={}).status_code == 403
    submitted = _submit(crm)
    assert reader.get(f"/v1/dsr/{submitted['id']}").status_code == 403
    other = clients(sub="svc-other", scope="dsr:submit")
    assert other.get(f"/v1/dsr/{submitted['id']}").status_code == 404  # not theirs
    assert crm.get("/v1/dsr").status_code == 403  # listing is for dsr:manage
    assert crm.post("/v1/legal-holds", json={"subject_id": "x",
                                             "reason": "because"}).status_code == 403
