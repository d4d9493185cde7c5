"""Periodic jobs from the policy's `schedules`: one run per interval, queued by whichever
worker looks first (a unique key per interval stops the others)."""

from __future__ import annotations

import time

from app.clock import utcnow
from app.jobs import queue
from app.runtime import Runtime

CHECK_EVERY_SECONDS = 5.0
_last_check: dict[int, float] = {}


def queue_due(runtime: Runtime, *, force: bool = False) -> list[str]:
    """Queue this interval's run of every enabled schedule that has none yet."""
    now_mono = time.monotonic()
    if not force and now_mono - _last_check.get(id(runtime), -CHECK_EVERY_SECONDS) \
            < CHECK_EVERY_SECONDS:
        return []
    _last_check[id(runtime)] = now_mono
    now = utcnow()
    queued = []
    with runtime.transaction() as session:
        for name, entry in runtime.policy.body.schedules.items():
            if not entry.enabled:
                continue
            slot = int(now.timestamp()) // entry.every.seconds
            if queue.enqueue(session, name, {"slot": slot}, dedupe_key=f"periodic:{name}:{slot}",
                             max_attempts=3) is not None:
                queued.append(name)
    return queued
