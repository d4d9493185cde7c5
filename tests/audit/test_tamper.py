"""Rows edited, deleted, reordered or truncated in the database are found by verify (API, CLI)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest
from sqlalchemy import text

from app.audit import log_check
from app.audit import service as audit
from app.cli import main as pgw
from app.runtime import Runtime
from tests.audit.conftest import sequenced, tamper, write_entries
from tests.server import PGW, LiveServer
from tests.tokens import make_token

HASH = "aa" * 32


def repair(runtime: Runtime, reason: str) -> None:
    """The README's "Repairing the stored tree", with the K verify's message gives."""
    found = re.search(r"K = (\d+)", reason)
    assert found is not None, reason
    bound = "(idx::numeric + 1) * power(2::numeric, level)" \
        if runtime.engine.dialect.name == "postgresql" else "(idx + 1) * power(2, level)"
    tamper(runtime.engine, "DELETE FROM audit_tree_nodes WHERE level NOT BETWEEN 0 AND 63 OR "
                           f"idx < 0 OR {bound} > {found.group(1)}")


def verify_api(live: LiveServer) -> dict[str, object]:
    response = live.client(make_token()).get("/v1/audit/verify")
    assert response.status_code == 200
    return dict(response.json())


def verify_cli(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = pgw(["audit", "verify"])
    return code, capsys.readouterr().out


@pytest.fixture
def logged(runtime: Runtime, cli_env: Callable[[], dict[str, str]]) -> Runtime:
    write_entries(runtime, 12)
    sequenced(runtime)
    return runtime


def test_untouched_log_verifies(logged: Runtime, live: LiveServer,
                                capsys: pytest.CaptureFixture[str]) -> None:
    body = verify_api(live)
    assert body["ok"] is True
    assert body["entries"] == 12
    assert body["first_bad_seq"] is None
    code, out = verify_cli(capsys)
    assert code == 0
    assert out.startswith("OK: 13 entries")  # the API's verify was audited too


@pytest.mark.parametrize(("statements", "bad_seq"), [
    (["UPDATE audit_entries SET subject_id = 'subj-2' WHERE seq = 5"], 5),
    (["UPDATE audit_entries SET details = '{\"fields\": []}' WHERE seq = 9"], 9),
    (["DELETE FROM audit_entries WHERE seq = 4"], 4),
    # reorder: entries 6 and 7 swap places in the sequence
    (["UPDATE audit_entries SET seq = 1000 WHERE seq = 6",
      "UPDATE audit_entries SET seq = 6 WHERE seq = 7",
      "UPDATE audit_entries SET seq = 7 WHERE seq = 1000"], 6),
    ([f"UPDATE audit_entries SET hash = '{HASH}' WHERE seq = 3"], 3),
], ids=["edit-subject", "edit-details", "delete", "reorder", "forged-hash"])
def test_tampering_is_located(logged: Runtime, live: LiveServer,
                              capsys: pytest.CaptureFixture[str], statements: list[str],
                              bad_seq: int) -> None:
    tamper(logged.engine, *statements)
    body = verify_api(live)
    assert body["ok"] is False
    assert body["first_bad_seq"] == bad_seq
    assert body["reason"]
    code, out = verify_cli(capsys)
    assert code == 1
    assert f"first bad sequence number {bad_seq}:" in out


def test_truncation_below_a_checkpoint_is_located(logged: Runtime, live: LiveServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert live.client(make_token()).post("/v1/audit/checkpoints").json()["size"] == 12
    tamper(logged.engine, "DELETE FROM audit_entries WHERE seq > 8")
    body = verify_api(live)
    assert (body["ok"], body["first_bad_seq"]) == (False, 9)
    assert "truncated" in str(body["reason"])
    code, out = verify_cli(capsys)
    assert code == 1
    assert "first bad sequence number 9:" in out


def test_installed_cli_reports_tampering(logged: Runtime,
                                         cli_env: Callable[[], dict[str, str]]) -> None:
    tamper(logged.engine, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2")
    result = subprocess.run([PGW, "audit", "verify"], env=cli_env(), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "first bad sequence number 2:" in result.stdout


def test_database_refuses_update_and_delete(logged: Runtime) -> None:
    assert logged.audit_signer is not None
    with logged.session_factory() as session:
        assert audit.create_checkpoint(session) is not None
        session.commit()
    for statement in ("UPDATE audit_entries SET actor = 'x' WHERE seq = 1",
                      "DELETE FROM audit_entries WHERE seq = 1",
                      "UPDATE audit_checkpoints SET head = 'x'",
                      "DELETE FROM audit_checkpoints"):
        with pytest.raises(Exception, match="append-only"), logged.engine.begin() as conn:
            conn.execute(text(statement))
    with logged.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entries")).scalar() == 12
        assert conn.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar() == 1


@pytest.mark.parametrize("statement", ["TRUNCATE audit_entries", "TRUNCATE audit_checkpoints"])
def test_postgres_refuses_truncate(logged: Runtime, dialect: str, statement: str) -> None:
    if dialect != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    with pytest.raises(Exception, match="append-only"), logged.engine.begin() as conn:
        conn.execute(text(statement))



@pytest.mark.parametrize(("statements", "node", "seq", "refused"), [
    (["DELETE FROM audit_tree_nodes WHERE level = 0 AND idx = 4"], (0, 4), 6, True),
    ([f"UPDATE audit_tree_nodes SET hash = '{HASH}' WHERE level = 0 AND idx = 8"], (0, 8), 10,
     False),
    (["UPDATE audit_tree_nodes SET hash = 'x' WHERE level = 1 AND idx = 1"], (1, 1), 1, True),
    ([f"UPDATE audit_tree_nodes SET hash = '{HASH}' WHERE level = 2 AND idx = 0"], (2, 0), 5,
     False),
], ids=["leaf-gone", "leaf-forged", "node-garbled", "node-forged"])
def test_a_damaged_stored_tree_is_named_by_verify_and_its_proofs_refused(
        logged: Runtime, live: LiveServer, statements: list[str], node: tuple[int, int],
        seq: int, refused: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """The entries match the signed checkpoints, but a node proofs are built from does not:
    verify names the node, and a proof through a node gone or garbled is a problem that says
    so, not a bare 500 (a well-formed wrong hash is served, and the proof fails offline)."""
    tamper(logged.engine, *statements)
    body = verify_api(live)
    assert body["ok"] is False
    assert f"node at level {node[0]}, index {node[1]}" in str(body["reason"])
    code, out = verify_cli(capsys)
    assert code == 1
    assert f"node at level {node[0]}, index {node[1]}" in out
    response = live.client(make_token()).get(f"/v1/audit/entries/{seq}/proof",
                                              params={"tree_size": 12})
    if refused:
        assert response.status_code == 500
        assert response.json()["type"] == "urn:pgw:problem:audit-log-damaged"
        assert "tampered" in response.json()["detail"]
    else:
        assert response.status_code == 200


@pytest.mark.parametrize(("node", "size"), [
    ((0, 1000), 14), ((25, 0), 14), ((0, -1), 14), ((-1, 3), 14), ((64, 0), 14),
    ((1, 6), 12),  # where the sequencer writes next: it stops there
], ids=["leaf-ahead", "high-level", "negative-index", "negative-level", "level-beyond",
        "next-node"])
def test_a_node_planted_outside_the_tree_is_named(
        logged: Runtime, live: LiveServer, node: tuple[int, int], size: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A row added to the stored tree (as the owner) where the sequencer never writes one: the
    tree's size still comes from the entries, the log grows until the tree reaches the row,
    and verify names it either way."""
    tamper(logged.engine, "INSERT INTO audit_tree_nodes (level, idx, hash) "
                          f"VALUES ({node[0]}, {node[1]}, '{HASH}')")
    write_entries(logged, 2, actor="after")
    assert sequenced(logged) == size
    body = verify_api(live)
    assert body["ok"] is False
    assert f"node at level {node[0]}, index {node[1]}, outside the tree" in str(body["reason"])
    code, out = verify_cli(capsys)
    assert code == 1
    assert f"level {node[0]}, index {node[1]}" in out
    client = live.client(make_token())
    signed = client.post("/v1/audit/checkpoints")
    if size == 14:
        assert signed.status_code == 201, signed.text
        assert client.get("/v1/audit/entries/14/proof").status_code == 200
    else:  # the sequencer cannot extend the tree past the planted node, and says why
        assert signed.status_code == 500, signed.text
        assert signed.json()["type"] == "urn:pgw:problem:audit-log-damaged"
        assert "planted" in signed.json()["detail"]
    repair(logged, str(verify_api(live)["reason"]))  # one round, as the message says
    assert sequenced(logged) >= 14  # the next-node case too: the sequencer goes on
    assert verify_api(live)["ok"] is True


