"""Anonymised releases: k and l checked on every output by an implementation of our own that
shares nothing with the engine; targets out of reach release nothing; direct identifiers never
leave; pseudonyms cannot join two releases."""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import main as pgw
from app.config import Settings
from app.datasets.hierarchies import generalise
from tests.gateway import Clients, audit_entries
from tests.test_cli import cli_env

PLACES = [("上海市", "浦东新区"), ("上海市", "徐汇区"), ("广东省广州市", "天河区"),
          ("北京市", "朝阳区"), ("浙江省杭州市", "西湖区")]
QIS = ("birth_date", "gender", "postcode", "address")


def profiles(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        province_city, district = rnd.choice(PLACES)
        rows.append({
            "name": f"客户{i:05d}", "email": f"user{i:05d}@example.cn",
            "phone": f"138{i:08d}", "cn_resident_id": "11010519491231002X",
            "birth_date": f"{rnd.randint(1950, 2005)}-{rnd.randint(1, 12):02d}-"
                          f"{rnd.randint(1, 28):02d}",
            "gender": rnd.choice("MF"), "postcode": f"{rnd.randint(100000, 999999)}",
            "address": f"{province_city}{district}幸福路{rnd.randint(1, 999)}号",
            "notes": f"call {i}"})
    return rows


def orders(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [{"order_number": f"SO-{i}", "recipient_phone": f"139{i:08d}",
             "shipping_address": "".join(rnd.choice(PLACES)) + "某路1号",
             "amount": rnd.choice(["9.90", "19.90", "99.00", "199.00", "1999.00"])}
            for i in range(n)]


def independent_k_l(rows: list[dict[str, Any]], qis: tuple[str, ...],
                    sensitive: tuple[str, ...] = ()) -> tuple[int, int | None]:
    """Smallest class and fewest distinct sensitive values, by sorting and grouping."""
    def key(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[q]) for q in qis)

    k, l_min = len(rows), None
    for _, group in itertools.groupby(sorted(rows, key=key), key=key):
        members = list(group)
        k = min(k, len(members))
        for attribute in sensitive:
            distinct = len({str(m[attribute]) for m in members})
            l_min = distinct if l_min is None else min(l_min, distinct)
    return k, l_min


@pytest.fixture
def analyst(clients: Clients) -> httpx.Client:
    return clients(sub="analyst", scope="datasets:export")


def _anonymize(client: httpx.Client, rows: list[dict[str, Any]] | None, status: int = 200,
               **body: Any) -> dict[str, Any]:
    """Uploaded `rows`, or (None) a selection of stored records in `body`."""
    payload = {"record_type": "customer_profile", "purpose": "legal_compliance",
               **({"rows": rows} if rows is not None else {}), **body}
    response = client.post("/v1/datasets/anonymize", json=payload)
    assert response.status_code == status, response.text
    return dict(response.json())


@pytest.mark.parametrize("k", [2, 5, 10])
def test_a_release_is_k_anonymous_by_an_independent_count(analyst: httpx.Client,
                                                          k: int) -> None:
    rows = profiles(3000)
    released = _anonymize(analyst, rows, k=k)
    out, report = released["rows"], released["report"]
    assert independent_k_l(out, QIS)[0] >= k
    assert report["k"] == independent_k_l(out, QIS)[0]
    assert report["meets_target"] is True
    assert report["released"] == len(out) == 3000 - report["suppressed"]
    assert report["suppressed"] <= 0.05 * 3000
    assert report["share_at_risk"] == 0.0
    assert report["max_prosecutor_risk"] <= 1 / k
    assert set(report["information_loss"]) == set(QIS)
    # nothing but what the policy releases: no names, phones, ID numbers or notes
    assert {key for row in out for key in row} == {"email", *QIS}
    text = str(out)
    for original in rows[:200]:
        for field in ("name", "email", "phone", "notes"):
            assert original[field] not in text


def test_each_level_is_the_least_general_that_reaches_k(analyst: httpx.Client) -> None:
    rows = profiles(3000)
    report = _anonymize(analyst, rows, k=5)["report"]
    levels = report["levels"]
    kinds = {"birth_date": "date", "gender": "category", "postcode": "postcode",
             "address": "address"}
    lowered = 0
    # one step down on any column would leave more records in classes under k than the
    # suppression limit allows
    for name in QIS:
        if levels[name] == 0:
            continue
        lower = dict(levels, **{name: levels[name] - 1})
        keys = Counter(tuple(generalise(kinds[q], row[q], lower[q]) for q in QIS)
                       for row in rows)
        too_small = sum(size for size in keys.values() if size < 5)
        assert too_small > int(0.05 * len(rows)), name
        lowered += 1
    assert lowered >= 1


def test_l_diversity_of_the_sensitive_attribute(analyst: httpx.Client) -> None:
    released = _anonymize(analyst, orders(2000), record_type="order", k=5, l=3)
    out = released["rows"]
    k, diversity = independent_k_l(out, ("shipping_address",), ("amount",))
    assert k >= 5
    assert diversity is not None
    assert diversity >= 3
    assert released["report"]["l"] == diversity
    assert all("recipient_phone" not in row for row in out)
    assert not any(row["order_number"].startswith("SO-") for row in out)


def test_pseudonyms_differ_between_releases(analyst: httpx.Client) -> None:
    rows = profiles(500)
    first = _anonymize(analyst, rows, k=2, max_suppression=0.5)["rows"]
    second = _anonymize(analyst, rows, k=2, max_suppression=0.5)["rows"]
    assert not {r["email"] for r in first} & {r["email"] for r in second}


def test_an_unreachable_target_releases_nothing(analyst: httpx.Client,
                                                admin: httpx.Client) -> None:
    refused = _anonymize(analyst, orders(12), 422, record_type="order", k=5, l=5,
                         max_suppression=0.0)
    assert refused["type"].endswith("anonymization-target-unreachable")
    assert "rows" not in refused
    assert "closest" in refused
    [entry] = audit_entries(admin, "dataset.refused")
    assert entry["details"]["k"] == 5
    assert "SO-" not in str(entry)


def test_releases_are_audited_without_data(analyst: httpx.Client, admin: httpx.Client) -> None:
    rows = profiles(300)
    _anonymize(analyst, rows, k=3, max_suppression=0.2)
    [entry] = audit_entries(admin, "dataset.released")
    assert entry["actor"] == "analyst"
    assert entry["purpose"] == "legal_compliance"
    assert entry["details"]["k"] == 3
    assert entry["details"]["rows"] == 300
    assert "客户" not in str(entry)
    assert "example.cn" not in str(entry)


def test_assess_reports_the_risk_of_data_as_given(analyst: httpx.Client) -> None:
    rows = profiles(50)
    report = analyst.post("/v1/datasets/assess", json={
        "record_type": "customer_profile", "rows": rows, "k": 5}).json()
    assert report["k"] == independent_k_l(rows, QIS)[0] == 1
    assert report["meets_target"] is False
    assert report["share_at_risk"] == 1.0  # every person is unique on these four columns


def test_what_a_release_may_and_may_not_do(analyst: httpx.Client, clients: Clients) -> None:
    consent = _anonymize(analyst, profiles(20), 422, purpose="marketing_email")
    assert consent["errors"][0]["field"] == "purpose"
    unknown = _anonymize(analyst, profiles(20), 422, record_type="support_ticket")
    assert "not allow" in unknown["detail"]
    reader = clients(scope="records:read")
    assert reader.post("/v1/datasets/anonymize", json={}).status_code == 403


def test_the_command_line_anonymizes_files(tmp_path: Path, settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    rows = profiles(1000)
    source = tmp_path / "customers.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "release.jsonl"
    assert pgw(["datasets", "anonymize", str(source), "--k", "5", "--l", "2",
                "--out", str(out)]) == 0
    released = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert independent_k_l(released, QIS)[0] >= 5
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1])["k"] >= 5
    assert "] " in captured.err  # the progress bar
    assert "客户" not in out.read_text(encoding="utf-8")
    refused = pgw(["datasets", "anonymize", str(source), "--k", "2000", "--max-suppression",
                   "0", "--out", str(tmp_path / "never.jsonl")])
    assert refused == 1
    assert not (tmp_path / "never.jsonl").exists()


