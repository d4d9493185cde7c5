"""`pgw audit verify` on the live log with what an auditor kept: a checkpoint (co-signed by a
witness) or an older export anchor the live log as they anchor an export. Before, without
`--file` they were ignored, and a rewritten log printed OK."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.audit import service as audit
from app.cli import main as pgw
from app.keys.signing import Signer
from app.runtime import Runtime
from tests.audit.conftest import tamper, write_entries
from tests.audit.test_tree import drain, export_to, rewrite_entry
from tests.audit.test_verifier_cli import WITNESS, cosigned

pytestmark = pytest.mark.usefixtures("cli_env")


def keep_checkpoint(runtime: Runtime, path: Path) -> Path:
    """Sign the tree now and keep its note, co-signed by the witness `w`."""
    drain(runtime)
    with runtime.session_factory() as session:
        checkpoint = audit.create_checkpoint(session)
        session.commit()
        assert checkpoint is not None
        assert checkpoint.note is not None
        path.write_text(cosigned(checkpoint.note))
    return path


@pytest.fixture
def witness_pem(tmp_path: Path) -> Path:
    path = tmp_path / "witness.pem"
    path.write_text(WITNESS.public_pem())
    return path


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = pgw(["audit", "verify", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_rewritten_log_fails_against_a_kept_checkpoint_and_an_older_export(
        runtime: Runtime, tmp_path: Path, witness_pem: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_entries(runtime, 25)
    kept = keep_checkpoint(runtime, tmp_path / "kept.note")
    older = export_to(tmp_path, "before.jsonl")
    anchors = ["--checkpoint", str(kept), "--witness", f"w={witness_pem}"]
    write_entries(runtime, 5)
    for honest in (anchors, ["--against", str(older)]):  # an honest extension
        code, out = verify(capsys, *honest)
        assert (code, out[:3]) == (0, "OK:"), out

    rewrite_entry(runtime, 21)  # checkpoints and tree deleted, rebuilt from the new entries
    keep_checkpoint(runtime, tmp_path / "new.note")
    code, out = verify(capsys)
    assert (code, out[:3]) == (0, "OK:")  # the log alone is fooled, as it must be
    code, out = verify(capsys, *anchors)
    assert code == 1
    assert out.startswith("TAMPERED: the log was rewritten: its first ")
    assert "differ from the checkpoint you kept" in out
    code, out = verify(capsys, "--against", str(older))
    assert code == 1
    assert out.startswith("TAMPERED: first bad sequence number 21: the log was rewritten: "
                          "against the older export")


def test_a_truncated_log_fails_against_a_kept_checkpoint(
        runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_entries(runtime, 12)
    kept = keep_checkpoint(runtime, tmp_path / "kept.note")
    tamper(runtime.engine, "DELETE FROM audit_entries WHERE seq > 6",
           "DELETE FROM audit_checkpoints", "DELETE FROM audit_tree_nodes")
    drain(runtime)
    code, out = verify(capsys, "--checkpoint", str(kept))
    assert code == 1
    assert "log truncated: the checkpoint you kept covers" in out


def test_a_kept_checkpoint_without_the_witness_cosignature_fails_live(
        runtime: Runtime, tmp_path: Path, witness_pem: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_entries(runtime, 3)
    kept = keep_checkpoint(runtime, tmp_path / "kept.note")
    other = Signer(Ed25519PrivateKey.generate())
    (tmp_path / "other.pem").write_text(other.public_pem())
    code, out = verify(capsys, "--checkpoint", str(kept), "--witness",
                       f"w={tmp_path / 'other.pem'}")
    assert (code, out) == (1, "FAILED: the checkpoint at size 3 is not co-signed by the "
                              "witness w\n")


def test_live_verify_checks_checkpoints_with_the_public_key_given(
        runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_entries(runtime, 3)
    keep_checkpoint(runtime, tmp_path / "kept.note")
    (tmp_path / "other.pem").write_text(Signer(Ed25519PrivateKey.generate()).public_pem())
    code, out = verify(capsys, "--public-key", str(tmp_path / "other.pem"))
    assert code == 1
    assert "signature does not verify" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--witness", "w=W"], "pgw: --witness needs --checkpoint"),
    (["--file", "x.jsonl", "--public-key", "k.pem", "--progress"],
     "pgw: --progress is for the live log"),
    (["--file", "x.jsonl"], "pgw: --file needs --public-key"),
])
def test_an_option_that_cannot_apply_is_refused(
        runtime: Runtime, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    code, out = verify(capsys, *args)
    assert code == 2
    assert out.startswith(message)
