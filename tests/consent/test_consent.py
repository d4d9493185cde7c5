"""Consent over HTTP: recording, every denial reason, withdrawal, GPC, minors, receipts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import text

from app.consent.decision import decide
from app.consent.service import verify_receipt
from app.runtime import Runtime
from tests.audit_log import sequenced
from tests.server import LiveServer
from tests.tokens import make_token

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def client(live: LiveServer) -> httpx.Client:
    client = live.client(make_token(scope="consent:write consent:read audit:read"))
    for notice_id in ("marketing", "partner_advertising"):
        for language in ("en", "zh"):
            assert client.post("/v1/notices", json={
                "notice_id": notice_id, "version": 1, "language": language,
                "text": f"{notice_id} notice ({language})"}).status_code == 201
    return client


def make_consent(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject_id": "cust-1", "purpose": "marketing_email", "notice_id": "marketing",
        "notice_version": 1, "channel": "web", "captured_at": NOW.isoformat(),
        "evidence": {"form_id": "signup-v3", "ip_address": "203.0.113.9",
                     "user_agent": "Mozilla/5.0"},
        "jurisdiction": "PIPL"}
    body.update(overrides)
    return body


def decision(runtime: Runtime, **kwargs: Any) -> tuple[bool, str]:
    with runtime.session_factory() as session:
        result = decide(session, runtime.policy, **{"subject_id": "cust-1",
                                                    "purpose": "marketing_email", **kwargs})
        session.rollback()
    return result.allowed, result.reason


def test_grant_returns_a_verifiable_receipt(client: httpx.Client) -> None:
    response = client.post("/v1/consents", json=make_consent())
    assert response.status_code == 201
    body = response.json()
    assert (body["subject_id"], body["purpose"], body["state"]) == ("cust-1",
                                                                   "marketing_email", "granted")
    key = client.get("/v1/consents/receipt-key").json()
    public_key = load_pem_public_key(key["public_key_pem"].encode())
    claims = verify_receipt(body["receipt"], public_key)
    assert claims["sub"] == "cust-1"
    assert claims["purpose"] == "marketing_email"
    assert claims["notice_version"] == 1
    assert jwt.get_unverified_header(body["receipt"])["kid"] == key["kid"]
    header, payload, signature = body["receipt"].split(".")
    forged = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b"granted", b"GRANTED")).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify_receipt(f"{header}.{forged}.{signature}", public_key)


def test_evidence_keeps_a_keyed_hash_of_the_ip_never_the_ip(client: httpx.Client) -> None:
    client.post("/v1/consents", json=make_consent())
    history = client.get("/v1/subjects/cust-1/consents").json()["history"]
    evidence = history[0]["evidence"]
    assert evidence["form_id"] == "signup-v3"
    assert len(evidence["ip_hash"]) == 64
    assert "203.0.113.9" not in str(history)


def test_consent_required_then_granted(client: httpx.Client, runtime: Runtime) -> None:
    assert decision(runtime) == (False, "consent-required")
    client.post("/v1/consents", json=make_consent())
    assert decision(runtime) == (True, "consent")


def test_withdrawal_takes_effect_for_the_next_request(client: httpx.Client,
                                                      runtime: Runtime) -> None:
    client.post("/v1/consents", json=make_consent())
    response = client.post("/v1/subjects/cust-1/consents/marketing_email/withdraw")
    assert response.status_code == 200
    assert response.json()["state"] == "withdrawn"
    assert decision(runtime) == (False, "consent-withdrawn")
    state = client.get("/v1/subjects/cust-1/consents").json()
    assert state["purposes"]["marketing_email"]["reason"] == "consent-withdrawn"
    assert [e["event"] for e in state["history"]] == ["granted", "withdrawn"]


def test_expiry(client: httpx.Client, runtime: Runtime) -> None:
    client.post("/v1/consents", json=make_consent())  # the purpose's lifetime: 730 days
    assert decision(runtime, at=NOW + timedelta(days=729)) == (True, "consent")
    assert decision(runtime, at=NOW + timedelta(days=731)) == (False, "consent-expired")


def test_sensitive_data_needs_separate_consent(client: httpx.Client, runtime: Runtime) -> None:
    client.post("/v1/consents", json=make_consent())
    assert decision(runtime, sensitive=True) == (False, "separate-consent-required")
    client.post("/v1/consents", json=make_consent(separate=True))
    assert decision(runtime, sensitive=True) == (True, "consent")


def test_separate_consent_purpose_refuses_bundled_consent(client: httpx.Client) -> None:
    response = client.post("/v1/consents", json=make_consent(
        purpose="partner_advertising", notice_id="partner_advertising"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "separate"


def test_minors_need_a_guardian(client: httpx.Client, runtime: Runtime) -> None:
    refused = client.post("/v1/consents", json=make_consent(subject_age=12))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "guardian"
    assert "under PIPL" in refused.json()["detail"]
    client.post("/v1/consents", json=make_consent())  # recorded without knowing the age
    assert decision(runtime, age=12) == (False, "guardian-consent-required")
    assert decision(runtime, age=15) == (True, "consent")
    client.post("/v1/consents", json=make_consent(subject_age=12, guardian={
        "guardian_id": "cust-0", "relation": "mother", "verification": "id-card"}))
    assert decision(runtime, age=12) == (True, "consent")


def test_changed_notice_asks_again(client: httpx.Client, runtime: Runtime) -> None:
    client.post("/v1/consents", json=make_consent())
    client.post("/v1/notices", json={"notice_id": "marketing", "version": 2, "language": "en",
                                     "text": "now also by phone", "requires_reconsent": False})
    assert decision(runtime) == (True, "consent")  # a wording fix: nothing to ask again
    client.post("/v1/notices", json={"notice_id": "marketing", "version": 3, "language": "en",
                                     "text": "now also profiling", "requires_reconsent": True})
    assert decision(runtime) == (False, "consent-outdated")
    client.post("/v1/consents", json=make_consent(notice_version=3))
    assert decision(runtime) == (True, "consent")


def test_other_legal_bases_need_no_consent(runtime: Runtime) -> None:
    assert decision(runtime, purpose="order_fulfilment") == (True, "legal-basis")
    with runtime.session_factory() as session:
        result = decide(session, runtime.policy, subject_id="x", purpose="legal_compliance")
    assert result.legal_basis == "legal_obligation"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"notice_version": 9}, "notice_version"),
    ({"purpose": "order_fulfilment"}, "purpose"),
    ({"purpose": "nope"}, "purpose"),
    ({"notice_id": "partner_advertising"}, "notice_id"),
    ({"jurisdiction": "MARS"}, "jurisdiction"),
    ({"captured_at": "2026-01-01T00:00:00"}, "captured_at"),
    ({"channel": "carrier-pigeon"}, "channel"),
    ({"surprise": True}, "surprise"),
])
def test_bad_consents_are_422(client: httpx.Client, overrides: dict[str, Any],
                              field: str) -> None:
    response = client.post("/v1/consents", json=make_consent(**overrides))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_gpc_opt_out_withdraws_sale_and_sharing(client: httpx.Client, runtime: Runtime) -> None:
    client.post("/v1/consents", json=make_consent())
    client.post("/v1/consents", json=make_consent(
        purpose="partner_advertising", notice_id="partner_advertising", separate=True))
    response = client.post("/v1/subjects/cust-1/opt-out", headers={"Sec-GPC": "1"})
    body = response.json()
    assert body["gpc"] is True
    assert [w["purpose"] for w in body["withdrawn"]] == ["partner_advertising"]
    assert decision(runtime, purpose="partner_advertising") == (False, "consent-withdrawn")
    assert decision(runtime) == (True, "consent")  # marketing e-mail is not a sale
    history = client.get("/v1/subjects/cust-1/consents").json()["history"]
    assert history[-1]["channel"] == "gpc"


def test_idempotency_key(client: httpx.Client, runtime: Runtime) -> None:
    headers = {"Idempotency-Key": "grant-0001"}
    first = client.post("/v1/consents", json=make_consent(), headers=headers)
    again = client.post("/v1/consents", json=make_consent(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = client.post("/v1/consents", json=make_consent(channel="app"), headers=headers)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    sequenced(runtime)
    with runtime.engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM consent_events")).scalar()
        audited = conn.execute(text("SELECT count(*) FROM audit_entries WHERE action = "
                                    "'consent.granted'")).scalar()
    assert (events, audited) == (1, 1)


def test_simultaneous_changes_are_all_kept_in_order(client: httpx.Client) -> None:
    client.post("/v1/consents", json=make_consent())

    def change(i: int) -> int:
        if i % 2:
            return client.post("/v1/subjects/cust-1/consents/marketing_email/withdraw"
                               ).status_code
        return client.post("/v1/consents", json=make_consent(channel="app")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(change, range(24)))
    assert set(statuses) <= {200, 201}
    history = client.get("/v1/subjects/cust-1/consents").json()["history"]
    assert len(history) == 25
    ids = [e["event_id"] for e in history]
    assert ids == sorted(ids)
    assert sum(e["event"] == "withdrawn" for e in history) == 12


def test_consent_history_is_append_only(client: httpx.Client, runtime: Runtime) -> None:
    client.post("/v1/consents", json=make_consent())
    with pytest.raises(Exception, match="append-only"), runtime.engine.begin() as conn:
        conn.execute(text("UPDATE consent_events SET event = 'withdrawn'"))


def test_reading_consents_is_audited(client: httpx.Client) -> None:
    client.get("/v1/subjects/cust-1/consents")
    entry = client.get("/v1/audit", params={"action": "consent.read"}).json()["items"][0]
    assert entry["subject_id"] == "cust-1"


def test_scopes(live: LiveServer) -> None:
    reader = live.client(make_token(scope="consent:read"))
    assert reader.post("/v1/consents", json=make_consent()).status_code == 403
    assert live.client(make_token(scope="audit:read")).get(
        "/v1/subjects/x/consents").status_code == 403


@pytest.mark.parametrize("field", ["version"])
def test_out_of_range_integers_are_422_not_500(client: httpx.Client, field: str) -> None:
    # Found by schemathesis: 235139250892146009440256 overflowed the database column.
    response = client.post("/v1/notices", json={
        "notice_id": "marketing", "version": 235139250892146009440256, "language": "en",
        "text": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
    grant = client.post("/v1/consents", json=make_consent(notice_version=2**70))
    assert grant.status_code == 422
    assert grant.json()["errors"][0]["field"] == "notice_version"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"captured_at": "2099-01-01T00:00:00Z"}, "captured_at"),
    ({"captured_at": "9999-12-31T23:59:59Z"}, "captured_at"),
    ({"captured_at": "0001-01-01T00:00:00Z"}, "captured_at"),
    ({"expires_at": "9999-12-31T23:59:59Z"}, "expires_at"),
    ({"expires_at": (NOW + timedelta(days=800)).isoformat()}, "expires_at"),
    ({"expires_at": (NOW - timedelta(days=1)).isoformat()}, "expires_at"),
])
def test_a_consent_cannot_be_dated_ahead_or_outlive_its_lifetime(
        client: httpx.Client, overrides: dict[str, Any], field: str) -> None:
    """A future consent would count before it was given; an expiry past the purpose's
    consent lifetime (730 days for marketing_email) would extend it without limit."""
    response = client.post("/v1/consents", json=make_consent(**overrides))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    within = client.post("/v1/consents", json=make_consent(
        expires_at=(NOW + timedelta(days=30)).isoformat()))
    assert within.status_code == 201, within.text
