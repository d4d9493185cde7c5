"""`pgw records import`: JSON Lines and CSV through the batch service, per-line failures,
progress on stderr, and a resumed import that stores nothing twice."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from tests.gateway import audit_entries
from tests.server import PGW
from tests.test_cli import cli_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_import(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PGW, "records", "import", *args], capture_output=True, text=True,
                          env=cli_env(settings, PGW_OPERATOR="alice"), timeout=300,
                          check=False)


def stored(admin: httpx.Client, subject_id: str, purpose: str = "account_management",
           ) -> list[Any]:
    response = admin.get(f"/v1/subjects/{subject_id}/records", params={"purpose": purpose})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_jsonl_import_reports_each_failed_line(settings: Settings, admin: httpx.Client,
                                               tmp_path: Path) -> None:
    source = tmp_path / "customers.jsonl"
    lines = EXAMPLES.joinpath("customers.jsonl").read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[0]) | {"subject_id": "cust-bad"}
    bad["data"] = bad["data"] | {"email": "not-an-address"}
    source.write_text("\n".join([*lines[:3], "{not json", json.dumps(bad, ensure_ascii=False),
                                 *lines[3:]]) + "\n", encoding="utf-8")
    result = run_import(settings, str(source), "--json", "--batch-size", "4")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["created"] == len(lines)
    assert [(f["line"], f["problem"]["title"]) for f in summary["failed"]] == [
        (4, "Unreadable line"), (5, "Unprocessable content")]
    assert summary["failed"][1]["problem"]["errors"][0]["field"] == "data.email"
    assert len(stored(admin, "cust-1001")) == 1
    assert sorted(r["record_type"] for r in stored(admin, "cust-1001", "customer_support")) \
        == ["customer_profile", "support_ticket"]
    assert stored(admin, "cust-bad") == []
    actors = {e["actor"] for e in audit_entries(admin, "record.created")}
    assert actors == {"operator:alice"}
    assert len(audit_entries(admin, "record.created")) == len(lines)


def test_csv_import_with_progress_then_a_rerun_stores_nothing_more(
        settings: Settings, admin: httpx.Client, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    shutil.copy(EXAMPLES / "customers.csv", source)
    result = run_import(settings, str(source), "--batch-size", "7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "20 created, 0 failed"
    assert "20/20" in result.stderr
    [record] = stored(admin, "cust-2001")
    assert record["data"]["email"] == "customer1@example.cn"
    again = run_import(settings, str(source), "--json")
    assert json.loads(again.stdout)["created"] == 20  # the saved summary: nothing left to do
    assert len(audit_entries(admin, "record.created")) == 20


def test_an_interrupted_import_resumes_without_storing_anything_twice(
        settings: Settings, admin: httpx.Client, tmp_path: Path) -> None:
    source = tmp_path / "customers.jsonl"
    shutil.copy(EXAMPLES / "customers.jsonl", source)
    # the later batches went in, then the process died before saving its progress
    first = run_import(settings, str(source), "--batch-size", "5", "--resume-from", "11",
                       "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] == 12
    source.with_name(source.name + ".pgw-import.json").unlink()
    resumed = run_import(settings, str(source), "--batch-size", "5", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["created"] == 22  # 10 new, 12 replayed
    assert len(audit_entries(admin, "record.created")) == 22
    replays = audit_entries(admin, "idempotency.replayed")
    assert len(replays) == 3  # the batches starting at lines 11, 16 and 21
    for subject in ("cust-1001", "cust-1011", "cust-1020"):
        assert len(stored(admin, subject)) == 1
