"""Two sequencers in two processes race; the one holding the turn is killed (SIGKILL) in the
middle of a batch. The other takes over once the database lets the dead one's lock go: the
tree ends with every entry once, in one order, with no gap and no fork."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit import log_check, sequencer, tree, verifier
from app.audit import service as audit
from app.audit.models import AuditEntry, AuditPending, AuditTreeNode
from app.config import Settings
from app.runtime import Runtime, open_runtime
from tests.audit.conftest import running_sequencers, write_entries
from tests.server import wait_for


def _stalls_mid_batch(settings: Settings, marker: str) -> None:
    """A sequencer process that stops for good after two leaves of its batch, holding its
    turn, until it is killed."""
    runtime = open_runtime(settings)
    real_append = verifier.CompactRange.append
    appended = 0

    def append(self: verifier.CompactRange, leaf: bytes) -> list[Any]:
        nonlocal appended
        appended += 1
        if appended == 3:
            Path(marker).write_text("mid-batch")
            time.sleep(600)
        return real_append(self, leaf)

    verifier.CompactRange.append = append  # type: ignore[method-assign]
    sequencer.step(runtime, limit=10)


def test_a_sequencer_killed_mid_batch_hands_over_without_gap_fork_or_duplicate(
        settings: Settings, runtime: Runtime, dialect: str, tmp_path: Path) -> None:
    if dialect != "postgresql":
        pytest.skip("on SQLite a stalled sequencer holds the one write lock: nothing can race")
    write_entries(runtime, 30)
    assert sequencer.step(runtime, limit=5) is not None  # a first batch: size 5
    marker = tmp_path / "stalled"
    dying = multiprocessing.get_context("spawn").Process(
        target=_stalls_mid_batch, args=(settings, str(marker)))
    dying.start()
    try:
        wait_for(marker.exists, timeout=120, what="the other sequencer stalling mid-batch")
        # it holds the turn: this one gets none, and waits for nothing
        assert sequencer.step(runtime, limit=10) is None
        with running_sequencers(runtime, 1, limit=7, pause=0.01) as errors:
            time.sleep(0.5)
            with runtime.session_factory() as session:
                assert tree.tree_size(session) == 5  # nothing moves while the turn is held
            os.kill(dying.pid or 0, signal.SIGKILL)
            dying.join(30)
            write_entries(runtime, 10)  # more entries while the survivor takes over

            def integrated() -> bool:
                with runtime.session_factory() as session:
                    return tree.tree_size(session) == 40

            wait_for(integrated, timeout=60, what="the survivor integrating every entry")
        assert errors == []
    finally:
        if dying.is_alive():
            dying.kill()
    with runtime.session_factory() as session:
        seqs = list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        leaves = list(session.scalars(select(AuditTreeNode.idx)
                                      .where(AuditTreeNode.level == 0)
                                      .order_by(AuditTreeNode.idx)))
        pending = session.scalar(select(func.count()).select_from(AuditPending))
        details = [e["details"]["n"] for e in (audit.entry_dict(x) for x in
                                                session.scalars(select(AuditEntry)))]
        result = log_check.verify_log(session, signer=runtime.audit_signer)
    assert seqs == list(range(1, 41))  # no gap, no duplicate
    assert leaves == list(range(40))
    assert pending == 0
    assert sorted(details) == sorted([*range(30), *range(10)])  # each entry exactly once
    assert result.ok, result.reason
