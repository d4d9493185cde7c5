"""How much work a serving process takes on at once: sessions (Admission) and the threads the
busiest endpoints run on (Lane). Past either limit a request is refused at once with a 503 and
Retry-After, instead of queueing without bound behind a slow database or a busy CPU."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import anyio
import anyio.to_thread

from app.errors import DatabaseBusy, GatewayError, ServiceUnavailable

logger = logging.getLogger("pgw.capacity")

T = TypeVar("T")

# Why a Lane refused a request (the `reason` of pgw_request_queue_refused_total): the queue was
# full, the turn did not come in time, the requests waiting were shed when the database handed
# out no connection in time, or the client left while it waited.
REFUSALS = ("queue_full", "timeout", "database_busy", "client_gone")


class Admission:
    """How many requests may hold a database session at once in this process: the pool's
    connections plus a bounded number waiting for one. The rest are refused at once with a 503
    instead of queueing without limit behind a slow or stopped database."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.active >= self.limit:
                raise DatabaseBusy(f"{self.active} requests are already using or waiting for "
                                   "the database; try again", headers={"Retry-After": "1"})
            self.active += 1

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


class Busy(ServiceUnavailable):
    type, title = "busy", "Busy"


class ClientClosedRequest(GatewayError):
    """The client went away while its request waited for a thread: the work is not done (nginx
    logs the same case as 499). Nobody receives the response; it shows in logs and metrics."""

    status, type, title = 499, "client-closed-request", "Client closed request"
    answered = False  # not in the catalogue of problems: no client ever receives it


class Gauge(Protocol):
    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Unobserved:
    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass


class _Shedding:
    def __init__(self) -> None:
        self.event, self.why = anyio.Event(), ""


class Lane:
    """At most `threads` requests of one kind (record writes, record reads) work at once in a
    process, each on a thread of the lane's own; up to `queue` more wait their turn on the event
    loop, where waiting costs nothing, for at most `wait_seconds`. A request past the queue, or
    one that waited its whole time, gets a 503 with Retry-After; one whose client went away
    while it waited is not worked on at all.

    A request waiting here holds no database connection and is not counted as using the
    database: only once it has its thread does it enter the process's Admission. When a request
    that had its thread could not get a database connection in time, the database is stuck or
    overloaded and those waiting would meet the same: `shed` refuses them all at once."""

    def __init__(self, name: str, *, threads: int, queue: int, wait_seconds: float):
        self.name, self.queue, self.wait_seconds = name, queue, wait_seconds
        self.waiting = 0
        self._shedding = _Shedding()  # set, and replaced, by `shed`
        self._turns = anyio.CapacityLimiter(threads)
        # the threads themselves: as many as turns, so taking one never waits; a limiter of its
        # own because a task cannot hold the same limiter twice
        self._threads = anyio.CapacityLimiter(threads)
        self.busy_gauge: Gauge = _Unobserved()
        self.waiting_gauge: Gauge = _Unobserved()
        self.refused: Callable[[str], _Counter] = lambda reason: _Unobserved()

    @property
    def threads(self) -> int:
        return int(self._turns.total_tokens)

    async def run(self, work: Callable[[], T], *,
                  until_gone: Callable[[], Awaitable[None]] | None = None) -> T:
        """`work` on one of the lane's threads once it is this request's turn. Refused with
        Busy (503) when the queue is full, the turn did not come within `wait_seconds`, or the
        queue was shed while it waited; with ClientClosedRequest, its place in the queue given
        up at once, when `until_gone` (which returns once the client has gone away) returns
        while it waits."""
        try:
            self._turns.acquire_nowait()  # fair: refused while others wait
        except anyio.WouldBlock:
            await self._wait_for_turn(until_gone)
        self.busy_gauge.inc()
        try:
            return await anyio.to_thread.run_sync(work, limiter=self._threads)
        finally:
            self.busy_gauge.dec()
            self._turns.release()

    def shed(self, why: str) -> None:
        """Refuse every request now waiting for a turn (503, Retry-After), saying `why`; those
        arriving later wait as usual. Called on the event loop."""
        self._shedding.why = why
        self._shedding.event.set()
        self._shedding = _Shedding()

    async def _wait_for_turn(self, until_gone: Callable[[], Awaitable[None]] | None) -> None:
        if self.waiting >= self.queue:
            self.refused("queue_full").inc()
            raise Busy(f"{self.threads} {self.name} are in progress and {self.waiting} waiting "
                       "in this process; try again", headers={"Retry-After": "1"})
        self.waiting += 1
        self.waiting_gauge.inc()
        began = time.monotonic()
        acquired = gone = False
        shedding = self._shedding
        try:
            async with anyio.create_task_group() as group:
                async def watch_shed() -> None:
                    await shedding.event.wait()
                    group.cancel_scope.cancel()

                group.start_soon(watch_shed)
                if until_gone is not None:
                    async def watch() -> None:
                        nonlocal gone
                        try:
                            await until_gone()
                        except Exception:  # not known gone: the wait goes on, bounded as ever
                            logger.warning("watching for a %s request's client to leave "
                                           "failed; it waits its turn regardless", self.name,
                                           exc_info=True)
                            return
                        gone = True
                        group.cancel_scope.cancel()

                    group.start_soon(watch)
                with anyio.move_on_after(self.wait_seconds):
                    await self._turns.acquire()
                    acquired = True
                group.cancel_scope.cancel()  # the watches, once the turn came or never will
        except BaseException:
            if acquired:
                self._turns.release()
            raise
        finally:
            self.waiting -= 1
            self.waiting_gauge.dec()
        if gone:
            if acquired:
                self._turns.release()
            self.refused("client_gone").inc()
            raise ClientClosedRequest("the client closed the connection while the request "
                                      "waited its turn")
        if shedding.event.is_set() and not acquired:  # a turn that came with the shed is taken
            self.refused("database_busy").inc()
            raise Busy(f"{shedding.why}; the {self.name} waiting in this process were "
                       "refused; try again", headers={"Retry-After": "1"})
        if not acquired:
            self.refused("timeout").inc()
            raise Busy(f"no {self.name} thread came free within "
                       f"{time.monotonic() - began:.1f} s in this process; try again",
                       headers={"Retry-After": "1"})
