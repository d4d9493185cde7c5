"""The periodic retention sweep."""

from __future__ import annotations

from app.jobs.queue import Claimed
from app.retention import sweep
from app.runtime import Runtime


def retention_sweep(runtime: Runtime, claimed: Claimed) -> None:
    # the run's audit entries name the job attempt, whose error says why a run stopped midway
    sweep.run(runtime.transaction, runtime.policy,
              run_id=f"job-{claimed.id}-{claimed.attempt}")
