"""Every refused attempt on records leaves an audit entry, while the answer to the caller says
no more than it did (issue 15, item 7)."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway import Clients, audit_entries, write


def _problem(response: httpx.Response) -> dict[str, object]:
    body = dict(response.json())
    body.pop("instance", None)
    body.pop("request_id", None)
    return body


@pytest.mark.parametrize(("method", "action"), [("PATCH", "record.rectify_refused"),
                                                ("DELETE", "record.delete_refused")])
def test_changing_another_services_record_is_audited(clients: Clients, admin: httpx.Client,
                                                     method: str, action: str) -> None:
    record_id = write(clients())["record_id"]
    other = clients("compliance_officer", sub="svc-billing")
    body = {"purpose": "account_management", "data": {"name": "王芳"}}
    foreign = other.request(method, f"/v1/records/{record_id}",
                            json=body if method == "PATCH" else None)
    missing = other.request(method, "/v1/records/rec_doesnotexist",
                            json=body if method == "PATCH" else None)
    assert foreign.status_code == missing.status_code == 404
    assert _problem(foreign) == _problem(missing)  # an id that exists is not told apart
    entries = {e["resource"]: e for e in audit_entries(admin, action)}
    assert set(entries) == {f"record:{record_id}", "record:rec_doesnotexist"}
    refused = entries[f"record:{record_id}"]
    assert (refused["actor"], refused["outcome"], refused["subject_id"]) == (
        "svc-billing", "denied", "cust-1")
    assert refused["details"] == {"reason": "not the record's writer"}
    assert entries["record:rec_doesnotexist"]["details"] == {"reason": "no such record"}
    # the record is as it was
    assert clients().delete(f"/v1/records/{record_id}").status_code == 204


@pytest.mark.parametrize(("path", "action"), [("/v1/records", "record.write_refused"),
                                              ("/v1/protect", "record.protect_refused"),
                                              ("/v1/unprotect", "record.unprotect_refused")])
def test_a_purpose_refused_for_the_record_type_is_audited(
        clients: Clients, admin: httpx.Client, path: str, action: str) -> None:
    response = clients().post(path, json={
        "subject_id": "cust-1", "purpose": "marketing_email", "record_type": "order",
        "data": {}})
    assert response.status_code == 403
    assert response.json()["type"] == "urn:pgw:problem:purpose-not-allowed"
    [refused] = audit_entries(admin, action)
    assert (refused["outcome"], refused["purpose"], refused["subject_id"]) == (
        "denied", "marketing_email", "cust-1")
    assert refused["details"] == {"reason": "purpose-not-allowed", "record_type": "order"}
