"""An export verifies offline with nothing but the file and the public key."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.audit import verifier
from app.cli import main as pgw
from app.keys.signing import Signer
from app.runtime import Runtime
from tests.audit.conftest import write_entries
from tests.server import PGW, LiveServer
from tests.tokens import make_token


def offline_verify(export: Path, public_key: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed `pgw` with no database settings at all: the auditor's machine."""
    env = {"PATH": __import__("os").environ["PATH"], "PGW_DATA_DIR": str(export.parent / "none")}
    return subprocess.run([PGW, "audit", "verify", "--file", str(export), "--public-key",
                           str(public_key)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def exported(runtime: Runtime, live: LiveServer, tmp_path: Path) -> Path:
    write_entries(runtime, 20)
    response = live.client(make_token()).get("/v1/audit/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jsonl")
    path = tmp_path / "audit.jsonl"
    path.write_text(response.text)
    return path


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rewrite(path: Path, items: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


def test_export_contents(exported: Path) -> None:
    items = lines(exported)
    assert items[0]["type"] == "header"
    assert items[0]["entries"] == 20
    entries = [i for i in items if i["type"] == "entry"]
    assert [e["seq"] for e in entries] == list(range(1, 21))
    checkpoints = [i for i in items if i["type"] == "checkpoint"]
    assert checkpoints[-1]["size"] == 20  # the export made its own checkpoint


def test_intact_export_verifies_offline(exported: Path, public_key_file: Path) -> None:
    result = offline_verify(exported, public_key_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 20 entries, 1 checkpoints")


def test_edited_line_is_found(exported: Path, public_key_file: Path) -> None:
    items = lines(exported)
    items[-6]["subject_id"] = "someone-else"  # entry 15
    rewrite(exported, items)
    result = offline_verify(exported, public_key_file)
    assert result.returncode == 1
    assert "first bad sequence number 15:" in result.stdout


def test_removed_line_is_found(exported: Path, public_key_file: Path) -> None:
    items = lines(exported)
    rewrite(exported, [i for i in items if i.get("seq") != 11])
    result = offline_verify(exported, public_key_file)
    assert result.returncode == 1
    assert "first bad sequence number 11:" in result.stdout


def test_removed_tail_is_found(exported: Path, public_key_file: Path) -> None:
    rewrite(exported, lines(exported)[:-3])
    result = offline_verify(exported, public_key_file)
    assert result.returncode == 1
    assert "first bad sequence number 18:" in result.stdout


def test_forged_checkpoint_is_found(exported: Path, public_key_file: Path) -> None:
    # The attacker rewrites entry 5, re-hashes the chain and signs a new checkpoint with a key
    # of their own, claiming the real key's id.
    items = lines(exported)
    entries = [i for i in items if i["type"] == "entry"]
    entries[4]["outcome"] = "denied"
    prev = str(entries[3]["hash"])
    for entry in entries[4:]:
        entry["prev_hash"] = prev
        entry["hash"] = prev = verifier.entry_hash(entry)
    forger = Signer(Ed25519PrivateKey.generate())
    body = {"size": 20, "head": prev, "created_at": "2026-01-01T00:00:00.000000Z",
            "key_id": str(items[1]["key_id"])}
    forged = {"type": "checkpoint", **body, "signature": forger.sign(verifier.checkpoint_message(
        body))}
    rewrite(exported, [items[0], forged, *entries])
    result = offline_verify(exported, public_key_file)
    assert result.returncode == 1
    assert "signature does not verify" in result.stdout


def test_export_without_checkpoints_is_refused(exported: Path, public_key_file: Path) -> None:
    rewrite(exported, [i for i in lines(exported) if i["type"] != "checkpoint"])
    result = offline_verify(exported, public_key_file)
    assert result.returncode == 1
    assert "not covered by a signed checkpoint" in result.stdout


def test_cli_export_round_trip(runtime: Runtime, cli_env: Callable[[], dict[str, str]],
                               public_key_file: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    write_entries(runtime, 7)
    out = tmp_path / "cli-export.jsonl"
    assert pgw(["audit", "export", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert "exported 7 entries" in capsys.readouterr().out
    assert offline_verify(out, public_key_file).returncode == 0
    assert pgw(["audit", "public-key"]) == 0
    assert capsys.readouterr().out == public_key_file.read_text()
