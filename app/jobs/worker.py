"""Workers: claim a job, run its handler while a heartbeat keeps the lease, then finish it or
schedule a retry; beside them runs the audit log's sequencer. `pgw worker` runs one in the
foreground; `pgw serve` in development runs one in a thread unless PGW_WORKER_IN_SERVE is
false."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import timedelta

from app.audit import sequencer
from app.jobs import queue, schedule
from app.jobs.models import AttemptOutcome
from app.jobs.queue import Claimed, Retry
from app.ops import workers
from app.runtime import Runtime

logger = logging.getLogger("pgw.jobs")


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class _Heartbeat(threading.Thread):
    """Renews the lease every third of its length while the handler runs."""

    def __init__(self, runtime: Runtime, claimed: Claimed, lease: timedelta):
        super().__init__(name=f"pgw-lease-{claimed.id}", daemon=True)
        self.runtime, self.claimed, self.lease = runtime, claimed, lease
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.lease.total_seconds() / 3):
            try:
                if not queue.renew(self.runtime.session_factory, self.claimed, self.lease):
                    return
            except Exception:  # a failed renewal is retried on the next beat
                logger.warning("lease renewal failed", exc_info=True)


def execute(runtime: Runtime, claimed: Claimed, *, lease: timedelta, retry: Retry) -> str:
    """Run one claimed job; returns done, retry, failed or lost."""
    function = queue.REGISTRY.handlers.get(claimed.kind)
    factory = runtime.session_factory
    if function is None:
        return queue.fail(factory, claimed, f"no handler for job kind {claimed.kind!r}",
                          retry=retry)
    heartbeat = _Heartbeat(runtime, claimed, lease)
    heartbeat.start()
    try:
        function(runtime, claimed)
    except Exception as exc:  # the attempt failed: record it and retry with back-off
        logger.warning("job attempt failed", extra={"job_id": claimed.id, "kind": claimed.kind},
                       exc_info=True)
        return queue.fail(factory, claimed, f"{type(exc).__name__}: {exc}", retry=retry)
    finally:
        heartbeat.stopped.set()
        heartbeat.join()
    return AttemptOutcome.DONE if queue.complete(factory, claimed) else AttemptOutcome.LOST


def run_once(runtime: Runtime, *, worker: str, lease: timedelta | None = None,
             retry: Retry | None = None, kinds: tuple[str, ...] | None = None,
             exclude: tuple[str, ...] = ()) -> str | None:
    """Claim and run one due job (of `kinds`, of none of `exclude`); None if there was none."""
    settings = runtime.settings
    lease = lease or timedelta(seconds=settings.job_lease_seconds)
    claimed = queue.claim(runtime.session_factory, worker=worker, lease=lease, kinds=kinds,
                          exclude=exclude)
    if claimed is None:
        return None
    return execute(runtime, claimed, lease=lease,
                   retry=retry or Retry(base=timedelta(seconds=settings.job_retry_base_seconds)))


def run(runtime: Runtime, *, stop: threading.Event, worker: str | None = None,
        until_idle: bool = False) -> int:
    """Run jobs until `stop` is set (or, with `until_idle`, until none is due); returns how
    many ran. Periodic jobs from the policy's schedules are queued on the way. A running
    worker gives each lane (webhook deliveries) threads of its own, so that jobs of other
    kinds never wait behind them; with `until_idle` one thread runs everything in order."""
    worker = worker or worker_name()
    lanes = {} if until_idle else queue.REGISTRY.lane_kinds()
    # several threads per lane, so that one stalling receiver delays no other subscriber
    per_lane = runtime.settings.webhook_delivery_threads
    threads = [threading.Thread(target=_loop, args=(runtime,), name=f"pgw-worker-{lane}-{n}",
                                kwargs={"stop": stop, "worker": f"{worker}/{lane}-{n}",
                                        "kinds": kinds}, daemon=True)
               for lane, kinds in lanes.items() for n in range(per_lane)]
    if not until_idle:  # a standing worker tells gateways it is alive (app.ops.workers)
        threads.append(workers.Beating(runtime.session_factory, worker=worker, stale=timedelta(
            seconds=runtime.settings.worker_stale_seconds)))
        # and grows the audit log's Merkle tree while jobs run
        threads.append(threading.Thread(target=sequencer.run, args=(runtime,),
                                        kwargs={"stop": stop}, name="pgw-audit-sequencer",
                                        daemon=True))
    for thread in threads:
        thread.start()
    try:
        laned = tuple(kind for kinds in lanes.values() for kind in kinds)
        return _loop(runtime, stop=stop, worker=worker, until_idle=until_idle, exclude=laned,
                     periodic=True)
    finally:
        for thread in threads:
            if isinstance(thread, workers.Beating):
                thread.stopped.set()
            thread.join()


def _loop(runtime: Runtime, *, stop: threading.Event, worker: str, until_idle: bool = False,
          kinds: tuple[str, ...] | None = None, exclude: tuple[str, ...] = (),
          periodic: bool = False) -> int:
    poll = runtime.settings.worker_poll_seconds
    ran = 0
    logger.info("worker started", extra={"worker": worker})
    while not stop.is_set():
        try:
            if periodic:
                schedule.queue_due(runtime)
            outcome = run_once(runtime, worker=worker, kinds=kinds, exclude=exclude)
        except Exception:  # the database went away: wait and try again
            logger.exception("worker loop failed")
            outcome = None
            if until_idle:
                raise
        if outcome is None:
            if until_idle:
                break
            stop.wait(poll)
        else:
            ran += 1
    logger.info("worker stopped", extra={"worker": worker, "jobs": ran})
    return ran


def start_thread(runtime: Runtime) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(runtime,), kwargs={"stop": stop},
                              name="pgw-worker", daemon=True)
    thread.start()
    return thread, stop
