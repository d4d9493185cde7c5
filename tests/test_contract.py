"""The API contract: every route declares its response schema, every list pages alike, every
time on the wire is RFC 3339 with `Z`, and a replayed write answers with the first's headers."""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.config import Settings
from app.errors import PROBLEM_BASE
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


def _problem_types(response: dict[str, Any]) -> list[str]:
    schema = response["content"]["application/problem+json"]["schema"]
    assert schema["allOf"][0] == {"$ref": "#/components/schemas/Problem"}
    return [uri.removeprefix(PROBLEM_BASE) for uri in schema["allOf"][1]["properties"]["type"]
            ["enum"]]


def test_every_operation_documents_its_problems_with_their_types(settings: Settings) -> None:
    document = create_app(settings).openapi()
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title",
                                                                       "status"]
    for path, operations in document["paths"].items():
        if path in ("/healthz", "/readyz", "/metrics"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            problems = {status: _problem_types(response) for status, response
                        in responses.items() if int(status) >= 400}
            # the guard, the session and the middleware: on every operation
            assert {"401", "403", "413", "422", "429", "500", "503"} <= set(problems), path
            assert "insufficient-scope" in problems["403"], (method, path)
            assert "database-unavailable" in problems["503"], (method, path)
            scope = operation["security"][0]["HTTPBearer"][0]
            assert f"`{scope}`" in responses["403"]["description"], (method, path)


def test_a_routes_own_problems_are_documented_beside_the_common_ones(
        settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    patch = paths["/v1/records/{record_id}"]["patch"]["responses"]
    assert set(_problem_types(patch["409"])) == {"conflict", "record-closed"}
    assert _problem_types(patch["412"]) == ["precondition-failed"]
    assert {"consent-withdrawn", "purpose-not-allowed", "insufficient-scope"} <= set(
        _problem_types(patch["403"]))
    assert "key-damaged" in _problem_types(patch["500"])
    assert "sealed" in _problem_types(patch["503"])  # it uses the keyring
    listing = paths["/v1/dsr"]["get"]["responses"]
    assert {"404", "409"}.isdisjoint(listing)
    assert "sealed" not in _problem_types(listing["503"])  # it does not
    export = paths["/v1/dsr/{dsr_id}/export"]["get"]["responses"]
    assert _problem_types(export["410"]) == ["gone"]
    assert _problem_types(export["409"]) == ["not-ready"]


def test_a_problem_answered_is_one_documented_for_the_operation(
        clients: Clients, admin: httpx.Client, settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    reader = clients(sub="reader", scope="records:read")
    for method, path, template, client in (
            ("get", "/v1/dsr/dsr_missing", "/v1/dsr/{dsr_id}", admin),
            ("post", "/v1/legal-holds/hold_missing/release",
             "/v1/legal-holds/{hold_id}/release", admin),
            ("get", "/v1/dsr", "/v1/dsr", reader),
            ("get", "/v1/dsr?cursor=bm9wZQ", "/v1/dsr", admin)):
        answer = client.request(method.upper(), path)
        documented = paths[template][method]["responses"][str(answer.status_code)]
        assert answer.json()["type"].removeprefix(PROBLEM_BASE) in _problem_types(documented)


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
    agent = clients("support_agent", sub="agent-z")
    applied = agent.post("/v1/access-requests", json={
        "record_id": written.json()["record_id"], "fields": ["email"],
        "purpose": "customer_support", "justification": "a call back", "duration": "PT1H"})
    assert applied.status_code == 201, applied.text
    answers = [written.json(), dsr.json(), hold.json(), applied.json(),
               agent.get("/v1/access-requests").json()]
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
    assert len(found) > 20
    assert [(key, time) for key, time in found if not TIMESTAMP.match(str(time))] == []


def test_a_replayed_write_answers_with_the_first_answers_headers(clients: Clients,
                                                                admin: httpx.Client) -> None:
    crm = clients("compliance_officer", sub="svc-crm",
                  scope="records:write records:read dsr:submit consent:write")
    consent = {"subject_id": "replay-1", "purpose": "marketing_email", "notice_id": "marketing",
               "notice_version": 1, "channel": "web", "captured_at": "2026-11-01T10:00:00Z",
               "evidence": {"form_id": "signup-v3"}, "jurisdiction": "PIPL"}
    for path, body in (("/v1/records", make_record(subject_id="replay-1")),
                       ("/v1/dsr", {"subject_id": "replay-1", "type": "access",
                                    "jurisdiction": "PIPL",
                                    "verification": {"method": "logged_in_session"}}),
                       ("/v1/consents", consent)):
        headers = {"Idempotency-Key": f"replay-{path}"}
        first = crm.post(path, json=body, headers=headers)
        again = crm.post(path, json=body, headers=headers)
        assert first.status_code in (201, 202), first.text
        assert first.headers["Location"].startswith(
            "/v1/subjects/replay-1/" if path == "/v1/consents" else path + "/"), path
        assert (again.status_code, again.json()) == (first.status_code, first.json())
        for name in ("Location", "ETag"):
            assert again.headers.get(name) == first.headers.get(name), (path, name)
    assert crm.post("/v1/records", json=make_record(subject_id="replay-2"),
                    headers={"Idempotency-Key": "etag"}).headers["ETag"] == '"1"'