@pytest.mark.parametrize(("statements", "named"), [
    (["DELETE FROM audit_tree_nodes WHERE level = 0 AND idx = 11"],
     "node at level 0, index 11 (over entries 12-12) is missing"),
    # leaves gone under their parents, and a node planted where no level reaches: one repair
    # (no round a node), and no overflow on the planted node's level
    (["DELETE FROM audit_tree_nodes WHERE level = 0 AND idx IN (10, 11)",
      f"INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (2000, 0, '{HASH}')"],
     "node at level 0, index 10 (over entries 11-11) is missing"),
], ids=["last-leaf", "leaves-and-planted"])
def test_missing_leaves_are_named_and_one_repair_rebuilds_them(
        logged: Runtime, live: LiveServer, statements: list[str], named: str) -> None:
    """The stored tree is judged as far as the latest signed checkpoint (12 entries), not only
    as far as its own last leaf: the last leaf gone is named (not its parent, as planted), and
    the repair the README gives (the nodes from the first damaged leaf on deleted) lets the
    sequencer rebuild them."""
    tamper(logged.engine, *statements)
    body = verify_api(live)
    assert body["ok"] is False
    assert named in str(body["reason"])
    repair(logged, str(body["reason"]))
    assert sequenced(logged) >= 12
    assert verify_api(live)["ok"] is True


