"""Identity verification of data-subject requests: `dsr:submit` alone exposes and erases no one,
only a caller with `dsr:verify` asserting a method the policy lists starts a request, known and
unknown subjects answer alike, and every read or refused read of a request is audited."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.dsr.models import DsrRequest
from app.keys.fields import decrypt_field
from app.runtime import Runtime
from tests.gateway import PROFILE, Clients, audit_entries, read, write

Drain = Callable[[], int]
ACCESS = {"type": "access", "jurisdiction": "PIPL",
          "verification": {"method": "logged_in_session"}}


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    """Writes records; may submit requests but not vouch for anyone's identity."""
    return clients("compliance_officer", sub="svc-crm",
                   scope="records:write records:read dsr:submit")


@pytest.fixture
def portal(clients: Clients) -> httpx.Client:
    """The customer portal: it signs the person in, so it may assert their verification."""
    return clients(sub="svc-portal", scope="dsr:submit dsr:verify")


def _profile(crm: httpx.Client, subject_id: str = "cust-v") -> str:
    return str(write(crm, subject_id=subject_id)["record_id"])


def _post(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/dsr", json={**ACCESS, **body})


def test_dsr_submit_alone_neither_exports_nor_erases_anyone(
        admin: httpx.Client, crm: httpx.Client, drain: Drain) -> None:
    record_id = _profile(crm)
    by_email = {"identifiers": {"email": PROFILE["email"]}}
    assert _post(crm, **by_email, verification={"x": 1}).status_code == 422
    assert _post(crm, subject_id="cust-v", type="erasure",
                 verification={"method": "none"}).status_code == 422  # not in the policy

    access = _post(crm, **by_email)
    erasure = _post(crm, subject_id="cust-v", type="erasure")
    assert access.status_code == erasure.status_code == 202
    assert access.json()["status"] == erasure.json()["status"] == "unverified"
    drain()

    mine = crm.get(f"/v1/dsr/{access.json()['id']}").json()
    assert mine["status"] == "unverified"
    assert mine["verification"] == {"method": None, "verified": False, "verified_by": None,
                                    "verified_at": None}
    assert "subject_id" not in mine
    export = crm.get(f"/v1/dsr/{access.json()['id']}/export")
    assert export.status_code == 404
    assert "11010519491231002X" not in export.text
    assert crm.get(f"/v1/dsr/{erasure.json()['id']}/certificate").status_code == 404
    assert admin.get(f"/v1/dsr/{erasure.json()['id']}").json()["status"] == "unverified"
    assert read(crm, record_id, "account_management")["data"]["name"] == "张伟"
    denied = audit_entries(admin, "dsr.access_denied")
    assert [(e["actor"], e["outcome"], e["subject_id"], e["details"]["operation"])
            for e in denied] == [("svc-crm", "denied", "cust-v", "export"),
                                 ("svc-crm", "denied", "cust-v", "certificate")]


def test_known_and_unknown_subjects_answer_alike(
        admin: httpx.Client, crm: httpx.Client, portal: httpx.Client, drain: Drain) -> None:
    _profile(crm)
    for client in (crm, portal):
        known = _post(client, identifiers={"email": PROFILE["email"]})
        unknown = _post(client, identifiers={"email": "nobody@example.cn"})
        assert known.status_code == unknown.status_code == 202
        assert set(known.json()) == set(unknown.json()) == {"id", "status", "due_at"}
        assert known.json()["status"] == unknown.json()["status"]
        views = [client.get(f"/v1/dsr/{r.json()['id']}").json() for r in (known, unknown)]
        assert views[0].keys() == views[1].keys()
        assert [v["status"] for v in views] == [known.json()["status"]] * 2
        assert "subject_id" not in views[0]
    drain()
    # only a manager sees that the unknown one was bound to no customer: its export is empty
    unknown_id = unknown.json()["id"]
    assert admin.get(f"/v1/dsr/{unknown_id}").json()["subject_id"].startswith("unmatched:")
    assert portal.get(f"/v1/dsr/{unknown_id}/export").json()["records"] == []
    known_export = portal.get(f"/v1/dsr/{known.json()['id']}/export").json()
    assert known_export["records"][0]["data"]["cn_resident_id"] == "11010519491231002X"


def test_a_trusted_caller_verifies_with_a_method_the_policy_lists_and_it_is_recorded(
        admin: httpx.Client, crm: httpx.Client, portal: httpx.Client, clients: Clients,
        drain: Drain, runtime: Runtime) -> None:
    _profile(crm)
    dsr_id = _post(crm, subject_id="cust-v").json()["id"]
    assert crm.post(f"/v1/dsr/{dsr_id}/verify",
                    json={"method": "id_document"}).status_code == 403  # no dsr:verify
    weak = portal.post(f"/v1/dsr/{dsr_id}/verify", json={"method": "call_centre"})
    assert weak.status_code == 422  # level 1; an access request needs 2
    assert "needs level 2" in weak.json()["detail"]
    verified = portal.post(f"/v1/dsr/{dsr_id}/verify",
                           json={"method": "id_document", "reference": "desk-17"})
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "received"
    assert verified.json()["verification"]["method"] == "id_document"
    assert verified.json()["verification"]["verified_by"] == "svc-portal"
    assert portal.post(f"/v1/dsr/{dsr_id}/verify",
                       json={"method": "id_document"}).status_code == 409  # once
    [entry] = audit_entries(admin, "dsr.verified")
    assert (entry["actor"], entry["subject_id"], entry["details"]) == (
        "svc-portal", "cust-v",
        {"type": "access", "method": "id_document", "level": 3, "reference_given": True})
    with runtime.session_factory() as session:
        stored = session.get(DsrRequest, dsr_id)
        assert stored is not None
        assert "desk-17" not in stored.verification
        assert json.loads(decrypt_field(
            session, runtime.require_keyring(), subject_id="cust-v", field="verification",
            context=f"dsr:{dsr_id}", token=stored.verification)) == {
            "method": "id_document", "reference": "desk-17"}
    [refused] = audit_entries(admin, "dsr.verification_refused")
    assert (refused["outcome"], refused["details"]["method"]) == ("denied", "call_centre")

    drain()
    state = admin.get(f"/v1/dsr/{dsr_id}").json()
    assert state["status"] == "completed"
    assert [e["event"] for e in state["timeline"] if not e["event"].startswith("job.")] == \
        ["submitted", "verified", "completed"]
    # the submitter of the now verified request gets the export; another submitter does not
    assert crm.get(f"/v1/dsr/{dsr_id}/export").json()["records"][0]["data"]["name"] == "张伟"
    other = clients(sub="svc-other", scope="dsr:submit dsr:verify")
    assert other.get(f"/v1/dsr/{dsr_id}/export").status_code == 404
    assert [(e["actor"], e["details"]["operation"])
            for e in audit_entries(admin, "dsr.access_denied")] == [("svc-other", "export")]

    # asserted by a trusted caller at submission, a sufficient method starts it at once
    direct = _post(portal, subject_id="cust-v", type="erasure")
    assert direct.json()["status"] == "received"
    assert _post(portal, subject_id="cust-v", type="erasure",
                 verification={"method": "call_centre"}).json()["status"] == "unverified"


def test_reads_of_requests_are_audited(admin: httpx.Client, crm: httpx.Client,
                                       clients: Clients) -> None:
    dsr_id = _post(crm, subject_id="cust-v").json()["id"]
    assert crm.get(f"/v1/dsr/{dsr_id}").status_code == 200
    listed = admin.get("/v1/dsr", params={"subject_id": "cust-v"}).json()["items"]
    assert [r["id"] for r in listed] == [dsr_id]
    other = clients(sub="svc-other", scope="dsr:submit")
    assert other.get(f"/v1/dsr/{dsr_id}").status_code == 404
    assert [(e["actor"], e["subject_id"], e["resource"])
            for e in audit_entries(admin, "dsr.read")] == [("svc-crm", "cust-v", f"dsr:{dsr_id}")]
    [entry] = audit_entries(admin, "dsr.listed")
    assert (entry["actor"], entry["subject_id"], entry["details"]["count"]) == (
        "ops-admin", "cust-v", 1)
    assert [(e["actor"], e["outcome"], e["details"]["operation"])
            for e in audit_entries(admin, "dsr.access_denied")] == [
        ("svc-other", "denied", "read")]
