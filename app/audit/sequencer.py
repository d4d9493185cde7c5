"""The sequencer: integrates committed audit entries into the Merkle tree, in batches, and signs
checkpoints. Every `pgw worker` runs one in a thread (and `pgw serve` in development, with its
in-process worker); `pgw audit sequence` runs one alone. They take turns on the sequencer's lock,
so any number may run: when one dies mid-batch its transaction rolls back and the next step of
another carries on from the same tree size."""

from __future__ import annotations

import logging
import threading

from app.audit import service as audit
from app.audit import tree
from app.runtime import Runtime

logger = logging.getLogger("pgw.audit.sequencer")


def step(runtime: Runtime, *, limit: int = tree.BATCH) -> tree.Integration | None:
    """One batch in a transaction of its own; None when another sequencer holds the lock."""
    factory = runtime.sequencer_session_factory or runtime.session_factory
    with factory() as session:
        result = audit.integrate(session, limit=limit)
        session.commit()
    if result is not None and result.checkpoint is not None:
        logger.info("audit checkpoint signed", extra={"size": result.checkpoint.size})
    return result


def run(runtime: Runtime, *, stop: threading.Event) -> None:
    """Integrate until `stop` is set: at once while a backlog lasts, else every poll interval."""
    poll = runtime.settings.audit_sequencer_poll_seconds
    while not stop.is_set():
        try:
            result = step(runtime)
        except Exception:  # the database went away, or the log is damaged: say so, retry
            logger.exception("audit sequencer step failed")
            stop.wait(min(30.0, poll * 50))
            continue
        if result is None or result.added < tree.BATCH:
            stop.wait(poll)
