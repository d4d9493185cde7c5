"""Rows uploaded as CSV or JSON Lines and released in either format; stored records chosen
by filters."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.datasets.common import QIS, anonymize, independent_k_l, profiles
from tests.gateway import Clients, audit_entries
from tests.server import LiveServer
from tests.tokens import make_token

CSV = {"content-type": "text/csv"}
JSONL = {"content-type": "application/x-ndjson"}


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def as_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


QUERY = {"record_type": "customer_profile", "purpose": "legal_compliance", "k": "5"}


def test_a_csv_upload_is_released_as_json(analyst: httpx.Client, admin: httpx.Client) -> None:
    rows = profiles(1500)
    response = analyst.post("/v1/datasets/anonymize", params={**QUERY, "l": "1"},
                            content=as_csv(rows).encode(), headers=CSV)
    assert response.status_code == 200, response.text
    out, report = response.json()["rows"], response.json()["report"]
    assert independent_k_l(out, QIS)[0] >= 5
    assert report["selection"] == {"source": "upload", "record_type": "customer_profile",
                                   "rows": 1500}
    assert "客户" not in response.text
    [entry] = audit_entries(admin, "dataset.released")
    assert entry["details"]["rows"] == 1500


def test_json_lines_in_csv_out_with_the_report_in_a_header(analyst: httpx.Client) -> None:
    rows = profiles(1500)
    response = analyst.post("/v1/datasets/anonymize", params=QUERY,
                            content=as_jsonl(rows).encode(),
                            headers={**JSONL, "accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    out = list(csv.DictReader(io.StringIO(response.text)))
    report = json.loads(response.headers["pgw-risk-report"])
    assert report["released"] == len(out)
    assert independent_k_l(out, QIS)[0] >= 5 == report["k_target"]
    assert set(out[0]) == {"email", *QIS}


def test_json_lines_out(analyst: httpx.Client) -> None:
    response = analyst.post("/v1/datasets/anonymize", params=QUERY,
                            content=as_csv(profiles(800)).encode(),
                            headers={**CSV, "accept": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    out = [json.loads(line) for line in response.text.splitlines()]
    assert len(out) == json.loads(response.headers["pgw-risk-report"])["released"]
    assert independent_k_l(out, QIS)[0] >= 5


def test_an_upload_can_be_assessed(analyst: httpx.Client) -> None:
    rows = profiles(50)
    response = analyst.post("/v1/datasets/assess",
                            params={"record_type": "customer_profile", "k": "2"},
                            content=as_csv(rows).encode(), headers=CSV)
    assert response.status_code == 200, response.text
    assert response.json()["k"] == independent_k_l(rows, QIS)[0]


@pytest.mark.parametrize(("content", "headers", "params", "field", "reason"), [
    (b"birth_date,gender\n1980-01-01,M,extra\n", CSV, QUERY, "rows", "more cells"),
    (b'{"gender": "M"}\nnot json\n', JSONL, QUERY, "rows", "line 2 is not JSON"),
    (b'[1, 2]\n', JSONL, QUERY, "rows", "not a JSON object"),
    (b"\xff\xfe\x00", CSV, QUERY, "rows", "UTF-8"),
    (b"gender\nM\n", CSV, {**QUERY, "k": "many"}, "k", "must be an integer"),
    (b"gender\nM\n", CSV, {**QUERY, "max_suppression": "some"}, "max_suppression",
     "must be a number"),
    (b"gender\nM\n", CSV, {**QUERY, "k": "1"}, "k", "greater than or equal to 2"),
    (b"gender\nM\n", CSV, {**QUERY, "colour": "red"}, "colour", "unknown field"),
    (b"gender\n", CSV, QUERY, "rows", "at least 1"),
])
def test_a_bad_upload_is_refused_naming_the_field(analyst: httpx.Client, content: bytes,
                                                  headers: dict[str, str],
                                                  params: dict[str, str], field: str,
                                                  reason: str) -> None:
    response = analyst.post("/v1/datasets/anonymize", params=params, content=content,
                            headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == field
    assert reason in error["reason"]


def test_query_parameters_do_not_go_with_a_json_body(analyst: httpx.Client) -> None:
    response = analyst.post("/v1/datasets/anonymize", params={"k": "3"}, json={
        "record_type": "customer_profile", "purpose": "legal_compliance",
        "rows": profiles(20)})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "k"


def test_a_csv_release_cannot_carry_a_formula(analyst: httpx.Client) -> None:
    rows = [{"order_number": f"SO-{i}", "shipping_address": "上海市浦东新区某路1号",
             "amount": ("=HYPERLINK(\"http://x\")", "-5.00", "@SUM(A1)")[i % 3]}
            for i in range(30)]
    response = analyst.post("/v1/datasets/anonymize", params={
        "record_type": "order", "purpose": "legal_compliance", "k": "5", "l": "3"},
        content=as_csv(rows).encode(), headers={**CSV, "accept": "text/csv"})
    assert response.status_code == 200, response.text
    amounts = {row["amount"] for row in csv.DictReader(io.StringIO(response.text))}
    assert amounts == {"'=HYPERLINK(\"http://x\")", "-5.00", "'@SUM(A1)"}


def test_uploads_have_their_own_size_limit(make_settings: Callable[..., Settings],
                                           start_server: Callable[[FastAPI], LiveServer]
                                           ) -> None:
    server = start_server(create_app(make_settings(max_upload_bytes=4096)))
    client = server.client(make_token(sub="analyst", scope="datasets:export"))
    big = as_csv(profiles(200)).encode()
    response = client.post("/v1/datasets/anonymize", params=QUERY, content=big, headers=CSV)
    assert response.status_code == 413
    assert "PGW_MAX_UPLOAD_BYTES" in response.json()["detail"]
    small = client.post("/v1/datasets/anonymize", params={**QUERY, "k": "2"},
                        content=as_csv(profiles(20)).encode(), headers=CSV)
    assert small.status_code != 413


def _store(clients: Clients, rows: list[dict[str, Any]], purpose: str, first: int,
           fields: tuple[str, ...]) -> None:
    crm = clients("compliance_officer", scope="records:write")
    for i, row in enumerate(rows, start=first):
        body = {"subject_id": f"cust-{i}", "purpose": purpose,
                "record_type": "customer_profile", "data": {k: row[k] for k in fields}}
        assert crm.post("/v1/records", json=body).status_code == 201, body


def test_stored_records_are_chosen_by_filters(analyst: httpx.Client, clients: Clients,
                                              admin: httpx.Client) -> None:
    rows = profiles(60, seed=9)
    _store(clients, rows[:40], "account_management", 0,
           ("name", "email", "birth_date", "gender", "postcode", "address"))
    _store(clients, rows[40:], "order_fulfilment", 40, ("name", "email", "postcode", "address"))
    women = sum(1 for row in rows[:40] if row["gender"] == "F")
    released = anonymize(analyst, None, 200, k=2, max_suppression=0.5, select={
        "collected_for": ["account_management"], "where": {"gender": ["F"]}})
    report = released["report"]
    assert report["selection"]["rows"] == women
    assert report["selection"]["filters"]["where"] == {"gender": 1}
    assert all(row["gender"] in ("F", "*") for row in released["rows"])
    entry = audit_entries(admin, "dataset.released")[-1]
    assert entry["details"]["filters"]["collected_for"] == ["account_management"]
    assert entry["details"]["records"] == 40  # collected_for is applied in the query
    assert entry["details"]["excluded_by_filter"] == 40 - women


@pytest.mark.parametrize(("select", "field"), [
    ({"where": {"name": ["张伟"]}}, "select.where.name"),
    ({"where": {"gender": []}}, "select.where.gender"),
    ({"collected_for": ["nonsense"]}, "select.collected_for.0"),
])
def test_a_bad_filter_is_refused_naming_it(analyst: httpx.Client, select: dict[str, Any],
                                           field: str) -> None:
    refused = anonymize(analyst, None, 422, select=select)
    assert refused["errors"][0]["field"] == field
