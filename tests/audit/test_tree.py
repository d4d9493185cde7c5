"""The Merkle tree in the database: the sequencer, proofs over HTTP checked by the offline
verifier, racing and crashing sequencers, the witness, and the red-team rewrite of issue 18."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.audit import log_check, sequencer, tree, verifier, witness
from app.audit import service as audit
from app.audit.models import AuditCheckpoint, AuditTreeNode
from app.auth.guard import Caller
from app.cli import main as pgw
from app.runtime import Runtime
from tests.audit.conftest import running_sequencers, tamper, write_entries
from tests.server import LiveServer
from tests.tokens import make_token


def drain(runtime: Runtime, *, limit: int = tree.BATCH) -> int:
    while True:
        result = sequencer.step(runtime, limit=limit)
        assert result is not None
        if result.added < limit:
            return result.size


def checkpoint_note(live: LiveServer) -> str:
    response = live.client(make_token()).get("/v1/audit/checkpoint")
    assert response.status_code == 200, response.text
    return response.text


def test_the_sequencer_integrates_every_entry_and_signs_a_checkpoint(runtime: Runtime) -> None:
    write_entries(runtime, 9)
    assert drain(runtime, limit=4) == 9
    with runtime.session_factory() as session:
        assert tree.tree_size(session) == 9
        checkpoint = tree.latest_checkpoint(session)
        assert checkpoint is not None
        assert checkpoint.root is not None
        result = log_check.verify_log(session, signer=runtime.audit_signer)
        assert tree.root_at(session, checkpoint.size).hex() == checkpoint.root
        assert result.root == tree.root_at(session, 9).hex()
    assert result.ok, result.reason
    assert checkpoint.size == 4  # the first batch; the next is due after 256 entries or 60 s
    note = verifier.parse_note(checkpoint.note or "")
    assert runtime.audit_signer is not None
    assert verifier.any_signature_by(note, runtime.audit_signer.public_key)
    assert (note.size, note.root.hex()) == (checkpoint.size, checkpoint.root)


def test_inclusion_and_consistency_proofs_over_http_verify_offline(
        runtime: Runtime, live: LiveServer, tmp_path: Path) -> None:
    assert runtime.audit_signer is not None
    key = tmp_path / "log.pem"
    key.write_text(runtime.audit_signer.public_pem())
    write_entries(runtime, 5)
    kept = tmp_path / "kept.note"
    kept.write_text(checkpoint_note(live))
    write_entries(runtime, 8)
    client = live.client(make_token())

    proof = client.get("/v1/audit/entries/4/proof")
    assert proof.status_code == 200, proof.text
    document = proof.json()
    assert document["tree_size"] >= 5  # the latest signed tree that holds entry 4
    assert verifier.check_inclusion_proof(document, runtime.audit_signer.public_key)\
        .startswith("OK: entry 4 is in the log")
    (tmp_path / "inclusion.json").write_text(json.dumps(document))
    assert pgw(["audit", "check-proof", "inclusion", str(tmp_path / "inclusion.json"),
                "--public-key", str(key)]) == 0

    document["entry"]["actor"] = "someone else"
    with pytest.raises(ValueError, match="altered"):
        verifier.check_inclusion_proof(document, runtime.audit_signer.public_key)

    old = verifier.parse_note(kept.read_text())
    consistency = client.get("/v1/audit/consistency", params={"from_size": old.size})
    assert consistency.status_code == 200, consistency.text
    (tmp_path / "consistency.json").write_text(consistency.text)
    assert pgw(["audit", "check-proof", "consistency", str(tmp_path / "consistency.json"),
                "--public-key", str(key), "--checkpoint", str(kept)]) == 0

    missing = client.get("/v1/audit/entries/999/proof")
    assert missing.status_code == 404
    no_tree = client.get("/v1/audit/consistency", params={"from_size": 1, "to_size": 7})
    assert no_tree.status_code in (200, 404)  # 7 is signed only if a checkpoint fell there
    if no_tree.status_code == 404:
        assert no_tree.json()["field"] == "to_size"
    backwards = client.get("/v1/audit/consistency", params={"from_size": 3, "to_size": 2})
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "from_size"
    assert "a log only grows" in backwards.json()["detail"]
    bad = client.get("/v1/audit/consistency", params={"from_size": 0})
    assert bad.status_code == 422


def test_a_consistency_proof_from_beyond_the_log_names_from_size(
        runtime: Runtime, live: LiveServer) -> None:
    write_entries(runtime, 3)
    client = live.client(make_token())
    beyond = client.get("/v1/audit/consistency", params={"from_size": 999_999_999})
    assert beyond.status_code == 404
    problem = beyond.json()
    assert problem["field"] == "from_size"
    assert problem["detail"].startswith("from_size (999999999) is larger than the log, which "
                                        "has ")
    missing = client.get("/v1/audit/entries/999999999/proof")  # a path, not a query parameter
    assert missing.status_code == 404
    assert "field" not in missing.json()


def test_racing_sequencers_leave_no_gap_fork_or_duplicate(runtime: Runtime) -> None:
    with running_sequencers(runtime, 3, limit=3) as errors:
        write_entries(runtime, 40)
    assert errors == []
    assert drain(runtime) == 40
    with runtime.session_factory() as session:
        leaves = session.scalar(select(func.count()).select_from(AuditTreeNode)
                                .where(AuditTreeNode.level == 0))
        result = log_check.verify_log(session, signer=runtime.audit_signer)
    assert leaves == 40
    assert result.ok, result.reason


def test_a_sequencer_that_dies_mid_batch_leaves_nothing_behind(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    write_entries(runtime, 10)
    appended = 0
    real_append = verifier.CompactRange.append

    def dying_append(self: verifier.CompactRange, leaf: bytes) -> list[Any]:
        nonlocal appended
        appended += 1
        if appended == 7:
            raise SystemExit("killed")
        return real_append(self, leaf)

    monkeypatch.setattr(verifier.CompactRange, "append", dying_append)
    sequencer.step(runtime, limit=4)  # the first batch commits
    with pytest.raises(SystemExit):
        sequencer.step(runtime, limit=4)  # the second dies after three of its four leaves
    monkeypatch.setattr(verifier.CompactRange, "append", real_append)
    with runtime.session_factory() as session:
        assert tree.tree_size(session) == 4
    assert drain(runtime) == 10
    with runtime.session_factory() as session:
        assert log_check.verify_log(session, signer=runtime.audit_signer).ok


def rewrite_entry(runtime: Runtime, seq: int, *, through: int | None = None,
                  keep_tree: bool = False) -> None:
    """The attack of issue 18: as the database owner, edit an entry, recompute the chain after
    it (up to entry `through`), and delete every checkpoint and the tree (unless `keep_tree`),
    so the service's own checks pass again."""
    with runtime.session_factory() as session:
        entries = [audit.entry_dict(e) for e in audit.entries_after(session, after_seq=0,
                                                                     limit=10_000)]
    entries[seq - 1]["actor"] = "mallory"
    statements = [] if keep_tree else ["DELETE FROM audit_checkpoints",
                                       "DELETE FROM audit_tree_nodes"]
    rechained = entries[seq - 1:through]
    prev = entries[seq - 2]["hash"] if seq > 1 else verifier.GENESIS_HASH
    for entry in rechained:
        entry["prev_hash"] = prev
        entry["hash"] = prev = verifier.entry_hash(entry)
        statements.append(f"UPDATE audit_entries SET actor = '{entry['actor']}', "
                          f"prev_hash = '{entry['prev_hash']}', hash = 'x{entry['seq']}' "
                          f"WHERE seq = {entry['seq']}")
    statements += [f"UPDATE audit_entries SET hash = '{e['hash']}' WHERE seq = {e['seq']}"
                   for e in rechained]
    tamper(runtime.engine, *statements)


