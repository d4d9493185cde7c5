"""Legal holds placed and released from the console, the retention plan, the records of
processing and the key status, each under the API's scope and audited with the person."""

from __future__ import annotations

import httpx

from tests.console.staff import csrf_of, sign_in
from tests.gateway import audit_entries
from tests.server import LiveServer


def test_officer_places_and_releases_a_legal_hold(live: LiveServer, admin: httpx.Client) -> None:
    officer = sign_in(live)
    token = csrf_of(officer, "/console/holds")
    placed = officer.post("/console/holds", data={
        "csrf": token, "subject_id": "cust-42", "record_type": "",
        "reason": "Litigation 2026-17", "until": "2030-01-31"})
    assert placed.status_code == 303
    [hold] = admin.get("/v1/legal-holds").json()["items"]
    assert (hold["subject_id"], hold["created_by"], hold["until"][:10]) == \
        ("cust-42", "officer-li", "2030-01-31")
    page = officer.get("/console/holds").text
    assert "Litigation 2026-17" in page
    assert officer.post(f"/console/holds/{hold['id']}/release",
                        data={"csrf": token}).status_code == 303
    assert admin.get("/v1/legal-holds").json()["items"] == []
    entries = {e["action"]: e for e in audit_entries(admin) if e["action"].startswith("legal")}
    assert entries["legal_hold.placed"]["actor"] == "officer-li"
    assert entries["legal_hold.released"]["actor"] == "officer-li"


def test_a_hold_names_a_subject_or_a_record_type(live: LiveServer, admin: httpx.Client) -> None:
    officer = sign_in(live)
    both = officer.post("/console/holds", data={
        "csrf": csrf_of(officer, "/console/holds"), "subject_id": "cust-42",
        "record_type": "customer_profile", "reason": "Litigation 2026-17"})
    assert both.status_code == 422
    assert "not both" in both.text
    assert admin.get("/v1/legal-holds").json()["items"] == []


def test_retention_plan_and_records_of_processing(live: LiveServer, admin: httpx.Client) -> None:
    officer = sign_in(live)
    plan = officer.get("/console/retention")
    assert plan.status_code == 200
    assert "Nothing is due." in plan.text  # an empty database
    [planned] = audit_entries(admin, "retention.planned")
    assert planned["actor"] == "officer-li"
    processing = officer.get("/console/processing")
    assert processing.status_code == 200
    assert 'id="purpose-account_management"' in processing.text
    assert 'id="purpose-marketing_email"' in processing.text


def test_key_status_needs_keys_admin(live: LiveServer, admin: httpx.Client) -> None:
    assert sign_in(live).get("/console/keys").status_code == 403
    keys = sign_in(live, "key_admin", sub="keys-ma").get("/console/keys")
    assert keys.status_code == 200
    assert '<dd data-testid="sealed">no</dd>' in keys.text
    assert [e["actor"] for e in audit_entries(admin, "keys.status_read")] == ["keys-ma"]
