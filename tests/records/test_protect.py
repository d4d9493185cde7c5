"""Stateless protect/unprotect: write checks, least-privilege reads, erasure reaches copies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server import LiveServer
from tests.tokens import make_token

PROFILE = {"name": "张伟", "email": "Zhang.Wei@Example.cn", "phone": "138-1234-5678",
           "cn_resident_id": "11010519491231002x"}


def client(live: LiveServer, *roles: str, scope: str = "records:write records:read") -> \
        httpx.Client:
    return live.client(make_token(scope=scope + " audit:read keys:admin consent:write",
                                  roles=list(roles)))


def protect(c: httpx.Client, **overrides: Any) -> httpx.Response:
    body = {"subject_id": "cust-1", "purpose": "account_management",
            "record_type": "customer_profile", "data": PROFILE, **overrides}
    return c.post("/v1/protect", json=body)


def unprotect(c: httpx.Client, data: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {"subject_id": "cust-1", "purpose": "customer_support",
            "record_type": "customer_profile", "data": data, **overrides}
    response = c.post("/v1/unprotect", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_protect_normalises_and_encrypts_every_field(live: LiveServer) -> None:
    response = protect(client(live, "compliance_officer"))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert set(data) == set(PROFILE)
    assert all(value.startswith("pgw1.") for value in data.values())
    assert response.json()["decision"] == {"legal_basis": "contract", "reason": "legal-basis"}


def test_round_trip_by_role(live: LiveServer) -> None:
    protected = protect(client(live, "compliance_officer")).json()["data"]
    officer = unprotect(client(live, "compliance_officer"), protected)
    assert officer["data"] == {"name": "张伟", "email": "Zhang.Wei@Example.cn",
                               "phone": "+8613812345678"}  # the ID is not for support
    audit_view = unprotect(client(live, "compliance_officer"),
                           {"cn_resident_id": protected["cn_resident_id"]},
                           purpose="legal_compliance")
    assert audit_view["data"] == {"cn_resident_id": "11010519491231002X"}
    agent = unprotect(client(live, "support_agent"), {k: protected[k]
                                                      for k in ("name", "email", "phone")})
    assert agent["data"] == {"name": "张*", "email": "Z***@Example.cn", "phone": "138****5678"}
    assert agent["access"]["email"]["decision"] == "masked"
    nobody = unprotect(client(live, "marketing_analyst"), {"name": protected["name"]})
    assert nobody["data"] == {}
    assert nobody["access"]["name"]["decision"] == "denied"


def test_field_not_used_for_the_purpose_is_not_returned(live: LiveServer) -> None:
    protected = protect(client(live, "compliance_officer")).json()["data"]
    result = unprotect(client(live, "compliance_officer"),
                       {"cn_resident_id": protected["cn_resident_id"]})
    assert result["data"] == {}
    assert result["access"]["cn_resident_id"] == {
        "decision": "denied", "reason": "not used for purpose customer_support"}


def test_minimisation(live: LiveServer) -> None:
    response = protect(client(live), purpose="order_fulfilment")
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "data.cn_resident_id",
        "reason": "field cn_resident_id is not collected for purpose order_fulfilment"}


def test_undeclared_fields_are_dropped_where_policy_says_so(live: LiveServer) -> None:
    response = protect(client(live), record_type="support_ticket", purpose="customer_support",
                       data={"subject": "refund", "browser": "Firefox"})
    assert response.status_code == 200
    assert response.json()["dropped"] == ["browser"]


def test_many_long_undeclared_fields_are_dropped_and_audited_in_brief(live: LiveServer) -> None:
    """The audit entry names what was dropped, however many names and however long: the first
    50, each cut to 100 characters, and a count of the rest (it was a 500 before)."""
    extra = {f"x{i:03d}" + "字" * 250: "v" for i in range(190)}
    response = protect(client(live), record_type="support_ticket", purpose="customer_support",
                       data={"subject": "refund", **extra})
    assert response.status_code == 200, response.text
    assert len(response.json()["dropped"]) == 190
    entries = client(live, scope="audit:read").get(
        "/v1/audit", params={"action": "record.protected", "limit": 1}).json()["items"]
    dropped = entries[0]["details"]["dropped"]
    assert len(dropped) == 51
    assert dropped[-1] == "+140"
    assert all(len(name) <= 100 for name in dropped)


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("email", "not-an-email", "not an e-mail address"),
    ("phone", "12812345678", "not a valid phone number"),
    ("cn_resident_id", "110105194912310021", "not a valid resident ID"),
    ("birth_date", "1990-02-30", "expected a date as YYYY-MM-DD"),
    ("name", 42, "expected text"),
])
def test_field_types_are_validated(live: LiveServer, field: str, value: Any,
                                   reason: str) -> None:
    response = protect(client(live), data={**PROFILE, field: value})
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == f"data.{field}"
    assert reason in error["reason"]


def test_unknown_record_type_and_purpose_not_allowed(live: LiveServer) -> None:
    unknown = protect(client(live), record_type="pets")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "record_type"
    refused = protect(client(live), record_type="marketing_preferences",
                      purpose="legal_compliance", data={})
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:pgw:problem:purpose-not-allowed"


def test_consent_is_required_and_the_refusal_is_audited(live: LiveServer) -> None:
    c = client(live, "compliance_officer")
    response = protect(c, purpose="marketing_email", data={"email": "a@b.cn"})
    assert response.status_code == 403
    assert response.json()["type"] == "urn:pgw:problem:consent-required"
    entry = c.get("/v1/audit", params={"action": "record.protect_refused"}).json()["items"][0]
    assert (entry["outcome"], entry["details"]["reason"]) == ("denied", "consent-required")


def test_values_of_one_subject_do_not_open_for_another(live: LiveServer) -> None:
    c = client(live, "compliance_officer")
    protected = protect(c).json()["data"]
    protect(c, subject_id="cust-2")
    response = c.post("/v1/unprotect", json={
        "subject_id": "cust-2", "purpose": "customer_support",
        "record_type": "customer_profile", "data": {"email": protected["email"]}})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:pgw:problem:invalid-ciphertext"


def test_a_value_that_does_not_open_says_nothing_of_whether_the_subject_exists(
        live: LiveServer) -> None:
    c = client(live, "compliance_officer")
    email = protect(c).json()["data"]["email"]
    protect(c, subject_id="cust-2")  # a customer: they have keys

    def foreign(subject_id: str) -> httpx.Response:
        return c.post("/v1/unprotect", json={
            "subject_id": subject_id, "purpose": "customer_support",
            "record_type": "customer_profile", "data": {"email": email}})

    customer, stranger = foreign("cust-2"), foreign("never-seen-9")
    assert customer.status_code == stranger.status_code == 422
    assert customer.json()["type"] == stranger.json()["type"] == \
        "urn:pgw:problem:invalid-ciphertext"
    assert customer.json()["detail"] == stranger.json()["detail"]
    assert customer.json()["errors"] == stranger.json()["errors"] == [
        {"field": "data.email", "reason": "does not open for this subject"}]
    refused = c.get("/v1/audit", params={"action": "record.unprotect_refused"}).json()["items"]
    assert sorted(e["subject_id"] for e in refused) == ["cust-2", "never-seen-9"]
    assert {e["outcome"] for e in refused} == {"denied"}


def test_erasing_the_subject_makes_copies_unreadable(live: LiveServer) -> None:
    c = client(live, "compliance_officer")
    protected = protect(c).json()["data"]
    assert c.post("/v1/keys/subjects/cust-1/destroy", json={}).status_code == 200
    response = c.post("/v1/unprotect", json={
        "subject_id": "cust-1", "purpose": "customer_support",
        "record_type": "customer_profile", "data": {"email": protected["email"]}})
    assert response.status_code == 410
    assert response.json()["type"] == "urn:pgw:problem:subject-erased"


def test_reads_are_audited_with_fields_requested_and_returned(live: LiveServer) -> None:
    protected = protect(client(live, "compliance_officer")).json()["data"]
    c = client(live, "support_agent")
    unprotect(c, {"name": protected["name"], "cn_resident_id": protected["cn_resident_id"]})
    entry = c.get("/v1/audit", params={"action": "record.unprotected"}).json()["items"][0]
    assert entry["details"] == {"requested": ["cn_resident_id", "name"], "returned": ["name"],
                                "masked": ["name"]}
    assert entry["roles"] == ["support_agent"]
    exported = c.get("/v1/audit/export").text
    assert "张伟" not in exported
    assert "13812345678" not in exported


def test_free_text_is_scanned_and_the_original_travels_encrypted(live: LiveServer) -> None:
    note = "Call me on 13912345678 after six, thanks"
    writer = client(live, "compliance_officer")
    response = protect(writer, purpose="customer_support", record_type="support_ticket",
                       data={"subject": "Call back", "body": note, "channel": "web"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["body"] == "Call me on 139****5678 after six, thanks"
    assert body["originals"]["body"].startswith("pgw1.")
    assert body["findings"] == [{"field": "body", "type": "PHONE_NUMBER", "start": 11, "end": 22}]
    data = {"body": body["data"]["body"]}
    clear = unprotect(writer, data, record_type="support_ticket", originals=body["originals"])
    assert clear["data"]["body"] == note
    without = unprotect(writer, data, record_type="support_ticket")
    assert without["data"]["body"] == "Call me on 139****5678 after six, thanks"
