"""The API contract: every route declares its response schema, every list pages alike, every
time on the wire is RFC 3339 with `Z`, and a replayed write answers with the first's headers."""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.config import Settings
from app.main import create_app
from tests.gateway import Clients, grant_consent, make_record

# Routes whose 200 is not JSON: a file, a PEM, Prometheus text or an HTML page.
NOT_JSON = {("get", "/v1/audit/public-key"), ("get", "/v1/audit/export"),
            ("get", "/v1/audit/checkpoint"), ("get", "/metrics"),
            ("get", "/v1/dsr/{dsr_id}/export"), ("get", "/readyz")}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
TIME_KEYS = re.compile(r"(_at|_until|^until|^ts|^at)$")


def _success(operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    status = next(code for code in operation["responses"] if code.startswith("2"))
    return status, operation["responses"][status]


def test_every_json_route_declares_a_response_schema(settings: Settings) -> None:
    document = create_app(settings).openapi()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            status, response = _success(operation)
            if (method, path) in NOT_JSON or status == "204":
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" not in schema:  # `{}` is what FastAPI gives a route without a model
                missing.append((method, path))
    assert missing == []


def test_every_list_route_takes_cursor_and_limit_and_answers_items_and_next(
        settings: Settings) -> None:
    document = create_app(settings).openapi()
    schemas = document["components"]["schemas"]
    lists = []
    for path, operations in document["paths"].items():
        get = operations.get("get")
        if get is None or ("get", path) in NOT_JSON:
            continue
        _, response = _success(get)
        ref = response.get("content", {}).get("application/json", {}).get("schema", {})
        properties = schemas[ref["$ref"].split("/")[-1]].get("properties", {}) if ref else {}
        query = {p["name"] for p in get.get("parameters", []) if p["in"] == "query"}
        if "items" in properties or "limit" in query or "cursor" in query:
            lists.append(path)
            assert set(properties) == {"items", "next"}, path
            assert {"cursor", "limit"} <= query, path
    assert set(lists) == {"/v1/audit", "/v1/audit/checkpoints", "/v1/dsr", "/v1/legal-holds",
                          "/v1/access-requests", "/v1/webhooks",
                          "/v1/subjects/{subject_id}/records"}


def test_problem_responses_are_documented_on_every_scoped_route(settings: Settings) -> None:
    document = create_app(settings).openapi()
    for path, operations in document["paths"].items():
        if path in ("/healthz", "/readyz", "/metrics"):
            continue
        for method, operation in operations.items():
            problem = operation["responses"].get("422", {}).get("content", {})
            assert "application/problem+json" in problem, (method, path)


def _times(value: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [found for k, v in value.items() if k not in ("data", "details", "evidence")
                for found in _times(v, k)]
    if isinstance(value, list):
        return [found for item in value for found in _times(item, key)]
    return [(key, value)] if TIME_KEYS.search(key) and value is not None else []


def test_every_time_in_the_responses_ends_in_z(clients: Clients, admin: httpx.Client) -> None:
    crm = clients("compliance_officer", sub="svc-crm",
                  scope="records:write records:read dsr:submit dsr:manage")
    keys = clients(sub="key-admin", scope="keys:admin")
    written = crm.post("/v1/records", json=make_record(subject_id="z-1"))
    grant_consent(admin, "z-1", "marketing_email")
    dsr = crm.post("/v1/dsr", json={"subject_id": "z-1", "type": "access",
                                    "jurisdiction": "PIPL",
                                    "verification": {"method": "logged_in_session"}})
    hold = admin.post("/v1/legal-holds", json={"subject_id": "z-1", "reason": "litigation"})
    assert (written.status_code, dsr.status_code, hold.status_code) == (201, 202, 201)
    answers = [written.json(), dsr.json(), hold.json()]
    for path, params in (
            (f"/v1/records/{written.json()['record_id']}", {"purpose": "account_management"}),
            ("/v1/subjects/z-1/records", {"purpose": "account_management"}),
            ("/v1/subjects/z-1/consents", {}), (f"/v1/dsr/{dsr.json()['id']}", {}),
            ("/v1/dsr", {}), ("/v1/legal-holds", {}), ("/v1/audit", {}),
            ("/v1/audit/checkpoints", {}), ("/v1/keys/status", {})):
        reader = keys if path.startswith("/v1/keys") else admin
        response = reader.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
        answers.append(response.json())
    found = [time for answer in answers for time in _times(answer)]
    assert len(found) > 15
    assert [(key, time) for key, time in found if not TIMESTAMP.match(str(time))] == []


def test_a_replayed_write_answers_with_the_first_answers_headers(clients: Clients) -> None:
    crm = clients("compliance_officer", sub="svc-crm",
                  scope="records:write records:read dsr:submit")
    for path, body in (("/v1/records", make_record(subject_id="replay-1")),
                       ("/v1/dsr", {"subject_id": "replay-1", "type": "access",
                                    "jurisdiction": "PIPL",
                                    "verification": {"method": "logged_in_session"}})):
        headers = {"Idempotency-Key": f"replay-{path}"}
        first = crm.post(path, json=body, headers=headers)
        again = crm.post(path, json=body, headers=headers)
        assert first.headers["Location"].startswith(path + "/"), path
        assert (again.status_code, again.json()) == (first.status_code, first.json())
        for name in ("Location", "ETag"):
            assert again.headers.get(name) == first.headers.get(name), (path, name)
    assert crm.post("/v1/records", json=make_record(subject_id="replay-2"),
                    headers={"Idempotency-Key": "etag"}).headers["ETag"] == '"1"'
