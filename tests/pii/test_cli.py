"""`pgw pii scan|redact` on JSON Lines, one process and several."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from app.config import Settings
from tests.server import PGW

LINES = [{"text": f"客户张伟{i}号，手机1381234{i:04d}"} for i in range(150)]


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGW_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([PGW, "pii", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in LINES)
                    + "not json\n")
    return path


@pytest.mark.parametrize("workers", ["1", "2"])
def test_scan_writes_one_line_per_input_in_order(settings: Settings, jsonl: Path,
                                                 workers: str) -> None:
    result = run(settings, "scan", str(jsonl), "--workers", workers)
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == len(LINES) + 1
    for i, line in enumerate(out[:-1]):
        phone = next(e for e in line["entities"] if e["type"] == "PHONE_NUMBER")
        assert LINES[i]["text"][phone["start"]:phone["end"]] == f"1381234{i:04d}"
    assert out[-1] == {"error": "line is not JSON"}
    assert result.returncode == 1  # one line failed


def test_redact_writes_redacted_text(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('{"text": "手机13812345678"}\n')
    result = run(settings, "redact", str(path), "--operators",
                 '{"DEFAULT": {"type": "mask"}}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"] == "手机138****5678"
