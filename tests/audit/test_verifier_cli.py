"""The offline verifier's command line (`verify_audit.py`, `pgw audit check-proof`), with no
database: every option it accepts is applied or refused, never ignored, and a file that is not
a proof says what it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.audit import export, tree, verifier
from app.cli import main as pgw
from app.keys.signing import Signer
from tests.audit.test_verifier_chain import make_chain

ORIGIN = "privacy-gateway/test"
LOG = Signer(Ed25519PrivateKey.generate())
WITNESS = Signer(Ed25519PrivateKey.generate())


def nodes_of(entries: list[dict[str, Any]]) -> dict[tuple[int, int], bytes]:
    compact, nodes = verifier.CompactRange(), {}
    for entry in entries:
        nodes.update({(lv, i): h for lv, i, h in compact.append(verifier.entry_leaf_hash(entry))})
    return nodes


def root_of(entries: list[dict[str, Any]]) -> bytes:
    compact = verifier.CompactRange()
    for entry in entries:
        compact.append(verifier.entry_leaf_hash(entry))
    return compact.root()


def make_checkpoint(entries: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """A checkpoint as the sequencer signs it (`tree._sign`): JSON signature and signed note."""
    root = root_of(entries[:size])
    note = verifier.note_body(ORIGIN, size, root)
    note += "\n" + verifier.signature_line(ORIGIN, LOG.public_key,
                                           LOG.private_key.sign(note.encode()))
    body = {"size": size, "head": entries[size - 1]["hash"],
            "created_at": "2026-01-01T01:00:00.000000Z", "key_id": LOG.key_id}
    return {**body, "signature": LOG.sign(verifier.checkpoint_message(body)),
            "root": root.hex(), "note": note}


def cosigned(note: str, *, name: str = "w", signer: Signer = WITNESS) -> str:
    """`note` with the witness's co-signature added, as `pgw audit witness` stores it."""
    parsed = verifier.parse_note(note)
    signature = signer.private_key.sign(verifier.cosignature_message(parsed.body, 1_700_000_000))
    return note + verifier.cosignature_line(name, signer.public_key, 1_700_000_000, signature)


def write_export(path: Path, entries: list[dict[str, Any]], sizes: list[int], *,
                 signed: list[dict[str, Any]] | None = None) -> Path:
    """An export of `entries` with checkpoints at `sizes`, signed over `signed` (by default the
    same entries)."""
    lines = [export.header_line(size=len(entries), head=entries[-1]["hash"], key_id=LOG.key_id)]
    lines += [export.checkpoint_line(make_checkpoint(signed or entries, size)) for size in sizes]
    lines += [export.entry_line(entry) for entry in entries]
    path.write_text("".join(lines))
    return path


def inclusion_document(entries: list[dict[str, Any]], seq: int, size: int) -> dict[str, Any]:
    nodes = nodes_of(entries[:size])
    proof = tree._path(seq - 1, 0, size, lambda lv, i: nodes[(lv, i)])
    return {"entry": entries[seq - 1], "tree_size": size, "proof": [p.hex() for p in proof],
            "checkpoint": make_checkpoint(entries, size)["note"]}


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "log.pem").write_text(LOG.public_pem())
    (tmp_path / "witness.pem").write_text(WITNESS.public_pem())
    return {"log": tmp_path / "log.pem", "witness": tmp_path / "witness.pem"}


def run_verifier(*args: str) -> int:
    try:
        return verifier.main(list(args))
    except SystemExit as exc:  # argparse's usage error
        return int(exc.code or 0)


def test_inclusion_against_a_kept_witnessed_checkpoint_of_the_same_tree(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    entries = make_chain(20)
    kept = tmp_path / "kept.note"
    kept.write_text(cosigned(make_checkpoint(entries, 20)["note"]))
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(inclusion_document(entries, 7, 20)))
    assert run_verifier("inclusion", str(proof), "--public-key", str(keys["log"]),
                        "--checkpoint", str(kept), "--witness", f"w={keys['witness']}") == 0
    assert capsys.readouterr().out.startswith("OK: entry 7 is in the log of 20 entries")


