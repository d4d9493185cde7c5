"""Progress on long commands: on stderr when asked for (or on a terminal), never on stdout."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.cli import main as pgw
from app.config import Settings
from tests.gateway import Clients, write
from tests.server import PGW
from tests.test_cli import cli_env

BAR = re.compile(r"[\r\n]\[[#.]{30}\] (\d+)/(\d+)")


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def crm(clients: Clients) -> httpx.Client:
    return clients(sub="svc-crm")


def _last_bar(err: str) -> tuple[int, int]:
    found = BAR.findall(err)
    assert found, err
    done, total = found[-1]
    return int(done), int(total)


def test_audit_verify_and_export_show_progress_only_when_asked(
        env: None, crm: httpx.Client, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(3):
        write(crm, subject_id=f"cust-{n}")
    capsys.readouterr()
    assert pgw(["audit", "verify"]) == 0
    quiet = capsys.readouterr()
    assert quiet.out.startswith("OK: ")
    assert "[" not in quiet.err  # stderr is not a terminal here: no bar unless asked

    assert pgw(["audit", "verify", "--progress"]) == 0
    shown = capsys.readouterr()
    entries = int(shown.out.split()[1])
    assert entries >= 3
    assert shown.out == quiet.out  # stdout is the same with or without the bar
    assert _last_bar(shown.err) == (entries, entries)
    assert shown.err.endswith("\n")

    out = tmp_path / "log.jsonl"
    assert pgw(["audit", "export", "--out", str(out), "--progress"]) == 0
    exported = capsys.readouterr()
    size = int(exported.out.split()[1])
    assert exported.out == f"exported {size} entries to {out}\n"
    assert _last_bar(exported.err) == (size, size)
    assert sum(1 for line in out.read_text().splitlines() if '"seq"' in line) == size


def test_retention_run_counts_batches(env: None, crm: httpx.Client,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(2):
        write(crm, subject_id=f"cust-r{n}")
    later = (datetime.now(UTC) + timedelta(days=1100)).isoformat()
    capsys.readouterr()
    assert pgw(["retention", "run", "--at", later, "--progress"]) == 0
    shown = capsys.readouterr()
    assert shown.out == "customer_profile  delete 2\n"
    assert "\rretention: batch 1 (records), 2 handled\n" in shown.err


def test_pii_scan_progress_goes_to_stderr(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": f"手机1381234{i:04d}"}) + "\n"
                            for i in range(70)))
    result = subprocess.run([PGW, "pii", "scan", str(path), "--progress"],
                            env={**os.environ, "PGW_DATA_DIR": str(settings.data_dir)},
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert [len(json.loads(line)["entities"]) >= 1 for line in result.stdout.splitlines()] == \
        [True] * 70
    # text mode reads the bar's carriage returns as newlines
    assert [tuple(map(int, m)) for m in BAR.findall(result.stderr)] == [(0, 70), (64, 70),
                                                                        (70, 70)]