def test_the_end_of_the_tree_missing_is_named_before_the_sequencer_rebuilds_it(
        logged: Runtime) -> None:
    tamper(logged.engine, "DELETE FROM audit_tree_nodes WHERE (idx + 1) * power(2, level) > 8")
    with logged.session_factory() as session:  # no catch_up: the sequencer has not run yet
        result = log_check.verify_log(session, signer=logged.audit_signer)
    assert result.ok is False
    assert "node at level 0, index 8 (over entries 9-9) is missing" in str(result.reason)
    assert sequenced(logged) >= 12  # the sequencer adds them again from the entries
    with logged.session_factory() as session:
        assert log_check.verify_log(session, signer=logged.audit_signer).ok is True


def test_verify_while_the_sequencer_extends_the_log_says_ok(logged: Runtime) -> None:
    """Verify reads one snapshot: leaves the sequencer commits while it runs are not taken for
    nodes planted outside the tree it read at the start."""
    def extend(done: int, total: int) -> None:
        if done == 0:
            write_entries(logged, 5, actor="meanwhile")
            with logged.session_factory() as other:
                audit.integrate(other, wait=True, force_checkpoint=True)
                other.commit()

    with logged.read_session_factory() as session:
        result = log_check.verify_log(session, signer=logged.audit_signer, progress=extend)
    assert result.ok is True, result.reason
    assert result.entries == 12
    assert sequenced(logged) == 17
