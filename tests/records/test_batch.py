"""`POST /v1/records/batch` over HTTP: per-item results and problems, partial success, one
audit entry per stored item (and nothing stored without it), idempotent retries, the item and
byte limits, per-item scan deadlines and rate limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from app.config import Settings
from app.main import create_app
from app.records.batch import MAX_ITEMS
from app.runtime import Runtime
from tests.audit.test_fail_closed import break_audit_inserts, count
from tests.gateway import PROFILE, SLOW_NOTE, Clients, audit_entries, make_record
from tests.server import LiveServer
from tests.tokens import make_token

NOTE = "Customer called from 13912345678; e-mail li.na@example.com when the parcel ships."
LONG_NOTE = SLOW_NOTE
PREFS = {"channels": "email", "interests": "running shoes"}


def make_ticket(subject_id: str, body: str = NOTE) -> dict[str, Any]:
    return make_record(subject_id=subject_id, purpose="customer_support",
                       record_type="support_ticket", data={"subject": "Parcel", "body": body})


def post_batch(client: httpx.Client, items: list[Any], **headers: str) -> httpx.Response:
    return client.post("/v1/records/batch", json={"records": items}, headers=headers)


def subject_records(client: httpx.Client, subject_id: str, purpose: str) -> list[Any]:
    response = client.get(f"/v1/subjects/{subject_id}/records", params={"purpose": purpose})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_mixed_batch_stores_the_valid_items_and_explains_each_failure(
        clients: Clients, admin: httpx.Client) -> None:
    client = clients()
    items = [make_record(subject_id="cust-b1"),
             make_record(subject_id="cust-b2", data={**PROFILE, "email": "not-an-address"}),
             make_ticket("cust-b3"),
             make_record(subject_id="cust-b4", purpose="marketing_email",
                         record_type="marketing_preferences", data=PREFS),
             {"subject_id": "cust-b5", "purpose": "account_management"},
             make_record(subject_id="cust-b6")]
    response = post_batch(client, items)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["failed"]) == (3, 3)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == ["created", "error", "created", "error", "error",
                                              "created"]
    invalid = results[1]["problem"]
    assert invalid["status"] == 422
    assert invalid["type"] == "urn:pgw:problem:validation-error"
    assert invalid["errors"] == [{"field": "data.email", "reason": "not an e-mail address"}]
    assert results[3]["problem"]["type"] == "urn:pgw:problem:consent-required"
    assert results[3]["problem"]["status"] == 403
    malformed = results[4]["problem"]
    assert malformed["status"] == 422
    assert {e["field"] for e in malformed["errors"]} == {"record_type", "data"}
    assert results[2]["findings"] == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert "张伟" not in response.text
    assert "li.na@example.com" not in response.text

    [stored] = subject_records(admin, "cust-b1", "account_management")
    assert stored["record_id"] == results[0]["record_id"]
    [ticket] = subject_records(admin, "cust-b3", "customer_support")
    assert ticket["record_id"] == results[2]["record_id"]
    assert subject_records(admin, "cust-b2", "account_management") == []

    created = audit_entries(admin, "record.created")
    assert sorted(e["resource"] for e in created) == sorted(
        f"record:{results[i]['record_id']}" for i in (0, 2, 5))
    [denied] = audit_entries(admin, "record.write_refused")
    assert denied["subject_id"] == "cust-b4"
    assert denied["details"]["reason"] == "consent-required"


def test_a_retried_batch_answers_the_same_and_stores_nothing_twice(
        clients: Clients, admin: httpx.Client) -> None:
    client = clients()
    items = [make_record(subject_id=f"cust-r{i}") for i in range(3)]
    items.append(make_record(subject_id="cust-r9", data={**PROFILE, "phone": "12"}))
    first = post_batch(client, items, **{"Idempotency-Key": "import-1"})
    assert first.status_code == 200, first.text
    again = post_batch(client, items, **{"Idempotency-Key": "import-1"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert first.json()["created"] == 3
    assert len(audit_entries(admin, "record.created")) == 3
    for i in range(3):
        assert len(subject_records(admin, f"cust-r{i}", "account_management")) == 1
    other = post_batch(client, items[:1], **{"Idempotency-Key": "import-1"})
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_more_items_than_the_limit_are_refused_naming_it(clients: Clients,
                                                        admin: httpx.Client) -> None:
    client = clients()
    response = post_batch(client, [make_record(subject_id="cust-x")] * (MAX_ITEMS + 1))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "records"
    assert str(MAX_ITEMS) in error["reason"]
    assert subject_records(admin, "cust-x", "account_management") == []
    empty = post_batch(client, [])
    assert empty.status_code == 422


def test_unauthenticated_batch_is_refused_before_its_body_matters(live: LiveServer) -> None:
    response = httpx.post(f"{live.url}/v1/records/batch", content=b"not json")
    assert response.status_code == 401


def test_a_batch_over_the_byte_limit_is_refused_naming_the_setting(
        make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    live = start_server(create_app(make_settings(max_batch_bytes=4096)))
    client = live.client(make_token(scope="records:write records:read", roles=[]))
    response = post_batch(client, [make_record(subject_id=f"cust-{i}") for i in range(40)])
    assert response.status_code == 413
    assert "PGW_MAX_BATCH_BYTES" in response.json()["detail"]
    small = post_batch(client, [make_record(subject_id="cust-1")])
    assert small.status_code == 200, small.text


def test_an_item_whose_scan_runs_out_of_time_is_refused_alone(
        make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    live = start_server(create_app(make_settings(pii_scan_seconds=0.01)))
    client = live.client(make_token(scope="records:write records:read audit:read",
                                    roles=["compliance_officer"]))
    response = post_batch(client, [make_ticket("cust-quick", "Call 13912345678"),
                                   make_ticket("cust-slow", LONG_NOTE)])
    assert response.status_code == 200, response.text
    quick, slow = response.json()["results"]
    assert quick["status"] == "created"
    assert slow["status"] == "error"
    assert slow["problem"]["type"] == "urn:pgw:problem:pii-scan-timeout"
    assert slow["problem"]["limit_seconds"] == 0.01
    assert "John" not in response.text
    assert subject_records(client, "cust-slow", "customer_support") == []
    assert len(subject_records(client, "cust-quick", "customer_support")) == 1


def test_items_beyond_the_rate_limit_are_refused_each(
        make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    live = start_server(create_app(make_settings(rate_limits="default=0.001/3")))
    client = live.client(make_token(scope="records:write records:read", roles=[]))
    response = post_batch(client, [make_record(subject_id=f"cust-l{i}") for i in range(5)])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created"] * 3 + ["error"] * 2
    assert results[3]["problem"]["status"] == 429
    assert results[3]["problem"]["type"] == "urn:pgw:problem:rate-limited"


def test_a_batch_whose_audit_entries_cannot_be_written_stores_nothing(
        runtime: Runtime, live: LiveServer) -> None:
    client = live.client(make_token(scope="records:write records:read", roles=[]))
    break_audit_inserts(runtime)
    response = post_batch(client, [make_record(subject_id=f"cust-a{i}") for i in range(3)])
    assert response.status_code == 500, response.text
    assert response.json()["type"] == "urn:pgw:problem:audit-write-failed"
    assert count(runtime, "records") == 0
