"""Anonymised releases: k and l checked on every output by an implementation of our own that
shares nothing with the engine; targets out of reach release nothing; direct identifiers never
leave; pseudonyms cannot join two releases."""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import main as pgw
from app.config import Settings
from app.datasets.hierarchies import generalise
from tests.datasets.common import QIS, anonymize, independent_k_l, orders, profiles
from tests.gateway import Clients, audit_entries
from tests.test_cli import cli_env


@pytest.mark.parametrize("k", [2, 5, 10])
def test_a_release_is_k_anonymous_by_an_independent_count(analyst: httpx.Client,
                                                          k: int) -> None:
    rows = profiles(3000)
    released = anonymize(analyst, rows, k=k)
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


KINDS = {"birth_date": "date", "gender": "category", "postcode": "postcode",
         "address": "address"}


def brute_force_least_loss(rows: list[dict[str, Any]], k: int,
                           limit: int) -> tuple[float, dict[str, int]]:
    """Every combination of levels, judged with Counters. Of those suppressing at most
    `limit` records and least general (one level lower on any column suppresses more), the
    least loss (LM: a cell covering g of its column's D distinct values loses (g-1)/(D-1), a
    suppressed record 1 per column)."""
    tops = {"date": 5, "category": 1, "postcode": 5, "address": 4}
    cells: dict[tuple[str, int], list[str]] = {}
    cell_loss: dict[tuple[str, int], list[float]] = {}
    for name in QIS:
        originals = [generalise(KINDS[name], row[name], 0) for row in rows]
        domain = len(set(originals))
        for level in range(tops[KINDS[name]] + 1):
            values = [generalise(KINDS[name], row[name], level) for row in rows]
            covers: dict[str, set[str]] = {}
            for value, original in zip(values, originals, strict=True):
                covers.setdefault(value, set()).add(original)
            cells[name, level] = values
            cell_loss[name, level] = [(len(covers[v]) - 1) / (domain - 1) for v in values]
    dropped: dict[tuple[int, ...], list[bool]] = {}
    for node in itertools.product(*(range(tops[KINDS[n]] + 1) for n in QIS)):
        keys = list(zip(*(cells[n, level] for n, level in zip(QIS, node, strict=True)),
                        strict=True))
        sizes = Counter(keys)
        dropped[node] = [sizes[key] < k for key in keys]
    best: tuple[float, dict[str, int]] | None = None
    for node, out in dropped.items():
        lower = [node[:i] + (v - 1,) + node[i + 1:] for i, v in enumerate(node) if v]
        if sum(out) > limit or any(sum(dropped[n]) <= limit for n in lower):
            continue
        levels = dict(zip(QIS, node, strict=True))
        loss = sum(sum(1.0 if d else c for d, c in zip(out, cell_loss[n, levels[n]],
                                                        strict=True)) / len(rows)
                   for n in QIS) / len(QIS)
        if best is None or loss < best[0]:
            best = (loss, levels)
    assert best is not None
    return best


def test_the_release_is_the_least_general_losing_the_least(analyst: httpx.Client) -> None:
    rows = profiles(600, seed=5)
    limit = int(0.05 * len(rows))
    report = anonymize(analyst, rows, k=5)["report"]
    loss, _ = brute_force_least_loss(rows, 5, limit)
    assert report["information_loss_mean"] == round(loss, 4)
    assert 0 < loss < 1
    # the per-column figures are the loss of the levels the release reports
    assert set(report["information_loss"]) == set(QIS)
    assert round(sum(report["information_loss"].values()) / len(QIS), 3) == round(loss, 3)
    # one step down on any column would leave more records in classes under k than the
    # suppression limit allows
    levels = report["levels"]
    for name in QIS:
        if levels[name] == 0:
            continue
        lower = dict(levels, **{name: levels[name] - 1})
        keys = Counter(tuple(generalise(KINDS[q], row[q], lower[q]) for q in QIS)
                       for row in rows)
        assert sum(size for size in keys.values() if size < 5) > limit, name


def test_l_diversity_of_the_sensitive_attribute(analyst: httpx.Client) -> None:
    released = anonymize(analyst, orders(2000), record_type="order", k=5, l=3)
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
    first = anonymize(analyst, rows, k=2, max_suppression=0.5)["rows"]
    second = anonymize(analyst, rows, k=2, max_suppression=0.5)["rows"]
    assert not {r["email"] for r in first} & {r["email"] for r in second}


def test_an_unreachable_target_releases_nothing(analyst: httpx.Client,
                                                admin: httpx.Client) -> None:
    refused = anonymize(analyst, orders(12), 422, record_type="order", k=5, l=5,
                         max_suppression=0.0)
    assert refused["type"].endswith("anonymization-target-unreachable")
    assert "rows" not in refused
    assert "closest" in refused
    [entry] = audit_entries(admin, "dataset.refused")
    assert entry["details"]["k"] == 5
    assert "SO-" not in str(entry)


def test_releases_are_audited_without_data(analyst: httpx.Client, admin: httpx.Client) -> None:
    rows = profiles(300)
    anonymize(analyst, rows, k=3, max_suppression=0.2)
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
    consent = anonymize(analyst, profiles(20), 422, purpose="marketing_email")
    assert consent["errors"][0]["field"] == "purpose"
    unknown = anonymize(analyst, profiles(20), 422, record_type="support_ticket")
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
    released = anonymize(analyst, None, 200, select={}, k=2, max_suppression=0.5)
    out, report = released["rows"], released["report"]
    assert report["selection"]["rows"] == 40
    # counts of people left out are for the audit log, not the caller
    assert "excluded_without_basis" not in report["selection"]
    entry = audit_entries(admin, "dataset.released")[-1]
    assert entry["details"]["records"] == 40
    assert entry["details"]["excluded_without_basis"] == 0
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
    consented = anonymize(analyst, None, 200, select={}, k=2,
                           purpose="marketing_email", max_suppression=0.5)["report"]
    assert consented["selection"]["rows"] == 10
    entry = audit_entries(admin, "dataset.released")[-1]
    assert entry["details"]["subjects"] == 10
    assert entry["details"]["excluded_without_basis"] == 30
    both = anonymize(analyst, profiles(5), 422, select={})
    assert "exactly one" in str(both)
