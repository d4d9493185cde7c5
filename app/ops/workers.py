"""Worker liveness. Every running worker process rewrites a row of its own in `ops_heartbeats`
(`worker:<name>`) six times per PGW_WORKER_STALE_SECONDS, from a thread of its own so that a
long job does not make it look gone. A gateway reads the rows to
say, in /readyz and /metrics, whether any worker is alive and whether queued jobs are waiting
for none (data-subject requests would then miss their legal deadlines in silence)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clock import utcnow
from app.jobs import queue
from app.ops.models import Heartbeat

logger = logging.getLogger("pgw.jobs")
PREFIX = "worker:"
# rows of workers that died without a clean stop are pruned after this long
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Liveness:
    alive: int
    last_seen_seconds: float | None  # None: no worker was ever seen (or all were pruned)
    queued: int  # jobs waiting for a worker (due now, or retries in back-off)

    @property
    def stranded(self) -> int:
        """Queued jobs that no live worker will run."""
        return self.queued if self.alive == 0 else 0

    def as_dict(self) -> dict[str, object]:
        return {"alive": self.alive, "last_seen_seconds": self.last_seen_seconds,
                "queued_jobs": self.queued, "queued_without_worker": self.stranded}


def beat(factory: sessionmaker[Session], *, worker: str) -> None:
    """Record that `worker` is alive now (and prune rows of long-dead workers)."""
    name, now = f"{PREFIX}{worker}"[:64], utcnow()
    with factory() as session:
        found = session.execute(update(Heartbeat).where(Heartbeat.name == name)
                                .values(beat_at=now)).rowcount  # type: ignore[attr-defined]
        if not found:
            session.add(Heartbeat(name=name, beat_at=now))
            session.execute(delete(Heartbeat).where(Heartbeat.name.startswith(PREFIX),
                                                    Heartbeat.beat_at < now - FORGET_AFTER))
        session.commit()


def liveness(session: Session, *, stale: timedelta, now: datetime | None = None) -> Liveness:
    now = now or utcnow()
    rows = select(Heartbeat.beat_at).where(Heartbeat.name.startswith(PREFIX))
    alive = session.scalar(select(func.count()).select_from(
        rows.where(Heartbeat.beat_at >= now - stale).subquery())) or 0
    last = session.scalar(select(func.max(Heartbeat.beat_at)).where(
        Heartbeat.name.startswith(PREFIX)))
    queued = queue.counts(session).get("queued", 0)
    seen = None if last is None else round(max((now - last).total_seconds(), 0.0), 3)
    return Liveness(alive=alive, last_seen_seconds=seen, queued=queued)


def warning(found: Liveness, *, stale: timedelta) -> str | None:
    if not found.stranded:
        return None
    seen = "never" if found.last_seen_seconds is None else \
        f"last {found.last_seen_seconds:.0f} s ago"
    return (f"{found.stranded} job(s) queued and no worker alive (one is alive when seen within "
            f"{stale.total_seconds():g} s; {seen}): run `pgw worker`")


class Beating(threading.Thread):
    """Beats for one worker process until `stopped` is set. A worker that stops leaves its row:
    it counts as gone after PGW_WORKER_STALE_SECONDS, and /readyz can still say when it was
    last seen."""

    def __init__(self, factory: sessionmaker[Session], *, worker: str, stale: timedelta):
        super().__init__(name="pgw-worker-heartbeat", daemon=True)
        self.factory, self.worker, self.every = factory, worker, stale.total_seconds() / 6
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                beat(self.factory, worker=self.worker)
            except Exception:  # the database went away: the next beat tries again
                logger.warning("worker heartbeat failed", exc_info=True)
            if self.stopped.wait(self.every):
                return