def test_stored_records_are_released_for_the_subjects_the_purpose_covers(
        analyst: httpx.Client, clients: Clients, admin: httpx.Client) -> None:
    crm = clients("compliance_officer", scope="records:write")
    stored = profiles(40)
    for i, row in enumerate(stored):
        body = {"subject_id": f"cust-{i}", "purpose": "account_management",
                "record_type": "customer_profile",
                "data": {k: row[k] for k in ("name", "email", "birth_date", "gender",
                                             "postcode", "address")}}
        assert crm.post("/v1/records", json=body).status_code == 201
    released = _anonymize(analyst, None, 200, select={}, k=2, max_suppression=0.5)
    out, report = released["rows"], released["report"]
    assert report["selection"]["records"] == 40
    assert report["selection"]["excluded_without_basis"] == 0
    assert independent_k_l(out, QIS)[0] >= 2
    assert len(out) == 40 - report["suppressed"]
    assert "客户" not in str(out)
    assert not any(row["email"].endswith("example.cn") for row in out)
    # a purpose resting on consent: only those who gave it are in the release
    for i in range(10):
        grant = {"subject_id": f"cust-{i}", "purpose": "marketing_email",
                 "notice_id": "marketing", "notice_version": 1, "channel": "web",
                 "captured_at": "2026-11-01T10:00:00Z", "evidence": {"form_id": "f"},
                 "jurisdiction": "PIPL"}
        assert admin.post("/v1/consents", json=grant).status_code == 201
    consented = _anonymize(analyst, None, 200, select={}, k=2,
                           purpose="marketing_email", max_suppression=0.5)["report"]
    assert consented["selection"]["subjects"] == 10
    assert consented["selection"]["excluded_without_basis"] == 30
    both = _anonymize(analyst, profiles(5), 422, select={})
    assert "exactly one" in str(both)