def test_inclusion_in_a_rewritten_tree_of_the_kept_size_fails(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    kept = tmp_path / "kept.note"
    kept.write_text(cosigned(make_checkpoint(make_chain(20), 20)["note"]))
    rewritten = make_chain(20, actor="mallory")  # signed again by the log's own key
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(inclusion_document(rewritten, 7, 20)))
    assert run_verifier("inclusion", str(proof), "--public-key", str(keys["log"]),
                        "--checkpoint", str(kept), "--witness", f"w={keys['witness']}") == 1
    assert "two different trees of 20 entries: the log was rewritten" in capsys.readouterr().out


def test_inclusion_in_another_size_than_the_kept_one_asks_for_a_consistency_proof(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The red-team case: a proof in a tree of 206 entries passed with a kept checkpoint and a
    witness that had vouched for neither."""
    entries = make_chain(30)
    kept = tmp_path / "kept.note"
    kept.write_text(cosigned(make_checkpoint(entries, 20)["note"]))
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(inclusion_document(entries, 7, 30)))
    args = ["inclusion", str(proof), "--public-key", str(keys["log"]), "--checkpoint",
            str(kept), "--witness", f"w={keys['witness']}"]
    assert run_verifier(*args) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: the proof is against the tree of 30 entries, the checkpoint "
                          "you kept is of 20: an inclusion proof alone cannot show")
    assert "tree_size=20" in out
    assert "from_size=20&to_size=30" in out
    assert pgw(["audit", "check-proof", *args]) == 1


def test_inclusion_needs_the_witness_cosignature_on_the_kept_checkpoint(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    entries = make_chain(20)
    kept = tmp_path / "kept.note"
    kept.write_text(make_checkpoint(entries, 20)["note"])  # the log's signature only
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(inclusion_document(entries, 7, 20)))
    assert run_verifier("inclusion", str(proof), "--public-key", str(keys["log"]),
                        "--checkpoint", str(kept), "--witness", f"w={keys['witness']}") == 1
    assert "not co-signed by the witness w" in capsys.readouterr().out


@pytest.mark.parametrize(("what", "extra", "message"), [
    ("export", ["--witness", "w=W"], "--witness needs --checkpoint"),
    ("inclusion", ["--witness", "w=W"], "--witness needs --checkpoint"),
    ("inclusion", ["--against", "old.jsonl"], "--against compares two exports"),
    ("inclusion", ["--checkpoint", "a.note", "--checkpoint", "b.note"], "at most one"),
    ("consistency", ["--checkpoint", "a.note", "--against", "old.jsonl"],
     "--against compares two exports"),
    ("consistency", [], "exactly one --checkpoint"),
])
def test_an_option_that_cannot_apply_is_refused(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str], what: str,
        extra: list[str], message: str) -> None:
    """Before, `export --witness` with no --checkpoint said OK, and `inclusion --against` or a
    second --checkpoint were ignored."""
    entries = make_chain(4)
    document = write_export(tmp_path / "log.jsonl", entries, [4]) if what == "export" \
        else tmp_path / "proof.json"
    if what != "export":
        document.write_text(json.dumps(inclusion_document(entries, 2, 4)))
    args = [what, str(document), "--public-key", str(keys["log"]), *extra]
    assert run_verifier(*args) == 2
    assert message in capsys.readouterr().err
    assert pgw(["audit", "check-proof", *args]) == 2
    assert message in capsys.readouterr().err


def test_export_with_a_witnessed_kept_checkpoint_still_verifies(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    entries = make_chain(12)
    log = write_export(tmp_path / "log.jsonl", entries, [8, 12])
    kept = tmp_path / "kept.note"
    kept.write_text(cosigned(make_checkpoint(entries, 8)["note"]))
    assert run_verifier("export", str(log), "--public-key", str(keys["log"]), "--checkpoint",
                        str(kept), "--witness", f"w={keys['witness']}") == 0
    assert capsys.readouterr().out.startswith("OK: 12 entries, 2 checkpoints")


@pytest.mark.parametrize("what", ["inclusion", "consistency"])
def test_a_problem_document_says_the_gateway_refused(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str],
        what: str) -> None:
    """`curl … /proof > proof.json` when the gateway answered 409; before: `FAILED: 'checkpoint'`"""
    kept = tmp_path / "kept.note"
    kept.write_text(make_checkpoint(make_chain(4), 4)["note"])
    problem = tmp_path / "proof.json"
    problem.write_text(json.dumps({
        "type": "https://privacy-gateway.example/problems/conflict", "title": "Conflict",
        "status": 409, "detail": "entry 57 is not in a signed checkpoint yet; it will be "
                                 "within seconds"}))
    extra = ["--checkpoint", str(kept)] if what == "consistency" else []
    assert run_verifier(what, str(problem), "--public-key", str(keys["log"]), *extra) == 1
    assert capsys.readouterr().out == (
        "FAILED: the gateway refused: this file holds its answer (HTTP 409: Conflict: entry 57 "
        "is not in a signed checkpoint yet; it will be within seconds), not a proof\n")


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("checkpoint"), "the inclusion proof has no checkpoint (it should have "
                                    "entry, tree_size, proof, checkpoint)"),
    (lambda d: d.pop("tree_size") and d.pop("proof"), "has no tree_size, proof"),
    (lambda d: d.update(proof="abc"), "the inclusion proof's proof is not a list of hex"),
    (lambda d: d.update(tree_size="7"), "the inclusion proof's tree_size is not an integer"),
    (lambda d: d["entry"].pop("actor"), "the inclusion proof's entry has no actor"),
])
def test_a_malformed_inclusion_proof_names_what_is_wrong(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str],
        change: Any, message: str) -> None:
    document = inclusion_document(make_chain(4), 2, 4)
    change(document)
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(document))
    assert run_verifier("inclusion", str(proof), "--public-key", str(keys["log"])) == 1
    assert message in capsys.readouterr().out


def test_a_proof_that_is_not_json_says_so(tmp_path: Path, keys: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    proof = tmp_path / "proof.json"
    proof.write_text("<html>502 Bad Gateway</html>")
    assert run_verifier("inclusion", str(proof), "--public-key", str(keys["log"])) == 1
    assert capsys.readouterr().out == "FAILED: the inclusion proof is not JSON\n"


def rechained(entries: list[dict[str, Any]], seq: int) -> list[dict[str, Any]]:
    """`entries` with entry `seq` edited and the hash chain recomputed after it."""
    changed = [dict(entry) for entry in entries]
    changed[seq - 1]["actor"] = "mallory"
    prev = changed[seq - 2]["hash"] if seq > 1 else verifier.GENESIS_HASH
    for entry in changed[seq - 1:]:
        entry["prev_hash"] = prev
        entry["hash"] = prev = verifier.entry_hash(entry)
    return changed


def test_an_export_names_the_range_an_entry_rewritten_with_its_chain_lies_in(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Entry 6 edited and the chain recomputed, checkpoints at 4, 8 and 12 kept: an export has
    no tree, so the checkpoint at 8 is where it shows. Before, `first bad sequence number 8`."""
    signed = make_chain(12)
    older = write_export(tmp_path / "older.jsonl", signed[:7], [4, 7])
    log = write_export(tmp_path / "log.jsonl", rechained(signed, 6), [4, 8, 12], signed=signed)
    assert run_verifier("export", str(log), "--public-key", str(keys["log"])) == 1
    assert capsys.readouterr().out == (
        "TAMPERED: entry 8 does not match the signed checkpoint at that size: the first entry "
        "that differs from what was signed is one of entries 5 to 8 (the checkpoint at size 4 "
        "still holds), changed with the hash chain recomputed after it; the checkpoints cannot "
        "say which. --against an older export names it, and so does `pgw audit verify` on the "
        "live log while its stored Merkle tree is intact\n")
    assert run_verifier("export", str(log), "--public-key", str(keys["log"]), "--against",
                        str(older)) == 1
    assert capsys.readouterr().out.startswith("TAMPERED: first bad sequence number 6: ")


def test_a_checkpoint_right_after_the_last_one_that_holds_names_its_entry(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    signed = make_chain(8)
    log = write_export(tmp_path / "log.jsonl", rechained(signed, 8), [7, 8], signed=signed)
    assert run_verifier("export", str(log), "--public-key", str(keys["log"])) == 1
    assert capsys.readouterr().out == ("TAMPERED: first bad sequence number 8: entry 8 does not "
                                       "match the signed checkpoint at that size\n")
