"""The periodic retention sweep."""

from __future__ import annotations

from app.jobs import queue
from app.jobs.queue import Claimed
from app.retention import sweep
from app.runtime import Runtime


@queue.handler("retention_sweep")
def retention_sweep(runtime: Runtime, claimed: Claimed) -> None:
    sweep.run(runtime.transaction, runtime.policy)
