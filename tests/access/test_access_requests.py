"""Apply, approve, audit: elevated access requested, decided by someone else, used, expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.gateway import Clients, audit_entries, read, write


@pytest.fixture
def record_id(clients: Clients) -> str:
    return str(write(clients())["record_id"])


def apply(client: httpx.Client, status: int = 201, **overrides: Any) -> dict[str, Any]:
    body = {"fields": ["email", "phone"], "purpose": "customer_support",
            "justification": "Customer disputes a delivery; must call them back",
            "duration": "PT2H", **overrides}
    response = client.post("/v1/access-requests", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


def test_request_approve_use_and_expire(clients: Clients, admin: httpx.Client, record_id: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    agent = clients("support_agent", sub="agent-7")
    assert read(agent, record_id, "customer_support")["data"]["email"] == "Z***@Example.cn"
    pending = apply(agent, record_id=record_id)
    assert pending["status"] == "pending"
    assert pending["subject_id"] is None  # filed by record: whose it is stays unsaid
    # still masked while pending
    assert read(agent, record_id, "customer_support")["data"]["email"] == "Z***@Example.cn"

    supervisor = clients(sub="supervisor-2", scope="access:approve")
    response = supervisor.post(f"/v1/access-requests/{pending['id']}/approve",
                               json={"reason": "ticket 5521"})
    assert response.status_code == 200, response.text
    approved = response.json()
    assert approved["status"] == "approved"
    assert approved["decided_by"] == "supervisor-2"
    ends = datetime.fromisoformat(approved["expires_at"])
    assert timedelta(minutes=119) < ends - datetime.now(UTC) <= timedelta(hours=2)

    seen = read(agent, record_id, "customer_support")
    assert seen["data"]["email"] == "Zhang.Wei@Example.cn"
    assert seen["data"]["phone"] == "+8613812345678"
    assert seen["data"]["name"] == "张*"  # not asked for: still masked
    assert seen["access"]["email"]["reason"].startswith(f"elevated access {pending['id']}")
    # a grant does not travel: another purpose or another caller gets the usual view
    other = clients("support_agent", sub="agent-8")
    assert read(other, record_id, "customer_support")["data"]["email"] == "Z***@Example.cn"

    later = datetime.now(UTC) + timedelta(hours=3)
    monkeypatch.setattr("app.access.service.utcnow", lambda: later)
    assert read(agent, record_id, "customer_support")["data"]["email"] == "Z***@Example.cn"
    state = agent.get(f"/v1/access-requests/{pending['id']}").json()
    assert state["status"] == "expired"
    actions = [e["action"] for e in audit_entries(admin)
               if e["resource"] == f"access_request:{pending['id']}"]
    assert actions == ["access.requested", "access.approved", "access.expired"]


def test_the_requester_cannot_approve_their_own_request(clients: Clients, admin: httpx.Client,
                                                        record_id: str) -> None:
    both = clients("support_agent", sub="agent-7", scope="records:read access:approve")
    pending = apply(both, record_id=record_id)
    response = both.post(f"/v1/access-requests/{pending['id']}/approve", json={})
    assert response.status_code == 403
    assert response.json()["type"] == "urn:pgw:problem:separation-of-duties"
    assert both.get(f"/v1/access-requests/{pending['id']}").json()["status"] == "pending"
    [refused] = audit_entries(admin, "access.approved")
    assert refused["outcome"] == "denied"


def test_denied_and_decided_requests(clients: Clients, record_id: str) -> None:
    agent = clients("support_agent", sub="agent-7")
    pending = apply(agent, record_id=record_id)
    supervisor = clients(sub="supervisor-2", scope="access:approve")
    denied = supervisor.post(f"/v1/access-requests/{pending['id']}/deny",
                             json={"reason": "use the masked number"})
    assert denied.json()["status"] == "denied"
    again = supervisor.post(f"/v1/access-requests/{pending['id']}/approve", json={})
    assert again.status_code == 409
    assert read(agent, record_id, "customer_support")["data"]["email"] == "Z***@Example.cn"


def test_bad_requests_are_refused(clients: Clients, record_id: str) -> None:
    agent = clients("support_agent", sub="agent-7")
    apply(agent, 422, record_id=record_id, duration="P30D")
    apply(agent, 422, record_id=record_id, fields=["shoe_size"])
    apply(agent, 422, record_id=record_id, subject_id="cust-1")
    apply(agent, 422, record_id=record_id, duration="two hours")
    assert apply(agent, record_id=record_id, duration=7200)["duration_seconds"] == 7200
    apply(agent, 404, record_id="rec_nope")
    writer = clients(scope="records:write")
    assert writer.post("/v1/access-requests", json={}).status_code == 403


def test_requests_are_visible_to_their_requester_and_approvers_only(
        clients: Clients, record_id: str) -> None:
    mine = apply(clients("support_agent", sub="agent-7"), subject_id="cust-1")
    stranger = clients("support_agent", sub="agent-9")
    assert stranger.get(f"/v1/access-requests/{mine['id']}").status_code == 404
    assert stranger.get("/v1/access-requests").json()["items"] == []
    supervisor = clients(sub="supervisor-2", scope="access:approve")
    pending = supervisor.get("/v1/access-requests", params={"status": "pending"}).json()
    assert [r["id"] for r in pending["items"]] == [mine["id"]]


def test_a_subject_wide_grant_covers_every_record(clients: Clients, record_id: str) -> None:
    agent = clients("support_agent", sub="agent-7")
    pending = apply(agent, subject_id="cust-1", fields=["name"])
    clients(sub="supervisor-2", scope="access:approve").post(
        f"/v1/access-requests/{pending['id']}/approve", json={})
    listing = agent.get("/v1/subjects/cust-1/records", params={"purpose": "customer_support"})
    assert listing.json()["items"][0]["data"]["name"] == "张伟"


def test_a_request_by_record_does_not_reveal_whose_record_it_is(clients: Clients,
                                                               record_id: str) -> None:
    analyst = clients("marketing_analyst", sub="analyst-3")
    read(analyst, record_id, "customer_support", 404)  # nothing of it is theirs to see
    filed = analyst.post("/v1/access-requests", json={
        "record_id": record_id, "fields": ["email"], "purpose": "customer_support",
        "justification": "Checking a bounced campaign address", "duration": "PT1H"})
    assert filed.status_code == 201, filed.text
    shown = analyst.get(f"/v1/access-requests/{filed.json()['id']}")
    listed = analyst.get("/v1/access-requests")
    assert shown.status_code == listed.status_code == 200
    for response in (filed, shown, listed):
        assert "cust-1" not in response.text
    assert filed.json()["subject_id"] is None
    assert filed.json()["record_id"] == record_id
    # the approver decides knowing whose data it is
    supervisor = clients(sub="supervisor-2", scope="access:approve")
    assert supervisor.get(f"/v1/access-requests/{filed.json()['id']}").json()[
        "subject_id"] == "cust-1"


def test_a_record_read_sees_grants_for_that_record_or_its_whole_subject(
        clients: Clients, record_id: str) -> None:
    """A read first asks, with its record, whether any grant may apply; both kinds must count:
    one for this record, one for all of the subject's records. One for another record does
    not apply."""
    agent = clients("support_agent", sub="agent-7")
    supervisor = clients(sub="supervisor-2", scope="access:approve")
    second = str(write(clients())["record_id"])  # the same subject, another record
    for_second = apply(agent, record_id=second, fields=["email"])
    assert supervisor.post(f"/v1/access-requests/{for_second['id']}/approve",
                           json={}).status_code == 200
    assert read(agent, record_id, "customer_support")["data"]["email"] == "Z***@Example.cn"
    assert read(agent, second, "customer_support")["data"]["email"] == "Zhang.Wei@Example.cn"
    subject_wide = apply(agent, subject_id="cust-1", fields=["name"])
    assert supervisor.post(f"/v1/access-requests/{subject_wide['id']}/approve",
                           json={}).status_code == 200
    seen = read(agent, record_id, "customer_support")
    assert seen["data"]["name"] == "张伟"
    assert seen["data"]["email"] == "Z***@Example.cn"
