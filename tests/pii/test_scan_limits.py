"""A scan that cannot finish in time fails closed, over HTTP: nothing stored, a problem that names
the limit. And `pgw pii scan` keeps its stdout for results."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.main import create_app
from tests.gateway import SLOW_NOTE, make_record
from tests.server import PGW, LiveServer
from tests.tokens import make_token

LONG_NOTE = SLOW_NOTE
SCOPE = "records:write records:read pii:scan audit:read"


def test_a_write_whose_scan_runs_out_of_time_is_refused_and_nothing_is_stored(
        make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    live = start_server(create_app(make_settings(pii_scan_seconds=0.01)))
    client = live.client(make_token(scope=SCOPE, roles=["compliance_officer"]))
    body = make_record(purpose="customer_support", record_type="support_ticket",
                       subject_id="cust-slow", data={"subject": "Call back", "body": LONG_NOTE})
    response = client.post("/v1/records", json=body)
    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["type"] == "urn:pgw:problem:pii-scan-timeout"
    assert problem["limit_seconds"] == 0.01
    assert "PGW_PII_SCAN_SECONDS" in problem["detail"]
    assert "John" not in response.text
    stored = client.get("/v1/subjects/cust-slow/records", params={"purpose": "customer_support"})
    assert stored.status_code == 200, stored.text
    assert stored.json()["items"] == []

    scan = client.post("/v1/pii/scan", json={"text": LONG_NOTE})
    assert scan.status_code == 503
    assert scan.json()["limit_seconds"] == 0.01
    short = client.post("/v1/pii/scan", json={"text": "Call John Smith on 415-555-0132"})
    assert short.status_code == 200, short.text  # within the limit: answered as usual


def test_pii_scan_stdout_holds_only_result_lines(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "王女士来电，手机13812345678"}\nnot json\n', encoding="utf-8")
    env = {**os.environ, "PGW_DATA_DIR": str(settings.data_dir), "PGW_LOG_LEVEL": "DEBUG"}
    result = subprocess.run([PGW, "pii", "scan", str(source)], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert set(lines[0]) == {"language", "entities"}
    assert {e["type"] for e in lines[0]["entities"]} == {"PERSON", "PHONE_NUMBER"}
    assert lines[1] == {"error": "line is not JSON"}
    assert result.stderr.strip()  # the logs and the summary went to stderr