def export_to(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    assert pgw(["audit", "export", "--out", str(out)]) == 0
    return out


@pytest.mark.usefixtures("cli_env")
def test_the_rewrite_fools_the_service_but_not_the_witness_or_an_auditor(
        runtime: Runtime, live: LiveServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime.audit_signer is not None
    log_key = tmp_path / "log.pem"
    log_key.write_text(runtime.audit_signer.public_pem())
    watcher = witness.open_witness(
        name="witness.example", key_file=tmp_path / "witness" / "key.pem",
        log_key=runtime.audit_signer.public_key, state_dir=tmp_path / "witness", url=live.url,
        token=make_token())

    write_entries(runtime, 25)
    assert witness.run(watcher, once=True, interval=0) == 0
    seen = watcher.last_seen()
    assert seen is not None
    assert seen.size >= 25
    assert {name for name, _ in seen.signatures} >= {"witness.example"}
    kept = tmp_path / "kept.note"
    kept.write_text(checkpoint_note(live))
    old_export = export_to(tmp_path, "before.jsonl")

    write_entries(runtime, 5)
    assert witness.run(watcher, once=True, interval=0) == 0  # an honest extension
    honest = export_to(tmp_path, "honest.jsonl")
    capsys.readouterr()
    assert pgw(["audit", "verify", "--file", str(honest), "--public-key", str(log_key),
                "--against", str(old_export)]) == 0

    rewrite_entry(runtime, 21)
    with runtime.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 0
    drain(runtime)  # the sequencer rebuilds the tree from the rewritten entries
    with runtime.session_factory() as session:
        assert audit.create_checkpoint(session) is not None
        session.commit()
        assert log_check.verify_log(session, signer=runtime.audit_signer).ok  # fooled

    assert witness.run(watcher, once=True, interval=0) == 1
    refusals = list((tmp_path / "witness").glob("refused-*.txt"))
    assert refusals
    assert "rewritten" in refusals[0].read_text()

    new_export = export_to(tmp_path, "after.jsonl")
    capsys.readouterr()
    assert pgw(["audit", "verify", "--file", str(new_export), "--public-key", str(log_key),
                "--checkpoint", str(kept)]) == 1
    assert "rewritten" in capsys.readouterr().out
    assert pgw(["audit", "verify", "--file", str(new_export), "--public-key", str(log_key),
                "--checkpoint", str(kept), "--against", str(old_export)]) == 1
    assert "the first entry that differs is 21" in capsys.readouterr().out
    # an older export alone is enough: the rewritten log verifies on its own, signed again,
    # but does not begin with the entries the auditor kept
    assert pgw(["audit", "verify", "--file", str(new_export), "--public-key", str(log_key),
                "--against", str(old_export)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: first bad sequence number 21: the log was rewritten")
    # the older export must hold up itself
    lines = old_export.read_text().splitlines()
    last = json.loads(lines[-1])
    lines[-1] = json.dumps({**last, "actor": "someone else"})
    forged = tmp_path / "forged-old.jsonl"
    forged.write_text("\n".join(lines) + "\n")
    assert pgw(["audit", "verify", "--file", str(new_export), "--public-key", str(log_key),
                "--against", str(forged)]) == 1
    assert "the older export" in capsys.readouterr().out


@pytest.mark.usefixtures("cli_env")
def test_deleting_the_tail_is_caught_by_the_witness_and_by_a_kept_checkpoint(
        runtime: Runtime, live: LiveServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime.audit_signer is not None
    log_key = tmp_path / "log.pem"
    log_key.write_text(runtime.audit_signer.public_pem())
    watcher = witness.open_witness(
        name="w", key_file=tmp_path / "w" / "key.pem", log_key=runtime.audit_signer.public_key,
        state_dir=tmp_path / "w", url=live.url, token=make_token())
    write_entries(runtime, 12)
    assert witness.run(watcher, once=True, interval=0) == 0
    kept = tmp_path / "kept.note"
    kept.write_text(checkpoint_note(live))
    size = verifier.parse_note(kept.read_text()).size

    tamper(runtime.engine, f"DELETE FROM audit_entries WHERE seq > {size - 3}",
           "DELETE FROM audit_checkpoints", "DELETE FROM audit_tree_nodes")
    drain(runtime)
    with runtime.session_factory() as session:
        assert audit.create_checkpoint(session) is not None
        session.commit()
    assert witness.run(watcher, once=True, interval=0) == 1
    export = export_to(tmp_path, "after.jsonl")
    capsys.readouterr()
    assert pgw(["audit", "verify", "--file", str(export), "--public-key", str(log_key),
                "--checkpoint", str(kept)]) == 1
    assert "truncated" in capsys.readouterr().out


def test_the_tree_tables_refuse_update_and_delete(runtime: Runtime) -> None:
    write_entries(runtime, 3)
    drain(runtime)
    for statement in ("UPDATE audit_tree_nodes SET hash = 'x'", "DELETE FROM audit_tree_nodes"):
        with pytest.raises(Exception, match="append-only"), runtime.engine.begin() as conn:
            conn.execute(text(statement))


def test_the_single_file_verifier_runs_without_the_gateway(
        runtime: Runtime, tmp_path: Path, cli_env: Callable[[], dict[str, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    assert runtime.audit_signer is not None
    write_entries(runtime, 6)
    export = export_to(tmp_path, "log.jsonl")
    capsys.readouterr()
    assert pgw(["audit", "verifier-script"]) == 0
    script = tmp_path / "auditor" / "verify_audit.py"
    script.parent.mkdir()
    script.write_text(capsys.readouterr().out)
    key = tmp_path / "auditor" / "log.pem"
    key.write_text(runtime.audit_signer.public_pem())
    # run as an auditor would: the file alone, from a directory of its own
    result = subprocess.run([sys.executable, "-I", str(script), "export", str(export),
                             "--public-key", str(key)], cwd=script.parent, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 6 entries")


# --- from the outside review: what a damaged or hostile database must not achieve -------------

def test_an_unsigned_checkpoint_row_does_not_stop_the_sequencer(runtime: Runtime) -> None:
    write_entries(runtime, 3)
    drain(runtime)
    with runtime.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_checkpoints (size, head, created_at, key_id, "
                          "signature) VALUES (1000000000000, 'x', '2026-01-01', 'k', 'bm90')"))
    write_entries(runtime, 2)
    assert drain(runtime) == 5  # nobody signed that row: it is not evidence of a truncation


def test_a_planted_entry_stops_the_sequencer_and_verify_names_it(
        runtime: Runtime, live: LiveServer) -> None:
    write_entries(runtime, 3)
    drain(runtime)
    with runtime.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_entries (seq, ts, actor, roles, action, outcome, "
                          "details, prev_hash, hash) VALUES (4, '2026-01-01', 'mallory', '[]', "
                          "'record.read', 'allowed', '{}', 'x', 'planted')"))
    write_entries(runtime, 2)
    with pytest.raises(LookupError, match="entry 4 is not a valid link"):
        sequencer.step(runtime)
    client = live.client(make_token())
    assert client.get("/v1/audit").status_code == 200  # readers still see the log
    verified = client.get("/v1/audit/verify").json()
    assert (verified["ok"], verified["first_bad_seq"]) == (False, 4)


def test_what_the_chain_cannot_hash_fails_its_own_request(runtime: Runtime) -> None:
    with runtime.session_factory() as session, pytest.raises(UnicodeEncodeError):
        audit.record(session, caller=Caller(sub="svc"), action="record.read",
                     details={"field": "\ud800"})
    write_entries(runtime, 1)
    assert drain(runtime) == 1


def test_readers_cannot_make_the_log_sign_at_will(runtime: Runtime, live: LiveServer) -> None:
    write_entries(runtime, 2)
    client = live.client(make_token())
    assert client.get("/v1/audit/entries/2/proof").status_code == 200  # signs: first checkpoint
    # entry 3 (the audit of that read) is in the tree but in no checkpoint yet
    answers = [client.get("/v1/audit/entries/3/proof").status_code for _ in range(5)]
    assert answers == [409] * 5  # signing on a reader's behalf waits 5 s after the last one
    with runtime.session_factory() as session:
        assert (session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0) <= 2


def test_a_kept_checkpoint_must_carry_the_witness_cosignature(
        runtime: Runtime, live: LiveServer, tmp_path: Path, cli_env: Callable[[], dict[str, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime.audit_signer is not None
    log_key = tmp_path / "log.pem"
    log_key.write_text(runtime.audit_signer.public_pem())
    watcher = witness.open_witness(
        name="witness.example", key_file=tmp_path / "w" / "key.pem",
        log_key=runtime.audit_signer.public_key, state_dir=tmp_path / "w", url=live.url,
        token=make_token())
    write_entries(runtime, 4)
    assert witness.run(watcher, once=True, interval=0) == 0
    witness_pem = tmp_path / "witness.pem"
    witness_pem.write_text(watcher.signer.public_pem())
    cosigned, plain = tmp_path / "w" / "checkpoint", tmp_path / "plain.note"
    plain.write_text(checkpoint_note(live))
    note = verifier.parse_note(cosigned.read_text())
    assert verifier.cosigned_by(note, "witness.example", watcher.signer.public_key) is not None
    export = export_to(tmp_path, "log.jsonl")
    base = ["audit", "verify", "--file", str(export), "--public-key", str(log_key),
            "--witness", f"witness.example={witness_pem}"]
    capsys.readouterr()
    assert pgw([*base, "--checkpoint", str(cosigned)]) == 0
    assert pgw([*base, "--checkpoint", str(plain)]) == 1
    assert "not co-signed by the witness witness.example" in capsys.readouterr().out


def test_the_witness_refuses_a_larger_tree_the_gateway_cannot_prove(
        runtime: Runtime, live: LiveServer, tmp_path: Path) -> None:
    assert runtime.audit_signer is not None
    watcher = witness.open_witness(
        name="w", key_file=tmp_path / "w" / "key.pem", log_key=runtime.audit_signer.public_key,
        state_dir=tmp_path / "w", url=live.url, token=make_token())
    write_entries(runtime, 5)
    assert witness.run(watcher, once=True, interval=0) == 0
    write_entries(runtime, 6)
    drain(runtime)
    with runtime.session_factory() as session:
        assert audit.create_checkpoint(session) is not None
        session.commit()
    tamper(runtime.engine, "DELETE FROM audit_tree_nodes WHERE level = 0 AND idx = 5")
    assert witness.run(watcher, once=True, interval=0) == 1
    [refusal] = (tmp_path / "w").glob("refused-*.txt")
    assert "cannot prove" in refusal.read_text()


@pytest.mark.parametrize(("change", "reason"), [
    (lambda line: line.replace('"actor":', '"actor":"alice","actor":', 1), "twice"),
    (lambda line: line.replace('{"type":"entry",', '{"type":"entry","extra":1,', 1),
     "unknown fields"),
])
def test_the_offline_verifier_refuses_ambiguous_lines(
        runtime: Runtime, tmp_path: Path, cli_env: Callable[[], dict[str, str]],
        capsys: pytest.CaptureFixture[str], change: Callable[[str], str], reason: str) -> None:
    assert runtime.audit_signer is not None
    write_entries(runtime, 3)
    export = export_to(tmp_path, "log.jsonl")
    lines = export.read_text().splitlines(keepends=True)
    lines[-2] = change(lines[-2])
    export.write_text("".join(lines))
    key = tmp_path / "log.pem"
    key.write_text(runtime.audit_signer.public_pem())
    capsys.readouterr()
    assert pgw(["audit", "verify", "--file", str(export), "--public-key", str(key)]) == 1
    assert reason in capsys.readouterr().out


def test_a_header_that_lies_about_the_log_is_refused(
        runtime: Runtime, tmp_path: Path, cli_env: Callable[[], dict[str, str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime.audit_signer is not None
    write_entries(runtime, 3)
    export = export_to(tmp_path, "log.jsonl")
    header, *rest = export.read_text().splitlines(keepends=True)
    export.write_text(header.replace('"entries":', '"entries":99,"was":', 1) + "".join(rest))
    key = tmp_path / "log.pem"
    key.write_text(runtime.audit_signer.public_pem())
    capsys.readouterr()
    assert pgw(["audit", "verify", "--file", str(export), "--public-key", str(key)]) == 1
    assert "header does not describe" in capsys.readouterr().out


def test_the_witness_publishes_its_key_and_says_why_the_gateway_turned_it_away(
        runtime: Runtime, live: LiveServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Auditors need the witness's public key for `--witness NAME=PEM`: it is written beside
    its state. A token the gateway refuses is a clear log line with the gateway's reason, not a
    bare status, and exit code 2 (could not check, as against 1: refused a checkpoint)."""
    assert runtime.audit_signer is not None
    watcher = witness.open_witness(
        name="w", key_file=tmp_path / "w" / "key.pem", log_key=runtime.audit_signer.public_key,
        state_dir=tmp_path / "w", url=live.url, token="not-a-token")
    published = (tmp_path / "w" / witness.PUBLIC_KEY_FILE).read_text()
    assert published == watcher.signer.public_pem()
    assert "PRIVATE" not in published
    with caplog.at_level("WARNING", logger="pgw.audit.witness"):
        assert witness.run(watcher, once=True, interval=0) == 2
    [line] = [r.getMessage() for r in caplog.records if "could not reach" in r.getMessage()]
    assert "HTTP 401: " in line
    assert "not-a-token" not in line


@pytest.mark.parametrize("rechained", ["its own hash", "every hash after it"])
def test_verify_names_an_edited_entry_whose_hash_was_recomputed(
        runtime: Runtime, rechained: str) -> None:
    """Edit entry 6 and recompute its hash (and, the second time, the chain after it), tree and
    checkpoints left as they are: the chain alone breaks at entry 7 or at the next checkpoint,
    but verify names entry 6, whose leaf in the stored tree no longer matches."""
    write_entries(runtime, 12)
    drain(runtime)
    with runtime.session_factory() as session:
        assert audit.create_checkpoint(session) is not None
        session.commit()
    rewrite_entry(runtime, 6, through=6 if rechained == "its own hash" else None,
                  keep_tree=True)
    with runtime.session_factory() as session:
        result = log_check.verify_log(session, signer=runtime.audit_signer)
    assert not result.ok
    assert result.first_bad_seq == 6, result.reason
    assert result.reason is not None
    assert result.reason.startswith("entry 6 differs from the leaf the sequencer stored")
