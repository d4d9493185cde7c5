"""The README's walkthrough runs as pasted: every shell block marked `<!-- walkthrough -->` is run,
in order, with `bash -e` against a live `pgw serve`, as one shell session would run them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server import PGW, free_port, wait_until_up

REPO = Path(__file__).resolve().parent.parent
MARK = "<!-- walkthrough -->"
_BLOCK = re.compile(re.escape(MARK) + r"\n```(?:sh|bash)\n(.*?)\n```", re.DOTALL)
_ASSIGNED = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.MULTILINE)

Check = Callable[[str, Path], None]


def walkthrough_blocks(readme: str) -> list[str]:
    blocks = _BLOCK.findall(readme)
    assert len(blocks) == readme.count(MARK), "a walkthrough mark not followed by a sh block"
    return blocks


def marked_blocks(readme: str, mark: str) -> list[str]:
    """The sh blocks right after each `mark` line, in order; fails on a mark without one."""
    blocks = re.findall(re.escape(mark) + r"\n```(?:sh|bash)\n(.*?)\n```", readme, re.DOTALL)
    assert len(blocks) == readme.count(mark + "\n"), f"a mark {mark} not followed by a sh block"
    return blocks


def _audit(out: str, cwd: Path) -> None:
    assert json.loads(out.splitlines()[0])["ok"] is True
    assert re.search(r"^OK: \d+ entries", out, re.MULTILINE), out


def _record_read(out: str, cwd: Path) -> None:
    record = json.loads(out.splitlines()[0])
    assert record["data"]["phone"] == "138****5678"
    assert record["data"]["notes"] == "prefers calls on 139****5678"


def _dsr_export(out: str, cwd: Path) -> None:
    html = (cwd / "export.html").read_text()
    assert html.lower().startswith("<!doctype html")
    assert "张伟" in html


def _release(out: str, cwd: Path) -> None:
    header = re.search(r"^pgw-risk-report: (.*)$", out, re.I | re.M)
    assert header is not None, out
    report = json.loads(header.group(1))
    assert report["meets_target"] is True
    assert report["k"] >= 5
    rows = (cwd / "release.csv").read_text().splitlines()
    assert rows[0].split(",")[0] == "email"
    assert "name" not in rows[0]
    assert report["released"] > 10
    assert len(rows) == 1 + report["released"]


def _redact(out: str, cwd: Path) -> None:
    assert json.loads(out)["text"] == "客户张*，手机138****5678"


def _elevated(out: str, cwd: Path) -> None:
    approved, read, patched, found = out.splitlines()
    assert json.loads(approved)["status"] == "approved"
    assert json.loads(read)["data"] == {"phone": "+8613812345678"}
    assert patched == "200"
    assert json.loads(found) == {"subject_ids": ["cust-1"]}


def _client(out: str, cwd: Path) -> None:
    assert out.splitlines() == ["138****5678 masked", "urn:pgw:problem:not-found 404", "张伟",
                                "2"]


# What each block must show, found by a command the block runs.
CHECKS: dict[str, Check] = {
    "/v1/audit/verify": _audit,
    "?purpose=customer_support\"": _record_read,
    "/export?format=html": _dsr_export,
    "/v1/datasets/anonymize": _release,
    "/v1/pii/redact": _redact,
    "/approve": _elevated,
    "from pgw_client import": _client,
}


@pytest.fixture
def gateway(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    """`pgw serve` (development, worker in the process) on a free port; the shell's env."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGW_")}
    env.update(PGW_ENV="dev", PGW_DATA_DIR=str(tmp_path / "data"),
               PGW_POLICY_DIR=str(REPO / "policies"), PGW_DATABASE_URL=database_url,
               PGW_URL=f"http://127.0.0.1:{port}")
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([PGW, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(server, f"{env['PGW_URL']}/readyz")
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_the_walkthrough_runs_as_pasted(gateway: dict[str, str], tmp_path: Path) -> None:
    blocks = walkthrough_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 5
    # The shell the blocks are pasted into: the repository's root, as the README says.
    shell_dir = tmp_path / "repo"
    shell_dir.mkdir()
    (shell_dir / ".venv").symlink_to(Path(sys.prefix))
    (shell_dir / "examples").symlink_to(REPO / "examples")
    assert (shell_dir / ".venv" / "bin" / "pgw").exists(), PGW
    state = tmp_path / "shell-variables"
    state.write_text("")
    checked = set()
    for number, block in enumerate(blocks, 1):
        assert "<" not in re.sub(r"<<|<!--|-->", "", block), f"a placeholder in block {number}"
        keep = "".join(f'printf "%s=%q\\n" {name} "${name}" >> {state}\n'
                       for name in dict.fromkeys(_ASSIGNED.findall(block)))
        script = f"source {state}\n{block}\n{keep}"
        result = subprocess.run(["bash", "-e", "-c", script], cwd=shell_dir, env=gateway,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, (number, block, result.stdout, result.stderr)
        for marker, check in CHECKS.items():
            if marker in block:
                check(result.stdout, shell_dir)
                checked.add(marker)
    assert checked == set(CHECKS), f"steps missing from the walkthrough: {set(CHECKS) - checked}"
